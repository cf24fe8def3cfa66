"""A tiny deterministic dataset for tests: each class is a distinct bright square on a noisy background."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data import budgets
from arnkit.data.base import DatasetInfo


class SyntheticSource:
    info = DatasetInfo(
        name="synthetic",
        shape=(28, 28, 1),
        num_classes=4,
        class_names=("top-left", "top-right", "bottom-left", "bottom-right"),
        budgets=budgets.SYNTHETIC,
        split_sizes={"train": 512, "val": 64, "test": 128},
        default_model="lenet",
        description="tiny deterministic 4-class set for tests",
    )

    def availability(self, data_dir: Path) -> str | None:
        return None

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        # The source's train holds train + val (the last 64: splits.RULES); drawn in one go, so the first 512
        # images are the ones the 512-image set of before had.
        sizes = self.info.split_sizes
        n = sizes["train"] + sizes["val"] if split == "train" else sizes[split]
        rng = np.random.default_rng(0 if split == "train" else 1)
        h, w, c = self.info.shape
        labels = np.arange(n, dtype=np.int64) % self.info.num_classes
        x = rng.uniform(0.0, 0.3, size=(n, h, w, c)).astype(np.float32)
        half_h, half_w = h // 2, w // 2
        for label in range(self.info.num_classes):
            rows = slice(3, half_h - 3) if label < 2 else slice(half_h + 3, h - 3)
            cols = slice(3, half_w - 3) if label % 2 == 0 else slice(half_w + 3, w - 3)
            x[labels == label, rows, cols, :] = 0.9
        return x, labels
