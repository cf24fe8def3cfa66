"""A user's dataset, imported into the workspace by `arnkit data import folder|npz` (arnkit.data.user_import).

Stored as `<data_dir>/user/<name>/`:
- `arrays.npz`: `x_train, y_train, x_test, y_test` (NHWC, uint8 0-255 or float32 in [0,1]; int64 labels);
- `dataset.json`: name, shape, class names, counts, eps and how it was chosen, the budget rule, the source,
  the sha256 of `arrays.npz`, the arnkit version and the date. It is written last, so a folder without it is
  not a dataset.

Its `DatasetInfo.budgets` is `budgets.derived(eps, shape)`, so every attack made for it takes its eps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from arnkit.data import budgets
from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError

USER_DIR = "user"
ARRAYS = "arrays.npz"
META = "dataset.json"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# The eps an import picks when none is given, by channel count: the datasets of the same kind (MNIST's 0.3 for
# grayscale; CIFAR-10's and LISA's 8/255 for colour).
DEFAULT_EPS = {1: 0.3, 3: 8 / 255}
DEFAULT_EPS_RULE = {1: "default for grayscale images (as MNIST): 0.3",
                    3: "default for RGB images (as CIFAR-10 and LISA): 8/255"}
BUDGET_RULE = "arnkit.data.budgets.derived(eps, shape)"


def user_root(data_dir: Path) -> Path:
    return Path(data_dir) / USER_DIR


def dataset_folder(data_dir: Path, name: str) -> Path:
    return user_root(data_dir) / name


def names(data_dir: Path) -> list[str]:
    """The user datasets imported into `data_dir`, sorted (folders holding a dataset.json)."""
    root = user_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / META).is_file() and NAME_PATTERN.match(p.name))


class UserSource:
    """One imported dataset; `info` comes from its dataset.json."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            self.meta: dict[str, Any] = json.loads((self.folder / META).read_text())
            shape = tuple(int(v) for v in self.meta["shape"])
            eps = float(self.meta["eps"])
            self.info = DatasetInfo(
                name=str(self.meta["name"]), shape=shape,  # type: ignore[arg-type]
                num_classes=len(self.meta["class_names"]), class_names=tuple(self.meta["class_names"]),
                budgets=budgets.derived(eps, shape),  # type: ignore[arg-type]
                split_sizes={k: int(v) for k, v in self.meta["counts"].items()}, default_model="lenet",
                description=f"imported {self.meta.get('source_kind', '')} {self.meta.get('source', '')}".strip(),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArnkitError(f"user dataset {self.folder} has an unreadable {META} ({exc}); re-import it with "
                              "`arnkit data import ... --force`") from None

    def availability(self, data_dir: Path) -> str | None:
        if not (self.folder / ARRAYS).is_file():
            return (f"user dataset '{self.info.name}' has no {ARRAYS} in {self.folder}; re-import it with "
                    "`arnkit data import ... --force`")
        return None

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        reason = self.availability(data_dir)
        if reason is not None:
            raise ArnkitError(reason)
        with np.load(self.folder / ARRAYS, allow_pickle=False) as arrays:
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        return x, y.astype(np.int64)


def find(data_dir: Path, name: str) -> UserSource | None:
    """The user dataset `name` in `data_dir`, or None."""
    folder = dataset_folder(data_dir, name)
    return UserSource(folder) if NAME_PATTERN.match(name) and (folder / META).is_file() else None
