"""Craft the evaluation's adversarial sets, cached in the workspace: every set goes through `craft_set`, the
one route to the adversarial-set service (keyed by dataset, attack, parameters, image limit, seed, restarts
and the attacked model's tag)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arnkit import adversarial_store
from arnkit.data.base import DatasetInfo
from arnkit.evaluation.threat_models import AttackedModel
from arnkit.progress import Progress
from arnkit.workspace import Workspace


def checked_restarts(restarts: int) -> int:
    """--restarts as a count >= 1 (one line otherwise), as the adversarial-set service checks it."""
    from arnkit.pipeline.attack import check_restarts

    return check_restarts(restarts)


def craft_set(info: DatasetInfo, key: str, params: dict[str, Any], *, limit: int, seed: int, ws: Workspace,
              progress: Progress, attacked: AttackedModel, restarts: int = 1) -> adversarial_store.AdversarialSet:
    """The test-split adversarial set of attack `key` with `params` against `attacked` (crafted or loaded);
    its file's path is in `attrs['path']`."""
    from arnkit.pipeline.attack import craft

    record = craft(info.name, key, split="test", limit=limit, params=params, seed=seed, workspace=ws.root,
                   progress=progress, model=attacked.model, fingerprint=attacked.tag, restarts=restarts)
    adv = adversarial_store.load(record["path"], dataset=info.name, target_fingerprint=attacked.tag)
    adv.attrs["path"] = record["path"]
    return adv


@dataclass(frozen=True)
class Crafter:
    """What every set of one evaluation shares: the dataset, the workspace, the seed and the progress."""

    info: DatasetInfo
    ws: Workspace
    seed: int
    progress: Progress

    def craft(self, key: str, params: dict[str, Any], attacked: AttackedModel, *, limit: int,
              restarts: int = 1) -> adversarial_store.AdversarialSet:
        return craft_set(self.info, key, params, limit=limit, seed=self.seed, ws=self.ws, progress=self.progress,
                         attacked=attacked, restarts=restarts)


@dataclass
class ColumnSets:
    """One table column's adversarial sets, crafted once per attacked model: the defenses that leave the
    attacker's loop alone (gray box, NONE) share one set."""

    crafter: Crafter
    key: str
    params: dict[str, Any]
    limit: int
    restarts: int
    _sets: dict[str, adversarial_store.AdversarialSet] = field(default_factory=dict)

    def get(self, attacked: AttackedModel) -> adversarial_store.AdversarialSet:
        if attacked.tag not in self._sets:
            self._sets[attacked.tag] = self.crafter.craft(self.key, self.params, attacked, limit=self.limit,
                                                          restarts=self.restarts)
        return self._sets[attacked.tag]
