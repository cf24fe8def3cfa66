"""The dataset contract: every source gives images float32 in [0,1], NHWC, and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    eps: float  # default L-inf budget in the paper
    eps_raised: float  # the paper's raised budget eps'
    split_sizes: dict[str, int] = field(default_factory=dict)
    default_model: str = "lenet"
    description: str = ""


class DatasetSource(Protocol):
    info: DatasetInfo

    def availability(self, data_dir: Path) -> str | None:
        """None when loadable right now (no network), else a one-line reason with the fix."""

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        """(images float32 [0,1] NHWC, labels int64) for the split."""
