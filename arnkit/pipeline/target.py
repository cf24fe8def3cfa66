"""`arnkit target train`: train (or reuse) the target classifier of a dataset; `arnkit target check`: load a
user's classifier, check it against the dataset and show how it will be attacked (the target service,
`arnkit.runs.target`, does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arnkit.progress import Progress
from arnkit.runs import target as target_service
from arnkit.runs.context import RunContext
from arnkit.runs.target import evaluate_accuracy
from arnkit.runs.target_record import TargetResult


def train_target(
    dataset: str = "mnist",
    model: str | None = None,
    *,
    epochs: int | None = None,
    seed: int = 0,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> TargetResult:
    """Train the dataset's target classifier (or reuse the cached one) and report its test accuracy."""
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    return target_service.train_target(ctx, model, epochs=epochs, seed=seed, force=force)


def ensure_target(dataset: str, model: str | None = None, *, workspace: str | Path | None = None, seed: int = 0,
                  progress: Progress | None = None) -> tuple[Any, TargetResult]:
    """The workspace's target for `dataset` as (keras model, TargetResult), training it if missing (for
    library callers and benchmarks; commands build one RunContext and use `arnkit.runs.target`)."""
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    target = target_service.ensure(ctx, model, seed=seed)
    return target.model, target.record


def check_target(dataset: str, target: str | Path, *, input_scale: float | None = None,
                 target_output: str | None = None, workspace: str | Path | None = None,
                 progress: Progress | None = None) -> TargetResult:
    """`arnkit target check`: the user's classifier at `target`, loaded with safe_mode and checked against
    `dataset` (input shape, class count, accuracy on the first test images); its record says how it is
    attacked (output: logits, logits with the softmax removed, or log-probabilities) and its fingerprint, the
    key of every artifact made against it. Nothing is written."""
    ctx = RunContext.build(dataset, workspace=workspace, progress=progress)
    return target_service.with_target(ctx, path=target, input_scale=input_scale,
                                      output=target_output).require_target().record


__all__ = ["TargetResult", "check_target", "ensure_target", "evaluate_accuracy", "train_target"]
