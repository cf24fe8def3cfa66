"""Named ARN recipes, as data: what `arnkit train --recipe NAME` trains (issue 29).

A recipe is a row: a name, one line of description, `arnkit train` options (steps, width, objective, learning
rate, schedule, guidance, adaptive, batch size), `ARNConfig` overrides (the adaptive share and PGD steps, ...),
the parts that need one Keras backend. The rows `bench/recipe_search.py --publish` measured for each recipe live
beside this file as data (`recipe_measurements.json`), read on first use.

    chosen = arn_recipes.resolve("paper", {"steps": 40})   # the row, the merged options, what the flags changed
    arn_recipes.resolve(None, {})                           # DEFAULT_RECIPE

The rule, from weakest to strongest: the dataset's preset (`arnkit.presets`), then the recipe's values, then
the flags the user gave (`--steps`, `--width`, `--objective`, `--adaptive`, ...). An option a recipe leaves
out is the dataset's preset, so `default` (no values at all) is exactly what `arnkit train --dataset X`
trained before recipes existed, per dataset.

This module imports nothing heavy: the CLI checks a recipe name with it before the TensorFlow import.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError

# `arnkit train` without --recipe trains this row. Making the search's winner the default is this one line
# (pending: docs/recipes.md).
DEFAULT_RECIPE = "default"
# This row's runs keep the cache key they had before recipes existed (the recipe name is left out of it), so
# existing workspaces are reused; every other recipe's name is part of its run folder's key.
UNKEYED_RECIPE = "default"

# The `arnkit train` options a recipe may set (None or absent = the dataset's preset).
TRAIN_OPTIONS = ("steps", "width", "objective", "batch_size", "learning_rate", "lr_schedule", "guide_weight",
                 "adaptive")
# The rows `bench/recipe_search.py --publish` measured, per recipe: data written by the bench, never by hand.
MEASUREMENTS = Path(__file__).with_name("recipe_measurements.json")
# The part that needs TensorFlow whenever a recipe trains adaptively: jax_training / torch_training step the
# four-player game only (no white-box PGD through the defense inside the step).
ADAPTIVE_PART = "adaptive training (white-box PGD through the defense while it trains)"


@dataclass(frozen=True)
class Measured:
    """One row `bench/recipe_search.py` measured for a recipe: never typed in by hand."""

    dataset: str
    split: str  # "val" for the search, "test" for the tables
    columns: dict[str, float]  # error rate (%) per column, e.g. {"clean": 1.2, "pgd_n": 2.8, "white_worst": 9.1}
    command: str
    machine: str  # lscpu model name and whether it has avx512f
    date: str  # YYYY-MM-DD
    seeds: int = 1


@dataclass(frozen=True)
class ARNRecipe:
    name: str
    description: str
    train: dict[str, Any] = field(default_factory=dict)  # TRAIN_OPTIONS it pins
    config: dict[str, Any] = field(default_factory=dict)  # ARNConfig overrides (adaptive_share, ...)
    needs: tuple[tuple[str, str], ...] = ()  # (part, the one backend it trains on)

    @property
    def measured(self) -> tuple[Measured, ...]:
        """The rows bench/recipe_search.py published for this recipe (MEASUREMENTS), oldest first."""
        return measurements().get(self.name, ())

    def settings(self) -> dict[str, Any]:
        """What the recipe pins, as plain data (for `arnkit defenses` and the record)."""
        return {**self.train, **({"config": dict(self.config)} if self.config else {})}


@dataclass(frozen=True)
class Resolved:
    recipe: ARNRecipe
    options: dict[str, Any]  # TRAIN_OPTIONS: the recipe's values, then the flags' (absent = the preset)
    config_overrides: dict[str, Any]  # the recipe's ARNConfig overrides, then the caller's
    overridden: tuple[str, ...]  # flags the user gave that replaced a value the recipe pins

    @property
    def keyed_name(self) -> str | None:
        """The recipe name for the run folder's key, or None for UNKEYED_RECIPE (its old keys stay valid)."""
        return None if self.recipe.name == UNKEYED_RECIPE else self.recipe.name


_RECIPES = [
    ARNRecipe("default",
              "the dataset's preset (arnkit/presets.py; MNIST: width large, Adam 1e-4, guidance 5, chosen on val "
              "in docs/recipes.md; until 2026-12-08 lr 1e-3, now `--learning-rate 1e-3`)"),
    ARNRecipe("paper",
              "the paper's ARN (Eq. 1-8, Section 4.1: width default, Adam 1e-4 constant, no guidance); steps stay "
              "the dataset's CPU schedule, add --steps 20000 for the paper's",
              train={"objective": "paper", "width": "default", "learning_rate": 1e-4, "lr_schedule": "constant",
                     "guide_weight": 0.0, "adaptive": False}),
    ARNRecipe("adaptive",
              "`default` leaked to white-box PGD while it trains (the dataset's AdaptivePreset: share .5, 5 steps)",
              train={"adaptive": True}, needs=((ADAPTIVE_PART, "tensorflow"),)),
]

RECIPES: dict[str, ARNRecipe] = {recipe.name: recipe for recipe in _RECIPES}


def get(name: str) -> ARNRecipe:
    """The recipe called `name`; an unknown name is one line listing the known ones."""
    key = str(name).strip().lower()
    if key not in RECIPES:
        raise ArnkitError(f"unknown ARN recipe '{name}'; known recipes: {', '.join(RECIPES)} "
                          "(`arnkit defenses` describes them)")
    return RECIPES[key]


def resolve(name: str | None, flags: dict[str, Any], config_overrides: dict[str, Any] | None = None) -> Resolved:
    """The recipe `name` (None = DEFAULT_RECIPE) with the user's `flags` on top (None values = not given)."""
    recipe = get(DEFAULT_RECIPE if name is None else name)
    unknown = sorted(set(recipe.train) - set(TRAIN_OPTIONS))
    if unknown:  # a row of this file is wrong, not the user's input
        raise ArnkitError(f"ARN recipe '{recipe.name}' sets {', '.join(unknown)}, which arnkit train does not take")
    given = {k: v for k, v in flags.items() if v is not None}
    overridden = tuple(sorted(k for k in given if k in recipe.train and recipe.train[k] != given[k]))
    return Resolved(recipe, {**recipe.train, **given}, {**recipe.config, **(config_overrides or {})}, overridden)


def check_backend(recipe: ARNRecipe, current: str) -> None:
    """Refuse, in one line, a recipe with a part that the running Keras backend `current` cannot train."""
    for part, needed in recipe.needs:
        if current != needed:
            others = [r.name for r in RECIPES.values() if all(b == current for _, b in r.needs)]
            raise ArnkitError(f"recipe '{recipe.name}' needs {needed} for its {part}; this process runs Keras on "
                              f"{current}: set KERAS_BACKEND={needed}, or choose a recipe that trains on {current}: "
                              f"{', '.join(others)}")


def describe() -> list[dict[str, Any]]:
    """Each recipe as plain data: name, description, what it pins, backends it needs, measured rows."""
    return [{"name": r.name, "description": r.description, "settings": r.settings(), "default": r.name == DEFAULT_RECIPE,
             "needs": {part: backend for part, backend in r.needs},
             "measured": [vars(m) for m in r.measured]} for r in RECIPES.values()]


@functools.cache
def measurements() -> dict[str, tuple[Measured, ...]]:
    """{recipe: its measured rows} from MEASUREMENTS (absent: none yet); a damaged file is one line."""
    try:
        rows = json.loads(MEASUREMENTS.read_text())["rows"]
        out: dict[str, list[Measured]] = {}
        for row in rows:
            out.setdefault(str(row["recipe"]), []).append(Measured(**{k: v for k, v in row.items() if k != "recipe"}))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArnkitError(f"{MEASUREMENTS} is damaged ({type(exc).__name__}: {exc}); restore it from the "
                          "arnkit release or git, or republish it with bench/recipe_search.py --publish") from None
    return {name: tuple(found) for name, found in out.items()}
