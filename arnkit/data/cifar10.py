"""CIFAR-10 (Krizhevsky 2009) from TFDS data on local disk, never from the network.

Looked up in the workspace data folder (a TFDS data_dir), first match wins:
1. `<data_dir>/cifar10/<version>/`: TFDS's own dataset, e.g. made by `tfds build cifar10 --data_dir DIR`
   on a machine with network and copied over;
2. `<data_dir>/arnkit_cifar10/1.0.0/`: made by `arnkit data import cifar10 PATH/cifar-10-python.tar.gz`
   (see `arnkit.data.importers.import_cifar10`);
3. `<data_dir>/downloads/manual/cifar-10-python.tar.gz`: imported as in 2 on first load, offline.
Otherwise `availability()` names both fixes at once, instead of letting TFDS retry a download for minutes.

Example:
    >>> from arnkit import data
    >>> x, y, info = data.load_arrays("cifar10", "test", limit=100)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data import budgets
from arnkit.data.base import DatasetInfo
from arnkit.data.importers import (
    CIFAR10_ARCHIVE,
    CIFAR10_CLASS_NAMES,
    CIFAR10_IMPORTED_NAME,
    import_cifar10,
)
from arnkit.data.tfds_local import manual_dir, prepared_dir, read_split
from arnkit.errors import ArnkitError

CLASS_NAMES = CIFAR10_CLASS_NAMES
TFDS_NAME = "cifar10"


class Cifar10Source:
    info = DatasetInfo(
        name="cifar10", shape=(32, 32, 3), num_classes=10, class_names=CLASS_NAMES,
        budgets=budgets.CIFAR10, split_sizes={"train": 45000, "val": 5000, "test": 10000}, default_model="resnet",
        description="CIFAR-10 via TFDS (prepared offline or imported from cifar-10-python.tar.gz)",
    )

    def prepared(self, data_dir: Path) -> Path | None:
        """The dataset folder that will be read, or None when there is none yet (file-system check only)."""
        return prepared_dir(data_dir, TFDS_NAME) or prepared_dir(data_dir, CIFAR10_IMPORTED_NAME)

    def availability(self, data_dir: Path) -> str | None:
        if self.prepared(data_dir) is not None or (manual_dir(data_dir) / CIFAR10_ARCHIVE).is_file():
            return None
        return (
            f"CIFAR-10 is not in {data_dir} and arnkit never downloads it: if you have {CIFAR10_ARCHIVE} run "
            f"`arnkit data import cifar10 PATH/{CIFAR10_ARCHIVE}`, or run `tfds build cifar10 --data_dir {data_dir}` "
            "on a machine with network and copy that folder here"
        )

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        builder_dir = self.prepared(data_dir)
        if builder_dir is None:
            reason = self.availability(data_dir)
            if reason is not None:
                raise ArnkitError(reason)
            builder_dir = import_cifar10(manual_dir(data_dir) / CIFAR10_ARCHIVE, data_dir)
        return read_split(builder_dir, split)
