"""Studies over several trained defenses, behind `arnkit evaluate --ablation` and `--matrix`:

- ablation (the paper's Fig. 4): ARN and its variants without L_adv, L_nor or L_att, trained with the same
  seen attacks, evaluated on the same attacks; a bar chart of accuracy (higher is better, as in Fig. 4);
- seen/unseen generalization matrix: one ARN per seen set, every attack, as an error-rate heat-map with the
  seen cells outlined.

Missing defenses are trained with `arnkit train`'s defaults (pass train_steps to shorten them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError
from arnkit.evaluation import figures
from arnkit.evaluation.plan import MAX_ITERATIONS, plan_evaluation
from arnkit.evaluation.resolve import ResolvedDefense, Targets, resolve_targets, resolved_from_record
from arnkit.evaluation.runner import evaluate_plan
from arnkit.evaluation.threat_models import GRAY
from arnkit.io import write_json_atomic
from arnkit.progress import Progress
from arnkit.runs.adversarial import parse_seen
from arnkit.runs.context import RunContext

ABLATIONS: dict[str, tuple[str, ...]] = {"ARN": (), "w/o L_adv": ("adv",), "w/o L_nor": ("nor",),
                                         "w/o L_att": ("att",)}
MATRIX_ATTACKS = "pgd_n,pgd_t,cw_n,ddn_n,aa_n,jsma_t,sta_n,sta_t,fwa_n"


def ablation_attacks(info: DatasetInfo) -> str:
    """Fig. 4's attacks: PGD_N, PGD_T, AA_N, PGD_N at the raised budget, STA_N."""
    return f"pgd_n,pgd_t,aa_n,pgd_n@{info.eps_raised:g},sta_n"


def _ensure_arn(ctx: RunContext, *, seen: list[str] | None, ablate: tuple[str, ...], name: str,
                target_fingerprint: str, train_steps: int | None) -> ResolvedDefense:
    from arnkit.defenses import registry

    dataset = ctx.dataset
    seen = list(seen or ctx.preset.seen)
    records = registry.find_defenses(ctx.workspace, dataset, "arn", target_fingerprint=target_fingerprint,
                                     ablate=list(ablate), seen=seen,
                                     steps=None if train_steps is None else int(train_steps))
    record = records[0] if records else registry.get("arn").train(
        dataset, seen=seen, steps=train_steps, ablate=ablate, seed=ctx.seed, workspace=ctx.workspace.root,
        progress=ctx.progress, context=ctx)
    resolved = resolved_from_record(registry.load_record(record), record)
    resolved.defense.name = name
    return resolved


def _gray_box(ctx: RunContext, targets: Targets, attack: str, variants: list[ResolvedDefense], *,
              limit: int | None) -> dict[str, Any]:
    """The study's one gray-box evaluation of its variants, with `arnkit evaluate`'s defaults."""
    started = time.perf_counter()
    plan = plan_evaluation(ctx.info, attack, GRAY, limit=limit, iterations=None, restarts=1,
                           convergence_curves=False, max_iterations=MAX_ITERATIONS, sanity_checks=True, seed=ctx.seed)
    return evaluate_plan(plan, ctx, targets, variants, started=started)


def evaluate_ablation(dataset: str = "mnist", attack: str | None = None, *, limit: int | None = None,
                      train_steps: int | None = None, seed: int = 0, workspace: str | Path | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Fig. 4: gray-box accuracy of ARN and its three ablations on `attack` (default: Fig. 4's attacks)."""
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    info = ctx.info
    targets = resolve_targets(ctx, target_model=None, seed=seed)
    variants = [_ensure_arn(ctx, seen=None, ablate=ablate, name=name, target_fingerprint=targets.defended_fingerprint,
                            train_steps=train_steps)
                for name, ablate in ABLATIONS.items()]
    result = _gray_box(ctx, targets, attack or ablation_attacks(info), variants, limit=limit)
    accuracy = {v.defense.name: {row["label"]: round(100.0 - row["error"], 4) for row in result["rows"]
                                 if row["defense"] == v.defense.name and row["label"] != "worst case"}
                for v in variants}
    out = Path(result["files"]["json"]).parent
    png = figures.bar_chart_png(out / "ablation.png", accuracy, ylabel="accuracy (%)",
                                title=f"{info.name}: ARN ablation, gray-box accuracy (higher is better)")
    record = {**result, "study": "ablation", "accuracy": accuracy, "ablation_png": str(png),
              "variants": {v.defense.name: v.describe() for v in variants}}
    write_json_atomic(out / "results.json", ctx.workspace.relative_paths(record))
    return record


def parse_seen_sets(text: str, ctx: RunContext) -> list[list[str]]:
    """'pgd_n,pgd_t;ddn_n,pgd_n' -> [['pgd_n', 'pgd_t'], ['ddn_n', 'pgd_n']]."""
    sets = [part for part in (p.strip() for p in str(text).split(";")) if part]
    if not sets:
        raise ArnkitError("--matrix needs seen sets separated by ';', e.g. --matrix 'pgd_n,pgd_t;ddn_n,pgd_n'")
    return [parse_seen(ctx, part) for part in sets]


def evaluate_matrix(dataset: str = "mnist", seen_sets: str | list[list[str]] = "pgd_n,pgd_t;ddn_n,pgd_n",
                    attack: str | None = None, *, limit: int | None = None, train_steps: int | None = None,
                    seed: int = 0, workspace: str | Path | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """The seen/unseen generalization matrix: one ARN per seen set (trained if missing) x every attack."""
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    info = ctx.info
    sets = parse_seen_sets(seen_sets, ctx) if isinstance(seen_sets, str) else [list(s) for s in seen_sets]
    targets = resolve_targets(ctx, target_model=None, seed=seed)
    variants = [_ensure_arn(ctx, seen=keys, ablate=(), name="ARN seen " + "+".join(keys),
                            target_fingerprint=targets.defended_fingerprint, train_steps=train_steps)
                for keys in sets]
    result = _gray_box(ctx, targets, attack or MATRIX_ATTACKS, variants, limit=limit)
    rows = [v.defense.name for v in variants]
    cols = [c for c in dict.fromkeys(r["label"] for r in result["rows"]) if c not in ("clean",)]
    cells = {(r["defense"], r["label"]): r for r in result["rows"]}
    matrix = np.array([[cells[(d, c)]["error"] for c in cols] for d in rows], dtype=float)
    seen_mask = np.array([[bool(cells[(d, c)].get("seen")) for c in cols] for d in rows])
    out = Path(result["files"]["json"]).parent
    png = figures.heatmap_png(out / "matrix.png", matrix, rows, cols, seen=seen_mask,
                              title=f"{info.name}: gray-box error (%), seen attacks outlined")
    record = {**result, "study": "matrix", "seen_sets": sets, "matrix": matrix.tolist(), "matrix_rows": rows,
              "matrix_columns": cols, "matrix_png": str(png)}
    write_json_atomic(out / "results.json", ctx.workspace.relative_paths(record))
    return record
