"""Datasets: `load(name, split)` gives a tf.data.Dataset of (image float32 [0,1] NHWC, label int64).

Sources: `mnist` (embedded, offline), `cifar10` (TFDS or `arnkit data import`), `lisa` (TFDS builder
with a manual download), `synthetic` (tiny, for tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data.base import SPLITS, DatasetInfo, DatasetSource
from arnkit.data.budgets import Budgets
from arnkit.data.cifar10 import Cifar10Source
from arnkit.data.lisa import LisaSource
from arnkit.data.mnist import MnistSource
from arnkit.data.synthetic import SyntheticSource
from arnkit.errors import ArnkitError

SOURCES: dict[str, DatasetSource] = {
    "mnist": MnistSource(),
    "cifar10": Cifar10Source(),
    "lisa": LisaSource(),
    "synthetic": SyntheticSource(),
}


def get_source(name: str) -> DatasetSource:
    try:
        return SOURCES[name.lower()]
    except KeyError:
        raise ArnkitError(f"unknown dataset '{name}'; choose one of: {', '.join(SOURCES)}") from None


def info(dataset: str | DatasetInfo) -> DatasetInfo:
    """The dataset's info; an info passes through (callers that hold one, such as a run context, pass it)."""
    return dataset if isinstance(dataset, DatasetInfo) else get_source(dataset).info


def _default_data_dir(data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    from arnkit.workspace import Workspace

    return Workspace.resolve().data_dir


def availability(name: str, data_dir: str | Path | None = None) -> str | None:
    """None when `name` can be loaded right now without a network, else the reason and the fix."""
    return get_source(name).availability(_default_data_dir(data_dir))


def load_arrays(
    name: str, split: str = "train", *, limit: int | None = None, data_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """(images float32 [0,1] NHWC, labels int64, info). `limit` keeps the first N examples."""
    source = get_source(name)
    if split not in SPLITS:
        raise ArnkitError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    directory = _default_data_dir(data_dir)
    reason = source.availability(directory)
    if reason is not None:
        raise ArnkitError(reason)
    x, y = source.load_arrays(split, directory)
    if limit is not None and limit > 0:
        if limit > len(x):
            raise ArnkitError(f"--limit {limit} is larger than the {name} {split} split ({len(x)}); use a smaller value")
        x, y = x[:limit], y[:limit]
    return x, y, source.info


def load(name: str, split: str = "train", *, limit: int | None = None, data_dir: str | Path | None = None):
    """(tf.data.Dataset of (image, label), info)."""
    import tensorflow as tf

    x, y, meta = load_arrays(name, split, limit=limit, data_dir=data_dir)
    return tf.data.Dataset.from_tensor_slices((x, y)), meta


__all__ = ["Budgets", "DatasetInfo", "SOURCES", "availability", "get_source", "info", "load", "load_arrays"]
