"""MNIST, embedded in the package (no network ever). Verified by sha256 on load."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from arnkit.data import budgets
from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError

EMBEDDED_PATH = Path(__file__).with_name("mnist.npz")
SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"


class MnistSource:
    info = DatasetInfo(
        name="mnist",
        shape=(28, 28, 1),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        budgets=budgets.MNIST,
        split_sizes={"train": 55000, "val": 5000, "test": 10000},
        default_model="lenet",
        description="MNIST digits, embedded copy (offline)",
    )

    def __init__(self, path: Path = EMBEDDED_PATH, sha256: str = SHA256) -> None:
        self.path = Path(path)
        self.sha256 = sha256

    def availability(self, data_dir: Path) -> str | None:
        return None if self.path.exists() else f"embedded MNIST missing at {self.path}; reinstall arnkit"

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        arrays = _read_verified(str(self.path), self.sha256)
        x = arrays[f"x_{split}"].astype(np.float32)[..., None] / 255.0
        return x, arrays[f"y_{split}"].astype(np.int64)


@lru_cache(maxsize=2)
def _read_verified(path: str, sha256: str) -> dict[str, np.ndarray]:
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise ArnkitError(f"cannot read embedded MNIST at {path} ({exc.strerror}); reinstall arnkit") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise ArnkitError(
            f"embedded MNIST at {path} is corrupt (sha256 {digest[:12]}... != {sha256[:12]}...); reinstall arnkit"
        )
    import io

    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}
