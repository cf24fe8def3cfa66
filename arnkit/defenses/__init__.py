"""Defenses behind one interface (`Defense`): pre-processors that restore images (ARN, and later APE-GAN,
HGD) and robust classifiers (later AT_PGD, DOA).

    from arnkit import defenses
    restore = defenses.load("arn.keras")        # x -> G(E(x)), images in [0,1]
    protected = defenses.Defense("arn", "preprocessor", restore).protect(classifier)
"""

from __future__ import annotations

import os
from typing import Any

from arnkit.defenses.base import Defense, compose, no_defense


def load(path: str | os.PathLike) -> Any:
    """Load an exported defense `.keras` file (safe_mode; refuses legacy HDF5, pickles and corrupt files)."""
    from arnkit.defenses.arn import load_defense

    return load_defense(path)


__all__ = ["Defense", "compose", "load", "no_defense"]
