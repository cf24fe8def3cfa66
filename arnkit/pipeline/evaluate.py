"""`arnkit evaluate`: error rates of the target alone and behind each defense, under one threat model, for
one attack, a list, or every registered attack (the dataset's versions of the paper's Tables 1-4), with the
adaptive-attack sanity checks, JSON/CSV/markdown tables and a PNG grid of adversarial vs restored images.

This module resolves the command's inputs once (dataset, workspace, threat model, plan, targets, defenses)
and hands them to the pieces in `arnkit.evaluation`: plan, resolve, craft, score, checks, write (composed by
`runner`), and the studies. The names below the imports are re-exported for existing callers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.evaluation.craft import checked_restarts
from arnkit.evaluation.plan import (  # noqa: F401  (re-exported)
    DEFAULT_LIMIT,
    MAX_ITERATIONS,
    AttackSpec,
    attack_specs,
    iteration_plan,
    plan_evaluation,
    with_iterations,
)
from arnkit.evaluation.resolve import (  # noqa: F401  (re-exported)
    ResolvedDefense,
    check_surrogate_option,
    resolve_defenses,
    resolve_surrogate,
    resolve_targets,
)
from arnkit.evaluation.runner import evaluate_plan
from arnkit.evaluation.score import defended_predictions  # noqa: F401  (re-exported)
from arnkit.evaluation.threat_models import GRAY, ThreatModel
from arnkit.progress import Progress
from arnkit.runs import scoring
from arnkit.runs.context import RunContext
from arnkit.runs.target import with_target

DEFAULT_DEFENSES = "none,arn"


def evaluate(
    dataset: str = "mnist",
    attack: str = "pgd_n",
    *,
    defenses: str | list[str] | list[ResolvedDefense] = DEFAULT_DEFENSES,
    defense_kind: str | None = None,
    threat_model: str = "gray",
    limit: int | None = None,
    iterations: int | None = None,
    restarts: int = 1,
    convergence_curves: bool = False,
    max_iterations: int = MAX_ITERATIONS,
    surrogate: str | None = None,
    target_model: str | None = None,
    target: str | Path | None = None,
    input_scale: float | None = None,
    target_output: str | None = None,
    sanity_checks: bool = True,
    seed: int = 0,
    split: str = "test",
    target_seed: int | None = None,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate `defenses` against `attack` under `threat_model`; write tables and figures; return the record.

    `defenses`: 'none', 'arn' (the newest full ARN for the target, trained if missing), paths of exported
    `.keras` pre-processors, or already resolved defenses (the ablation and matrix studies pass those).

    `target_model` evaluates the defenses in front of another classifier of the zoo (cross-model, Table 5):
    the defenses stay those trained for the dataset's default target.

    `target`: a user's Keras classifier (.keras) in place of the zoo target (checked against the dataset first;
    `input_scale`, `target_output`: see `arnkit.runs.target.from_file`); the defenses are those trained for it.

    `target_seed`: the seed of the workspace target (None = `seed`); `arnkit train`'s report passes 0, the
    target every `arnkit train` run defends.

    `split`: the images scored, 'test' (the default: report) or 'val' (held out of train: pick a setting).

    `restarts`: run each attack with seeds seed, seed+1, ... and keep per image the first restart that fools
    the attacked model (else the last); the error is that of the per-image best.

    `convergence_curves` (white / bpda): error vs iterations (doubled from the attack's count up to
    `max_iterations`) and error vs eps for the first attack, per defense, on the sanity subset: PNGs and
    CSVs beside the tables, the points in the record's `convergence`."""
    started = time.perf_counter()
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    info, ws, progress = ctx.info, ctx.workspace, ctx.progress
    threat = ThreatModel.parse(threat_model)
    plan = plan_evaluation(info, attack, threat, limit=limit, iterations=iterations,
                           restarts=checked_restarts(restarts), convergence_curves=convergence_curves,
                           max_iterations=max_iterations, sanity_checks=sanity_checks, seed=seed,
                           split=split)
    check_surrogate_option(threat, surrogate)
    if target is not None:
        if target_model:
            raise ArnkitError("--target names the classifier once: your model's .keras path or a zoo model name "
                              "(cross-model); pass one of them")
        ctx = with_target(ctx, path=target, input_scale=input_scale, output=target_output)

    target_seed = seed if target_seed is None else int(target_seed)
    targets = resolve_targets(ctx, target_model=target_model, seed=target_seed)
    resolved_surrogate = (resolve_surrogate(surrogate, info, ws, targets.defended_fingerprint) if surrogate
                          else None)
    if isinstance(defenses, list | tuple) and defenses and isinstance(defenses[0], ResolvedDefense):
        resolved = list(defenses)
    else:
        resolved = resolve_defenses(defenses, info, ws, target_fingerprint=targets.defended_fingerprint, seed=seed,
                                    progress=progress, context=ctx if targets.user else None, kind=defense_kind)
    return evaluate_plan(plan, ctx, targets, resolved, surrogate=resolved_surrogate, started=started)


def closing_report(dataset: str, attack_keys: list[str], defense: ResolvedDefense, *, limit: int, seed: int,
                   workspace: str | Path, progress: Progress | None = None, split: str = "test"
                   ) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The report a training run closes with (`arnkit.runs.scoring.closing_report`), for library callers: gray
    box, the new defense beside NONE on clean and seen-attack `split` images of the workspace's seed-0 target.
    Returns ({label: {"none": error %, <defense name>: error %}}, the evaluation record)."""
    ctx = with_target(RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress))
    return scoring.closing_report(ctx, defense, list(attack_keys), limit=limit, split=split)


def run_evaluation(dataset: str = "mnist", attack: str | None = None, *, ablation: bool = False,
                   matrix: str | None = None, train_steps: int | None = None, **options: Any) -> dict[str, Any]:
    """`arnkit evaluate`: one evaluation, the ablation study (`ablation`) or the seen/unseen matrix (`matrix`)."""
    if ablation and matrix:
        raise ArnkitError("--ablation and --matrix are separate studies; pass one of them")
    if ablation or matrix:
        if options.get("target") is not None:
            raise ArnkitError("--ablation and --matrix study the zoo target; drop --target (or evaluate your model "
                              "with one --attack list)")
        if ThreatModel.parse(options.get("threat_model", "gray")) is not GRAY:
            raise ArnkitError("--ablation and --matrix run in the paper's gray-box setting; drop --threat-model")
        if checked_restarts(options.get("restarts", 1)) != 1:
            raise ArnkitError("--restarts applies to one evaluation, not to --ablation or --matrix; drop it")
        if options.get("convergence_curves"):
            raise ArnkitError("--convergence applies to one white-box evaluation, not to --ablation or --matrix")
        if options.get("split", "test") != "test":
            raise ArnkitError("--split applies to one evaluation, not to --ablation or --matrix; drop it")
        from arnkit.evaluation import studies

        common = {k: options[k] for k in ("limit", "seed", "workspace", "progress") if k in options}
        if ablation:
            return studies.evaluate_ablation(dataset, attack, train_steps=train_steps, **common)
        return studies.evaluate_matrix(dataset, matrix, attack, train_steps=train_steps, **common)
    if train_steps is not None:
        raise ArnkitError("--train-steps applies to --ablation and --matrix; train a defense with `arnkit train`")
    return evaluate(dataset, attack or "pgd_n", **options)
