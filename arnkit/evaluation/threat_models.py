"""What the attacker differentiates in each threat model of the paper (Section 4.2, Tables 1-4).

- gray (the paper's main setting): the attacker knows the classifier, not the defense; the examples are
  crafted against the classifier alone and then pass through the defense.
- white: the defense leaked; the attacker differentiates classifier(defense(x)) end to end (Table 3, top).
- bpda: forward through the defense, backward as if it were the identity (Athalye et al. 2018; Table 4).
- transfer: the attacker trained a surrogate pre-processor of their own and attacks
  classifier(surrogate(x)); the examples then meet the real defense (Table 3, gray-box rows).

A robust classifier (AT_PGD, DOA) has no pre-processor: under every threat model the attacker
differentiates the classifier itself, so gray, white and bpda coincide for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arnkit.errors import ArnkitError

if TYPE_CHECKING:  # keeps `arnkit --help` free of the Keras import
    from arnkit.defenses.base import Defense

THREAT_MODELS: dict[str, str] = {
    "gray": "attacks crafted against the classifier alone (the defense is unknown to the attacker)",
    "white": "attacks through defense + classifier with full gradients",
    "bpda": "BPDA: forward through the defense, identity gradient backward",
    "transfer": "attacks through a surrogate pre-processor + classifier, then the real defense",
}


def parse_threat_model(name: str) -> str:
    key = str(name).strip().lower()
    if key not in THREAT_MODELS:
        raise ArnkitError(f"unknown threat model '{name}'; choose one of: {', '.join(THREAT_MODELS)}")
    return key


@dataclass
class AttackedModel:
    """The model the attacker differentiates, and a tag that keys its cached adversarial examples."""

    model: Any
    tag: str
    shared_with_gray: bool  # the examples are the gray-box ones (no defense in the attacker's loop)


def attacked_model(threat: str, defense: Defense, classifier: Any, *, classifier_tag: str,
                   defense_tag: str = "", surrogate: Any = None, surrogate_tag: str = "") -> AttackedModel:
    """The attacker's model for `threat` against `defense` in front of `classifier` (the defense decides)."""
    return defense.attacker_model(parse_threat_model(threat), classifier, classifier_tag=classifier_tag,
                                  defense_tag=defense_tag, surrogate=surrogate, surrogate_tag=surrogate_tag)
