"""CIFAR-10 through TFDS (placeholder until the loader lands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Cifar10Source:
    info = DatasetInfo(
        name="cifar10", shape=(32, 32, 3), num_classes=10, class_names=CLASS_NAMES, eps=8 / 255,
        eps_raised=0.05, split_sizes={"train": 50000, "test": 10000}, default_model="resnet",
        description="CIFAR-10 via TFDS",
    )

    def availability(self, data_dir: Path) -> str | None:
        return "CIFAR-10 is not available offline; run `arnkit data import cifar10 PATH/cifar-10-python.tar.gz`"

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        raise ArnkitError(self.availability(data_dir))
