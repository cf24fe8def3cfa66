"""Adversarial sets as HDF5 files with provenance attributes (atomic writes, validated reads)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import runtime
from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, sha256_arrays

ARRAYS = ("x_adv", "indices", "labels", "success", "pred")
HASH_ATTR = "content_sha256"  # sha256 of the arrays (ARRAYS, then targets), written with them


class DamagedSet(ArnkitError):
    """A stored set whose arrays no longer match their hash: a derived artifact, so a caller that can craft
    it again does (`problem` is the line without the fix)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; delete it to craft it again")
        self.problem = problem


def content_hash(adv: AdversarialSet) -> str:
    arrays = [getattr(adv, name) for name in ARRAYS]
    return sha256_arrays(*arrays, *([] if adv.targets is None else [adv.targets]))


@dataclass
class AdversarialSet:
    x_adv: np.ndarray
    indices: np.ndarray  # positions in the dataset split
    labels: np.ndarray
    success: np.ndarray
    pred: np.ndarray
    targets: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # where it is stored (not written into the file)
    reused: bool = False  # loaded from the workspace rather than crafted by this call


def save(path: str | Path, adv: AdversarialSet) -> Path:
    """Write `adv` atomically; attrs must include attack, params, dataset, split, target_fingerprint, seed."""
    import h5py

    required = {"attack", "params", "dataset", "split", "target_fingerprint", "seed"}
    missing = required - set(adv.attrs)
    if missing:
        raise ValueError(f"provenance attributes missing: {sorted(missing)}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name in ARRAYS:
            handle.create_dataset(name, data=getattr(adv, name), compression="gzip" if name == "x_adv" else None)
        if adv.targets is not None:
            handle.create_dataset("targets", data=adv.targets)
        attrs = dict(adv.attrs)
        attrs[HASH_ATTR] = content_hash(adv)  # always of these arrays (a merge must not keep a shard's)
        attrs.setdefault("arnkit_version", arnkit.__version__)
        attrs.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        attrs.setdefault("runtime", runtime.describe())  # kernels and CPU it was crafted with
        for key, value in attrs.items():
            handle.attrs[key] = value if isinstance(value, (str, int, float, np.integer, np.floating)) else json.dumps(
                value, sort_keys=True, default=str)
    return Path(path)


def load(path: str | Path, *, dataset: str | None = None, target_fingerprint: str | None = None) -> AdversarialSet:
    """Read an adversarial set; refuse one made for another dataset or target model."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise ArnkitError(f"adversarial set not found: {path}; craft it with `arnkit attack`")
    try:
        with h5py.File(path, "r") as handle:
            arrays = {name: handle[name][()] for name in ARRAYS}
            targets = handle["targets"][()] if "targets" in handle else None
            attrs = {key: _decode(value) for key, value in handle.attrs.items()}
    except (OSError, KeyError) as exc:
        raise ArnkitError(f"{path.name} is not a valid arnkit adversarial set ({exc}); re-create it") from None
    if dataset is not None and attrs.get("dataset") != dataset:
        raise ArnkitError(
            f"{path.name} was crafted on dataset '{attrs.get('dataset')}', not '{dataset}'; craft a new set for {dataset}"
        )
    if target_fingerprint is not None and attrs.get("target_fingerprint") != target_fingerprint:
        raise ArnkitError(
            f"{path.name} was crafted against target {attrs.get('target_fingerprint')}, not {target_fingerprint}; "
            "re-craft it against this model"
        )
    adv = AdversarialSet(targets=targets, attrs=attrs, **arrays)
    stored = attrs.get(HASH_ATTR)  # sets written before the hash existed have none
    if stored is not None and content_hash(adv) != stored:
        raise DamagedSet(f"adversarial set {path} was changed after it was crafted (its arrays do not match "
                         "their sha256)")
    return adv


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def merge(parts: list[AdversarialSet]) -> AdversarialSet:
    """Concatenate shards of one crafting job, ordered by dataset index."""
    if not parts:
        raise ArnkitError("no shards to merge; craft them with `arnkit attack --shard i/n`")
    keys = ("attack", "params", "dataset", "split", "target_fingerprint", "seed")
    first = parts[0].attrs
    for part in parts[1:]:
        for key in keys:
            if part.attrs.get(key) != first.get(key):
                raise ArnkitError(f"shards disagree on '{key}'; merge only shards of the same attack job")
    order = np.argsort(np.concatenate([p.indices for p in parts]), kind="stable")
    cat = {name: np.concatenate([getattr(p, name) for p in parts])[order] for name in ARRAYS}
    targets = None
    if parts[0].targets is not None:
        targets = np.concatenate([p.targets for p in parts])[order]
    attrs = {k: v for k, v in first.items() if k not in ("shard", "created")}
    return AdversarialSet(targets=targets, attrs=attrs, **cat)
