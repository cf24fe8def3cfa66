"""The dataset contract: every source gives images float32 in [0,1], NHWC, and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from arnkit.data.budgets import Budgets
from arnkit.errors import ArnkitError


def pixel_range_fix(low: float, high: float) -> str:
    """What to do with images whose values span [low, high] instead of [0, 1]: the seen range decides, so
    centred images are not told to divide by 255."""
    if low >= 0.0 and high <= 255.0:
        return "divide 0-255 images by 255"
    if low >= -1.0 and high <= 1.0:
        return f"shift them into [0, 1]: (x - ({low:.3g})) / ({high:.3g} - ({low:.3g})), or (x + 1) / 2 for [-1, 1]"
    return "rescale them into [0, 1]: (x - x.min()) / (x.max() - x.min())"

SPLITS = ("train", "val", "test")  # train and val partition the source's training images (data/splits.py)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    # Its attack budgets (arnkit.data.budgets); None: none declared, and attacks made for it are refused.
    budgets: Budgets | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    default_model: str = "lenet"
    description: str = ""

    @property
    def eps(self) -> float | None:
        """The default L-inf budget (the paper's), from the budgets."""
        return None if self.budgets is None else self.budgets.eps

    @property
    def eps_raised(self) -> float | None:
        """The paper's raised budget eps', from the budgets."""
        return None if self.budgets is None else self.budgets.eps_raised

    def attack_params(self, attack: type | str) -> dict[str, Any]:
        """Constructor arguments of `attack` (a class, or its name) on this dataset, from its budgets; a class
        without a rule of its own takes its nearest base class's (a subclass of PGD reads PGD's)."""
        if self.budgets is None:
            raise ArnkitError(f"dataset '{self.name}' declares no attack budgets; give it budgets (for "
                              "example arnkit.data.budgets.derived(eps, shape)) or pass the attack's "
                              "parameters explicitly")
        if isinstance(attack, str):
            return self.budgets.for_attack(attack)
        for cls in attack.__mro__:
            if self.budgets.knows(cls.__name__):
                return self.budgets.for_attack(cls.__name__)
        return self.budgets.for_attack(attack.__name__)  # refused in one line: no rule for it


class DatasetSource(Protocol):
    info: DatasetInfo

    def availability(self, data_dir: Path) -> str | None:
        """None when loadable right now (no network), else a one-line reason with the fix."""

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        """(images float32 [0,1] NHWC, labels int64) for the source's own split, 'train' (val included) or
        'test'. A source whose val rule holds out tracks also has `train_groups(data_dir)`: one key per image."""
