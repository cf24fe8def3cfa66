"""Attacks behind one interface (`arnkit.attacks.base.Attack`) and a registry keyed by the paper's names.

    from arnkit import attacks
    attack = attacks.make("pgd_n", dataset="mnist")          # MNIST's budgets (arnkit.data.budgets)
    attack = attacks.make("pgd_n", dataset=info)             # or a DatasetInfo's (a run context passes one)
    attack = attacks.make("pgd_n", eps=0.1)                  # no dataset: the constructor's defaults + yours
    result = attack(model, x, y, seed=0)

The per-dataset numbers (eps, step sizes, the STA/FWA budgets, the ROA patch) are data of the dataset, not of
the attack classes: `DatasetInfo.budgets`, turned into each attack's arguments by `DatasetInfo.attack_params`.

The CLI's `--attack` choices and the parametrized tests both come from `REGISTRY`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arnkit.errors import ArnkitError

if TYPE_CHECKING:
    from arnkit.data.base import DatasetInfo


@dataclass(frozen=True)
class AttackEntry:
    key: str
    module: str  # arnkit.attacks.<module>
    cls: str
    fixed: dict[str, Any] = field(default_factory=dict)  # arguments that define this registry entry
    description: str = ""
    # Datasets the pipeline offers it for (None = every dataset); `make` itself builds it for any images.
    datasets: tuple[str, ...] | None = None
    # In `--attack all`? SPSA is not: one image at a time, minutes per hundred robust images on a CPU; the
    # white-box sanity suite runs it (arnkit.evaluation.sanity.gradient_free_check).
    in_all: bool = True

    def applies_to(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets or dataset == "synthetic"

    def attack_class(self):
        return getattr(importlib.import_module(f"arnkit.attacks.{self.module}"), self.cls)


_ENTRIES = [
    AttackEntry("fgsm", "pgd", "FGSM", {}, "FGSM, L-inf, untargeted"),
    AttackEntry("pgd_n", "pgd", "PGD", {"targeted": False}, "PGD, L-inf, untargeted (Madry et al. 2018)"),
    AttackEntry("pgd_t", "pgd", "PGD", {"targeted": True}, "PGD, L-inf, targeted (seeded random target)"),
    AttackEntry("mim_n", "mim", "MIM", {"targeted": False}, "momentum iterative FGSM, L-inf, untargeted"),
    AttackEntry("mim_t", "mim", "MIM", {"targeted": True}, "momentum iterative FGSM, L-inf, targeted"),
    AttackEntry("spsa_n", "spsa", "SPSA", {"targeted": False},
                "SPSA, L-inf, untargeted, gradient-free (Uesato et al. 2018)", in_all=False),
    AttackEntry("cw_n", "cw", "CarliniWagnerL2", {"targeted": False}, "Carlini-Wagner L2, untargeted"),
    AttackEntry("ddn_n", "ddn", "DDN", {"targeted": False}, "Decoupled Direction and Norm L2 (Rony et al. 2019)"),
    AttackEntry("jsma_t", "jsma", "JSMA", {"targeted": True}, "Jacobian saliency map L0, targeted (Papernot 2016)"),
    AttackEntry("aa_n", "autoattack", "AutoAttack", {}, "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square"),
    AttackEntry("sta_n", "stadv", "STA", {"targeted": False}, "spatial transform attack / stAdv, untargeted"),
    AttackEntry("sta_t", "stadv", "STA", {"targeted": True}, "spatial transform attack / stAdv, targeted"),
    AttackEntry("fwa_n", "fwa", "FWA", {"targeted": False}, "Faster Wasserstein attack, untargeted (Wu et al. 2020)"),
    AttackEntry("rp2", "rp2", "RP2", {"mask": "octagon"}, "RP2 masked perturbation with EOT (Eykholt 2018)"),
    # The sign stickers of the ARN paper's LISA block (DOA's four masks; arnkit.attacks.masks).
    *(AttackEntry(f"ap{i}", "sticker", "StickerPatch", {"mask": f"ap{i}"},
                  f"sticker patch AP{i} ({source}), DOA's masked fresh-Adam attack", ("lisa",))
      for i, source in enumerate(("RP2 rectangles", "graffiti blob", "graffiti blob", "graffiti strokes"), 1)),
    AttackEntry("roa", "roa", "ROA", {}, "rectangular occlusion attack (Wu et al. 2020b)"),
]

REGISTRY: dict[str, AttackEntry] = {entry.key: entry for entry in _ENTRIES}


def get(key: str) -> AttackEntry:
    try:
        return REGISTRY[key.lower()]
    except KeyError:
        raise ArnkitError(f"unknown attack '{key}'; known attacks: {', '.join(REGISTRY)}") from None


def for_dataset(key: str, dataset: str) -> AttackEntry:
    """The entry for `key`, refused in one line when the pipeline does not offer it on `dataset`."""
    entry = get(key)
    if not entry.applies_to(dataset):
        offered = ", ".join(k for k, e in REGISTRY.items() if e.datasets is not None and e.applies_to(dataset))
        raise ArnkitError(f"attack '{key}' is for {', '.join(entry.datasets or ())} images, not {dataset}"
                          + (f"; {dataset} has the patches {offered}" if offered else "")
                          + "; pick an attack of `arnkit attacks` for this dataset")
    return entry


def keys_for(dataset: str) -> list[str]:
    """Registry keys the pipeline offers on `dataset` (what `--attack all` expands to)."""
    return [key for key, entry in REGISTRY.items() if entry.applies_to(dataset) and entry.in_all]


def make(key: str, *, dataset: str | DatasetInfo | None = None, **overrides: Any):
    """Build registry attack `key` with `dataset`'s budgets (a name or a DatasetInfo), then `overrides`.

    An unknown dataset, or one that declares no budgets, is refused (never MNIST's numbers in silence).
    Without a dataset the attack takes its constructor's defaults: for callers that pass their own."""
    entry = get(key)
    cls = entry.attack_class()
    params: dict[str, Any] = {}
    if dataset is not None:
        from arnkit import data

        params = data.info(dataset).attack_params(cls)
    params.update(entry.fixed)
    params.update(overrides)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ArnkitError(f"bad parameter for attack '{key}': {exc}") from None


__all__ = ["REGISTRY", "AttackEntry", "for_dataset", "get", "keys_for", "make"]
