"""Defenses behind one interface (`Defense`) and one registry of recipes (`registry.REGISTRY`):
pre-processors that restore images (ARN, and later APE-GAN, HGD) and robust classifiers (later AT_PGD, DOA).

    from arnkit import defenses
    restore = defenses.load("arn.keras")                       # the model: x -> G(E(x)), images in [0,1]
    defense, record = defenses.registry.load_file("arn.keras")  # a Defense of the right kind, and its record
    protected = defense.protect(classifier)                    # x -> logits, whatever the kind
    newest = defenses.find_defenses(workspace, "mnist", "arn")
"""

from __future__ import annotations

import os
from typing import Any

from arnkit.defenses import registry
from arnkit.defenses.base import Defense, compose, no_defense
from arnkit.defenses.records import DefenseRecord
from arnkit.defenses.registry import REGISTRY, find_defenses


def load(path: str | os.PathLike) -> Any:
    """The model of an exported defense `.keras` file (safe_mode; refuses legacy HDF5, pickles and corrupt
    files). `registry.load_file` also gives its kind and record."""
    from arnkit.defenses.files import load_defense_file

    return load_defense_file(path)[0]


__all__ = ["REGISTRY", "Defense", "DefenseRecord", "compose", "find_defenses", "load", "no_defense", "registry"]
