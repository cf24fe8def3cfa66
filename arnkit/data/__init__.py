"""Datasets: `load(name, split)` gives a tf.data.Dataset of (image float32 [0,1] NHWC, label int64).

Sources: `mnist` (embedded, offline), `cifar10` (TFDS or `arnkit data import`), `lisa` (TFDS builder
with a manual download), `synthetic` (tiny, for tests), and the user's own datasets imported into a workspace
(`arnkit data import folder|npz`, arnkit.data.user), found by name in `data_dir/user/`.

A name is resolved as: a built-in source; else the user dataset of that name in `data_dir` (the workspace's,
which a run context passes; without one, the default workspace's: $ARNKIT_WORKSPACE or ~/.arnkit). Commands
resolve a name once, into their run context, and pass its `DatasetInfo` down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data import splits
from arnkit.data.base import SPLITS, DatasetInfo, DatasetSource
from arnkit.data.budgets import Budgets
from arnkit.data.cifar10 import Cifar10Source
from arnkit.data.lisa import LisaSource
from arnkit.data.mnist import MnistSource
from arnkit.data.synthetic import SyntheticSource
from arnkit.data.user import find
from arnkit.errors import ArnkitError

SOURCES: dict[str, DatasetSource] = {
    "mnist": MnistSource(),
    "cifar10": Cifar10Source(),
    "lisa": LisaSource(),
    "synthetic": SyntheticSource(),
}


def get_source(name: str, data_dir: str | Path | None = None) -> DatasetSource:
    key = str(name).lower()
    if key in SOURCES:
        return SOURCES[key]
    directory = _default_data_dir(data_dir)
    source = find(directory, key)
    if source is None:
        from arnkit.data.user import names

        imported = names(directory)
        raise ArnkitError(f"unknown dataset '{name}'; choose one of: {', '.join([*SOURCES, *imported])}"
                          + ("" if imported else f" (no dataset imported in {directory}; "
                             "`arnkit data import folder PATH --name NAME` adds one)"))
    return source


def info(dataset: str | DatasetInfo, data_dir: str | Path | None = None) -> DatasetInfo:
    """The dataset's info; an info passes through (callers that hold one, such as a run context, pass it).
    `data_dir`: where a user dataset of that name is looked up (a workspace's data folder)."""
    return dataset if isinstance(dataset, DatasetInfo) else get_source(dataset, data_dir).info


def user_datasets(data_dir: str | Path | None = None) -> list[DatasetInfo]:
    """The infos of the user datasets imported into `data_dir` (default: the default workspace's)."""
    from arnkit.data.user import names

    directory = _default_data_dir(data_dir)
    return [get_source(n, directory).info for n in names(directory)]


def _default_data_dir(data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    from arnkit.workspace import Workspace

    return Workspace.resolve().data_dir


def availability(name: str, data_dir: str | Path | None = None) -> str | None:
    """None when `name` can be loaded right now without a network, else the reason and the fix."""
    directory = _default_data_dir(data_dir)
    return get_source(name, directory).availability(directory)


def load_arrays(
    name: str, split: str = "train", *, limit: int | None = None, data_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """(images float32 [0,1] NHWC, labels int64, info). `limit` keeps the first N examples.
    `train` is the source's training images minus `val` (arnkit.data.splits); `test` is the source's own."""
    directory = _default_data_dir(data_dir)
    source = get_source(name, directory)
    if split not in SPLITS:
        raise ArnkitError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    if split == "val" and splits.rule(source.info.name) is None:
        splits.val_positions(source.info.name, np.zeros(0))  # no val for this dataset: one line, before any read
    reason = source.availability(directory)
    if reason is not None:
        raise ArnkitError(reason)
    if split == "test":
        x, y = source.load_arrays("test", directory)
    else:
        x, y = source.load_arrays("train", directory)
        where = split_positions(source, split, y, directory)
        x, y = x[where], y[where]
    if limit is not None and limit > 0:
        if limit > len(x):
            raise ArnkitError(f"--limit {limit} is larger than the {name} {split} split ({len(x)}); use a smaller value")
        x, y = x[:limit], y[:limit]
    return x, y, source.info


def split_positions(source: DatasetSource, split: str, labels: np.ndarray, data_dir: Path) -> np.ndarray:
    """Positions of `split` ('train' or 'val') in the source's full training arrays (their `labels`)."""
    groups = getattr(source, "train_groups", None)
    return splits.positions(source.info.name, split, labels,
                            (lambda: groups(data_dir)) if groups is not None else None)


def load(name: str, split: str = "train", *, limit: int | None = None, data_dir: str | Path | None = None):
    """(tf.data.Dataset of (image, label), info)."""
    import tensorflow as tf

    x, y, meta = load_arrays(name, split, limit=limit, data_dir=data_dir)
    return tf.data.Dataset.from_tensor_slices((x, y)), meta


__all__ = ["Budgets", "DatasetInfo", "SOURCES", "availability", "get_source", "info", "load", "load_arrays",
           "user_datasets"]
