"""`arnkit train`: any defense recipe of the registry (ARN by default) with its own defaults. ARN's run is
`arnkit.defenses.arn.recipe`; the training-run template every recipe shares is `arnkit.runs.training`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arnkit.defenses.arn.recipe import (
    DEFAULT_BATCH,
    STRATEGIES,
    check_backend_options,
    make_strategy,
    train_defense,
)
from arnkit.errors import ArnkitError
from arnkit.progress import NullProgress, Progress
from arnkit.runs import adversarial
from arnkit.runs.batches import numpy_batches, step_batches
from arnkit.runs.context import RunContext
from arnkit.runs.scoring import ResolvedDefense, closing_report
from arnkit.runs.target import with_target


def parse_seen(seen: str | list[str] | tuple[str, ...] | None, dataset: str) -> list[str]:
    """The seen attacks of `--seen` on `dataset` (None: the dataset's preset); a bad list is one line."""
    return adversarial.parse_seen(RunContext.build(dataset, require_data=False), seen)


def seen_pools(dataset: str, seen: list[str], *, pool_size: int, seed: int, workspace: str | Path | None,
               progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x_adv (N, K, H, W, C), x_nat (N, H, W, C), pool paths) against the workspace's target, for library
    callers and benchmarks (recipes use `arnkit.runs.adversarial.seen_pools` with their run context)."""
    ctx = with_target(RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress))
    pools = adversarial.seen_pools(ctx, list(seen), pool_size=pool_size)
    return pools.x_adv, pools.x_nat, pools.paths


def train(dataset: str = "mnist", defense: str = "arn", *, seed: int = 0, workspace: str | Path | None = None,
          progress: Progress | None = None, target: str | Path | None = None, input_scale: float | None = None,
          target_output: str | None = None, **options: Any) -> dict[str, Any]:
    """`arnkit train`: any registry recipe (ARN by default) with its own defaults. `options` are the recipe's
    (`DefenseRecipe.options`); None means "not given". One that does not apply to the recipe is refused in one
    line, with the command-line flags it does take, before any work starts.

    `target`: a user's Keras classifier (.keras) the defense is trained for instead of the zoo target, checked
    against the dataset first (`arnkit.runs.target.from_file`: `input_scale`, `target_output`)."""
    from arnkit.defenses import registry

    recipe = registry.get(defense)
    given = {name: value for name, value in options.items() if value is not None}
    if given.get("adaptive") is False:
        given.pop("adaptive")  # the flag's off position applies to every recipe
    if given.get("adaptive") and recipe.kind == "classifier":
        raise ArnkitError(f"--adaptive leaks a pre-processor to white-box attacks while it trains; {recipe.key} is a "
                          "robust classifier, adversarially trained on its own attacks already: drop --adaptive")
    misplaced = sorted(set(given) - set(recipe.options))
    if misplaced:
        def flags(names: Any) -> str:
            return ", ".join("--" + name.replace("_", "-") for name in names)
        takes = [name for name in recipe.options if name in CLI_OPTIONS]
        verb = "does" if len(misplaced) == 1 else "do"
        raise ArnkitError(f"{flags(misplaced)} {verb} not apply to --defense {recipe.key}; it takes {flags(takes)}")
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    _check_counts(given, ctx)
    if target is not None:
        ctx = with_target(ctx, path=target, input_scale=input_scale, output=target_output)
    return recipe.train(ctx.dataset, workspace=workspace, seed=seed, progress=progress, context=ctx,
                        **given).to_dict()


def _check_counts(given: dict[str, Any], ctx: RunContext) -> None:
    """Counts the user gave, checked before the target trains: a batch or step count below one, or an image
    count past its split, is one line (a default is clamped to the split by the template instead)."""
    for name in ("batch_size", "steps", "epochs", "attack_steps"):
        if name in given and int(given[name]) < 1:
            raise ArnkitError(f"--{name.replace('_', '-')} must be >= 1, got {given[name]}")
    for name, split in (("eval_limit", "test"), ("pool_size", "train"), ("train_limit", "train")):
        size = ctx.info.split_sizes.get(split)
        if name in given and size and int(given[name]) > size:
            flag = f"--{name.replace('_', '-')}"
            raise ArnkitError(f"{flag} {given[name]} is larger than the {ctx.info.name} {split} split ({size}); "
                              f"use {flag} 0 for all of it")


# The recipe options `arnkit train` exposes as flags (the rest are for library callers and benchmarks).
CLI_OPTIONS = ("seen", "steps", "width", "objective", "batch_size", "pool_size", "ablate", "strategy", "resume",
               "learning_rate", "lr_schedule", "guide_weight", "eval_limit", "tensorboard", "epochs", "eps",
               "attack_steps", "step_size", "train_limit", "roa", "select_val", "guide_layer", "adaptive", "recipe")


def evaluate_gray_box(dataset: str, attack_keys: list[str], preprocessor: Any, *, limit: int, seed: int,
                      workspace: str | Path | None, progress: Progress | None = None, fingerprint: str | None = None,
                      split: str = "test") -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """ARN's closing report for a pre-processor on `split` ('val' to choose a setting), for benchmarks that score
    snapshots:
    ({row: {"none": error %, "arn": error %}}, the evaluation record)."""
    from arnkit.fingerprint import model_fingerprint
    from arnkit.runs.defense import Defense

    ctx = with_target(RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress))
    defense = ResolvedDefense(Defense("arn", "preprocessor", preprocessor), fingerprint or model_fingerprint(preprocessor),
                              list(attack_keys))
    return closing_report(ctx, defense, list(attack_keys), limit=limit, split=split)


__all__ = ["CLI_OPTIONS", "DEFAULT_BATCH", "STRATEGIES", "NullProgress", "check_backend_options",
           "evaluate_gray_box", "make_strategy", "numpy_batches", "parse_seen", "seen_pools", "step_batches",
           "train", "train_defense"]
