"""Atomic checkpoints of arrays plus one counter (the step or epoch reached), for the training-run template.

    save(path, "step", 250, {"v": variables})
    step, groups = restore(path, "step", {"v": len(variables)}, what="my_defense")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arnkit.errors import ArnkitError
from arnkit.io import atomic_path


def save(path: Path, counter: str, count: int, groups: dict[str, list[Any]]) -> None:
    """Write `count` under `counter` and each group's arrays as <prefix><i>, atomically."""
    arrays = {f"{prefix}{i}": np.asarray(value) for prefix, values in groups.items()
              for i, value in enumerate(values)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{counter: np.int64(count)}, **arrays)


def restore(path: Path, counter: str, sizes: dict[str, int], *, what: str) -> tuple[int, dict[str, list[np.ndarray]]]:
    """(count, {prefix: arrays}) of a checkpoint holding exactly `sizes[prefix]` arrays per group; a file
    that is unreadable or holds other shapes of state is one line naming it and the fix."""
    try:
        with np.load(path) as saved:
            expected = sum(sizes.values()) + 1
            if len(saved.files) != expected:
                raise ValueError(f"{len(saved.files) - 1} arrays for {expected - 1} variables")
            groups = {prefix: [saved[f"{prefix}{i}"] for i in range(size)] for prefix, size in sizes.items()}
            return int(saved[counter]), groups
    except (OSError, KeyError, ValueError) as exc:
        raise ArnkitError(f"{what} checkpoint {path} is unreadable ({exc}); delete it to start over, or pass "
                          "resume=False") from None
