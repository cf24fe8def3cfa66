"""Craft the evaluation's adversarial sets, cached in the workspace: every set goes through `Crafter.craft`,
the one route to the adversarial-set service (`arnkit.runs.adversarial.craft_set`: keyed by dataset, attack,
parameters, image limit, seed, restarts and the attacked model's tag)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arnkit.adversarial_store import AdversarialSet
from arnkit.evaluation.threat_models import AttackedModel
from arnkit.runs.adversarial import check_restarts, craft_set
from arnkit.runs.context import RunContext


def checked_restarts(restarts: int) -> int:
    """--restarts as a count >= 1 (one line otherwise), as the adversarial-set service checks it."""
    return check_restarts(restarts)


@dataclass(frozen=True)
class Crafter:
    """What every set of one evaluation shares: the run context (dataset, workspace, seed, progress)."""

    ctx: RunContext
    split: str = "test"

    def craft(self, key: str, params: dict[str, Any], attacked: AttackedModel, *, limit: int,
              restarts: int = 1) -> AdversarialSet:
        """The split's set of attack `key` with `params` against `attacked` (crafted or loaded, typed; its
        file's path in `.path` and `attrs['path']`)."""
        return craft_set(self.ctx, key, split=self.split, limit=limit, params=params, model=attacked.model,
                         fingerprint=attacked.tag, restarts=restarts)


@dataclass
class ColumnSets:
    """One table column's adversarial sets, crafted once per attacked model: the defenses that leave the
    attacker's loop alone (gray box, NONE) share one set."""

    crafter: Crafter
    key: str
    params: dict[str, Any]
    limit: int
    restarts: int
    _sets: dict[str, AdversarialSet] = field(default_factory=dict)

    def get(self, attacked: AttackedModel) -> AdversarialSet:
        if attacked.tag not in self._sets:
            self._sets[attacked.tag] = self.crafter.craft(self.key, self.params, attacked, limit=self.limit,
                                                          restarts=self.restarts)
        return self._sets[attacked.tag]
