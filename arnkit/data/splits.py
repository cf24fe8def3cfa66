"""Which training images each dataset holds out as its validation split: one rule per dataset, as data.

Defaults chosen by comparison (learning rates, schedules, shares, weights) are picked on `val`, so the `test`
numbers are reported once, after the choice. `train` means the source's training images minus `val`
everywhere (target, pools, defense training), so no training path can touch a validation image; `test` is the
source's own test split, untouched.

Rules:
- `last`: the last `count` training images (MNIST and CIFAR-10: 5,000, the common convention).
- `tracks`: per class, a `fraction` of the *tracks* (a track = the frames of one physical sign, one video),
  chosen by a permutation seeded with (seed, class): a sign filmed in several frames lands wholly on one side.
  A track is counted in the class of most of its frames, so no track is split across train and val.
- a dataset without a rule (the user's imported datasets) has no `val`; asking for it is one line.

`definition(name)` is what goes into artifact specs and records: a changed rule gives new cache keys, so a
target or a pool made from another train split is never silently reused.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from arnkit.errors import ArnkitError

VERSION = 1  # bump when a rule's arithmetic changes (the rules below are part of every definition too)


@dataclass(frozen=True)
class Holdout:
    kind: str  # "last" or "tracks"
    count: int = 0  # `last`: how many (0: `fraction` of them)
    fraction: float = 0.0  # `last` without a count: share of the images; `tracks`: share of each class's tracks
    seed: int = 0  # `tracks`: the permutation's seed


RULES: dict[str, Holdout] = {
    "mnist": Holdout("last", count=5000),
    "cifar10": Holdout("last", fraction=0.1),  # 5,000 of the real 50,000; a share, so small copies work too
    "synthetic": Holdout("last", count=64),
    "lisa": Holdout("tracks", fraction=0.1, seed=30),
}

# LISA's file names carry the video they were cut from ("335_stop_1330545910.avi_image0.png"): the track.
_TRACK = re.compile(r"([A-Za-z0-9]+_\d+\.avi)", re.I)


def track_of(source: str) -> str:
    """The track key of one LISA image from its source path: the video name, else the file itself (a track of
    one frame, which is only stricter)."""
    match = _TRACK.search(source.rsplit("/", 1)[-1])
    return match.group(1).lower() if match else source


def rule(name: str) -> Holdout | None:
    return RULES.get(str(name).lower())


def definition(name: str) -> dict[str, Any]:
    """The split's definition for specs and provenance (stable, JSON-able)."""
    holdout = rule(name)
    return {"version": VERSION, "val": asdict(holdout) if holdout else None}


def describe(name: str) -> str:
    """One line for docs and records: how `val` is made."""
    holdout = rule(name)
    if holdout is None:
        return "no validation split"
    if holdout.kind == "last":
        count = holdout.count or f"{holdout.fraction:.0%} of the"
        return f"val = the last {count} training images; train = the rest"
    return (f"val = {holdout.fraction:.0%} of each class's tracks (seed {holdout.seed}); train = the other tracks")


def val_positions(name: str, labels: np.ndarray, groups: Callable[[], Sequence[str]] | None = None) -> np.ndarray:
    """Sorted positions, in the source's full training arrays, of the validation images. `groups`: called only
    for a `tracks` rule, the track key of every training image."""
    holdout = rule(name)
    if holdout is None:
        raise ArnkitError(f"dataset '{name}' has no validation split (only the built-in datasets hold one out); "
                          "use --split test, or import your data with its own val images as the test split")
    n = len(labels)
    if holdout.kind == "last":
        count = holdout.count or int(round(n * holdout.fraction))
        if count >= n:
            raise ArnkitError(f"dataset '{name}' has {n} training images, too few to hold out {count}")
        return np.arange(n - count, n)
    keys = list(groups()) if groups is not None else [str(i) for i in range(n)]
    if len(keys) != n:
        raise ArnkitError(f"dataset '{name}': {len(keys)} track keys for {n} training images; prepare it again")
    return _by_tracks(np.asarray(labels), keys, holdout)


def _by_tracks(labels: np.ndarray, keys: list[str], holdout: Holdout) -> np.ndarray:
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    by_class: dict[int, list[str]] = {}
    for key, positions in members.items():
        # ties go to the smaller class id, so the choice never depends on the order of the files
        votes = Counter(int(labels[i]) for i in positions).most_common()
        top = max(c for _, c in votes)
        by_class.setdefault(min(label for label, c in votes if c == top), []).append(key)
    held: list[int] = []
    for label, tracks in sorted(by_class.items()):
        tracks = sorted(tracks)
        order = np.random.default_rng([holdout.seed, label]).permutation(len(tracks))
        # at least one track of every class that has two, so each class is seen on validation
        n_val = max(1, int(round(len(tracks) * holdout.fraction))) if len(tracks) >= 2 else 0
        for t in order[:n_val]:
            held.extend(members[tracks[t]])
    return np.array(sorted(held), dtype=np.int64)


def positions(name: str, split: str, labels: np.ndarray,
              groups: Callable[[], Sequence[str]] | None = None) -> np.ndarray:
    """Positions of `split` ('train' or 'val') in the source's full training arrays (`labels`: all of them)."""
    val = val_positions(name, labels, groups) if split == "val" or rule(name) else np.zeros(0, dtype=np.int64)
    if split == "val":
        return val
    keep = np.ones(len(labels), dtype=bool)
    keep[val] = False
    return np.flatnonzero(keep)
