"""LISA traffic signs (placeholder until the TFDS builder lands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError

CLASS_NAMES: tuple[str, ...] = tuple(f"class{i}" for i in range(16))


class LisaSource:
    info = DatasetInfo(
        name="lisa", shape=(32, 32, 3), num_classes=16, class_names=CLASS_NAMES, eps=8 / 255,
        eps_raised=0.05, split_sizes={"train": 3509, "test": 1148}, default_model="lisa_cnn",
        description="LISA traffic signs, 16 classes, 32x32 (manual download)",
    )

    def availability(self, data_dir: Path) -> str | None:
        return f"LISA needs a manual download into {data_dir / 'downloads' / 'manual'}"

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        raise ArnkitError(self.availability(data_dir))
