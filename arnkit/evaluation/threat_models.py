"""What the attacker differentiates in each threat model of the paper (Section 4.2, Tables 1-4).

- gray (the paper's main setting): the attacker knows the classifier, not the defense; the examples are
  crafted against the classifier alone and then pass through the defense.
- white: the defense leaked; the attacker differentiates classifier(defense(x)) end to end (Table 3, top).
- bpda: forward through the defense, backward as if it were the identity (Athalye et al. 2018; Table 4).
- transfer: the attacker trained a surrogate pre-processor of their own and attacks
  classifier(surrogate(x)); the examples then meet the real defense (Table 3, gray-box rows).

A robust classifier (AT_PGD, DOA) has no pre-processor: under every threat model the attacker
differentiates the classifier itself, so gray, white and bpda coincide for it.

The user's string is parsed once (`ThreatModel.parse`) into one of the objects below; everything after asks
the object (its properties, `attacked_model`), never its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arnkit.errors import ArnkitError

if TYPE_CHECKING:  # keeps `arnkit --help` free of the Keras import
    from arnkit.runs.defense import Defense


@dataclass
class AttackedModel:
    """The model the attacker differentiates, and a tag that keys its cached adversarial examples."""

    model: Any
    tag: str
    shared_with_gray: bool  # the examples are the gray-box ones (no defense in the attacker's loop)


@dataclass(frozen=True)
class _Tags:
    classifier: str
    defense: str
    surrogate: str


# What each threat model puts in the attacker's loop in front of the classifier (a pre-processor defense).
def _classifier_alone(defense: Defense, classifier: Any, surrogate: Any, tags: _Tags) -> AttackedModel:
    return AttackedModel(classifier, tags.classifier, True)


def _through_defense(defense: Defense, classifier: Any, surrogate: Any, tags: _Tags) -> AttackedModel:
    from arnkit.attacks.adaptive import compose

    return AttackedModel(compose(defense.model, classifier), f"{tags.classifier}+{tags.defense}:white", False)


def _through_bpda(defense: Defense, classifier: Any, surrogate: Any, tags: _Tags) -> AttackedModel:
    from arnkit.attacks.adaptive import BPDA as IdentityBackward

    return AttackedModel(IdentityBackward(defense.model, classifier), f"{tags.classifier}+{tags.defense}:bpda", False)


def _through_surrogate(defense: Defense, classifier: Any, surrogate: Any, tags: _Tags) -> AttackedModel:
    from arnkit.attacks.adaptive import compose

    if surrogate is None:
        raise ArnkitError("the transfer threat model needs a surrogate pre-processor; pass --surrogate "
                          "PATH.keras (e.g. an ARN trained with another --seed)")
    return AttackedModel(compose(surrogate, classifier), f"{tags.classifier}+{tags.surrogate}:transfer", False)


@dataclass(frozen=True)
class ThreatModel:
    """One threat model: its name (as written in records), what the attacker differentiates, and which of
    the evaluation's steps apply to it."""

    name: str
    description: str
    _front: Callable[[Defense, Any, Any, _Tags], AttackedModel]
    # The attacker differentiates the defense itself (white, bpda): the adaptive-attack sanity suite, the
    # convergence curves and the lower-bound marks apply.
    adaptive: bool = False
    # Needs the attacker's own pre-processor (--surrogate).
    needs_surrogate: bool = False
    # Iteration counts a `steps` attack runs at when --iterations is not given (BPDA: Table 4's 40 and 100).
    default_iterations: tuple[int, ...] = ()
    # The threat models whose error this one's must reach on a pre-processor (the white >= BPDA >= gray check).
    ordering_against: tuple[ThreatModel, ...] = ()

    @property
    def shares_gray_examples(self) -> bool:
        """Whether the attacker never sees the defense, so every defense meets the gray-box examples."""
        return self._front is _classifier_alone

    @property
    def runs_sanity_suite(self) -> bool:
        return self.adaptive

    @property
    def allows_convergence_curves(self) -> bool:
        return self.adaptive

    def attacked_model(self, defense: Defense, classifier: Any, *, classifier_tag: str, defense_tag: str = "",
                       surrogate: Any = None, surrogate_tag: str = "") -> AttackedModel:
        """What the attacker differentiates against `defense` in front of `classifier`. A robust classifier has
        no pre-processor to hide: every threat model attacks it directly. The NONE row hides nothing either,
        except from the transfer attacker, who still goes through their own surrogate."""
        if defense.kind == "classifier":
            return AttackedModel(defense.model, f"{defense_tag}", False)
        front = self._front
        if defense.is_identity and not self.needs_surrogate:
            front = _classifier_alone
        return front(defense, classifier, surrogate, _Tags(classifier_tag, defense_tag, surrogate_tag))

    @classmethod
    def parse(cls, name: str | ThreatModel) -> ThreatModel:
        """The threat model named by the user (case and spaces ignored); one line naming the known ones."""
        if isinstance(name, ThreatModel):
            return name
        key = str(name).strip().lower()
        if key not in _BY_NAME:
            raise ArnkitError(f"unknown threat model '{name}'; choose one of: {', '.join(_BY_NAME)}")
        return _BY_NAME[key]

    def __str__(self) -> str:
        return self.name


GRAY = ThreatModel("gray", "attacks crafted against the classifier alone (the defense is unknown to the attacker)",
                   _classifier_alone)
BPDA = ThreatModel("bpda", "BPDA: forward through the defense, identity gradient backward", _through_bpda,
                   adaptive=True, default_iterations=(40, 100))
WHITE = ThreatModel("white", "attacks through defense + classifier with full gradients", _through_defense,
                    adaptive=True, ordering_against=(BPDA, GRAY))
TRANSFER = ThreatModel("transfer", "attacks through a surrogate pre-processor + classifier, then the real defense",
                       _through_surrogate, needs_surrogate=True)
_BY_NAME: dict[str, ThreatModel] = {t.name: t for t in (GRAY, WHITE, BPDA, TRANSFER)}

# name -> description, for help texts (`arnkit evaluate --help`).
THREAT_MODELS: dict[str, str] = {t.name: t.description for t in _BY_NAME.values()}


def parse_threat_model(name: str | ThreatModel) -> ThreatModel:
    return ThreatModel.parse(name)


def attacked_model(threat: str | ThreatModel, defense: Defense, classifier: Any, *, classifier_tag: str,
                   defense_tag: str = "", surrogate: Any = None, surrogate_tag: str = "") -> AttackedModel:
    """The attacker's model for `threat` against `defense` in front of `classifier`."""
    return ThreatModel.parse(threat).attacked_model(defense, classifier, classifier_tag=classifier_tag,
                                                    defense_tag=defense_tag, surrogate=surrogate,
                                                    surrogate_tag=surrogate_tag)
