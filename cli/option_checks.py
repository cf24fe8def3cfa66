"""Checks of a command's options that need no TensorFlow, run by `handle_errors` before the seconds-long import
and so before any target, pool or run folder exists: counts, limits against the dataset's splits, attack and
defense names, and the folders the command will write.

The checks go by option name (the CLI's parameters share them across commands); a pipeline function checks the
same things again for library callers, so nothing here is the only guard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError

# Options that count something done at least once: 0 would divide by zero or train nothing.
AT_LEAST_ONE = ("batch_size", "steps", "epochs", "attack_steps", "train_steps", "iterations", "restarts",
                "max_iterations")
# Options that count images, 0 meaning "all of them".
IMAGE_COUNTS = ("limit", "eval_limit", "pool_size", "train_limit", "adaptive_limit")
# Which split each image count is taken from (`arnkit attack` names its own with --split).
SPLIT_OF = {"limit": "test", "eval_limit": "test", "pool_size": "train", "train_limit": "train",
            "adaptive_limit": "test"}


def check_options(kwargs: dict[str, Any], typed: set[str] | None = None) -> None:
    """Raise one ArnkitError for the first option that cannot work; return quietly otherwise. `typed`: the
    options the user gave (None: all); a default image count is clamped to its split later, never refused."""
    for name in AT_LEAST_ONE:
        value = kwargs.get(name)
        if value is not None and int(value) < 1:
            raise ArnkitError(f"{_flag(name)} must be >= 1, got {value}")
    for name in IMAGE_COUNTS:
        value = kwargs.get(name)
        if value is not None and int(value) < 0:
            raise ArnkitError(f"{_flag(name)} must be >= 0 (0 = the whole split), got {value}")
    if kwargs.get("select_val") is not None and int(kwargs["select_val"]) < 0:
        raise ArnkitError(f"--select-val must be >= 0 (0 = keep the last epoch), got {kwargs['select_val']}")
    kind = kwargs.get("defense_kind")
    if kind is not None and kind not in ("preprocessor", "classifier"):
        raise ArnkitError(f"--defense-kind takes preprocessor or classifier, got '{kind}'")
    _check_attack_names(kwargs)
    _check_defense_names(kwargs)
    if isinstance(kwargs.get("recipe"), str):
        from arnkit.defenses import arn_recipes

        arn_recipes.get(kwargs["recipe"])  # an unknown recipe is one line naming the known ones
    _check_writable(kwargs)
    _check_limits_fit(kwargs, set(kwargs) if typed is None else typed)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _attack_keys(value: str) -> list[str]:
    """The registry keys of an --attack / --seen value: comma list, key@eps allowed, 'all' skipped."""
    keys = [item.strip().split("@", 1)[0].strip().lower() for item in value.split(",")]
    return [key for key in keys if key and key != "all"]


def _check_attack_names(kwargs: dict[str, Any]) -> None:
    from arnkit import attacks

    for name in ("attack", "seen"):
        if isinstance(kwargs.get(name), str):
            for key in _attack_keys(kwargs[name]):
                attacks.get(key)  # an unknown key is one line naming the known ones


def _check_defense_names(kwargs: dict[str, Any]) -> None:
    """--defense: a recipe key, 'none'/'all', or the path of an exported file that exists."""
    from arnkit.defenses.registry import REGISTRY, get

    value = kwargs.get("defense")
    if isinstance(value, Path):
        items = [str(value)]
    elif isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    else:
        return
    for item in items:
        if item.lower() in (*REGISTRY, "none", "all"):
            continue
        if item.endswith(".keras") or "/" in item or isinstance(value, Path):
            if not Path(item).exists():
                raise ArnkitError(f"defense {item} does not exist; pass 'none', a defense key "
                                  f"({', '.join(REGISTRY)}) or the path of an exported .keras")
            continue
        get(item)


def _check_writable(kwargs: dict[str, Any]) -> None:
    """The workspace and an --output file must be creatable where they are asked for."""
    from arnkit.workspace import ENV_VAR, Workspace

    if "workspace" in kwargs:
        root = Workspace.resolve(kwargs.get("workspace")).root
        reason = _unwritable(root)
        if reason:
            raise ArnkitError(f"workspace {root} is not writable ({reason}); pass --workspace DIR or set {ENV_VAR}")
    output = kwargs.get("output")
    if isinstance(output, str | Path):
        path = Path(output).expanduser().resolve()
        reason = "it is a folder" if path.is_dir() else _unwritable(path.parent)
        if reason:
            raise ArnkitError(f"--output {output} cannot be written ({reason}); pass a file in a writable folder")


def _unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be created or written into, else None (its nearest existing ancestor decides)."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            return "no such location"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is read-only"
    return None


def _check_limits_fit(kwargs: dict[str, Any], typed: set[str]) -> None:
    """An explicit image count past its split is one line now, not after the target has trained. The commands'
    own defaults are None (or fit any split), so only a value the user typed can fail here."""
    if not isinstance(kwargs.get("dataset"), str):
        return
    given = {name: kwargs[name] for name in IMAGE_COUNTS if kwargs.get(name) and name in typed}
    if not given:
        return
    from arnkit import data
    from arnkit.workspace import Workspace

    info = data.info(kwargs["dataset"], Workspace.resolve(kwargs.get("workspace")).data_dir)
    for name, value in given.items():
        split = kwargs["split"] if name == "limit" and isinstance(kwargs.get("split"), str) else SPLIT_OF[name]
        size = info.split_sizes.get(split)
        if size and int(value) > size:
            raise ArnkitError(f"{_flag(name)} {value} is larger than the {info.name} {split} split ({size}); "
                              f"use {_flag(name)} 0 for all of it")
