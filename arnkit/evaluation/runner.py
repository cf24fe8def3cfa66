"""One evaluation from resolved inputs: craft and score every column, run the adaptive checks, write the
tables. `arnkit.pipeline.evaluate.evaluate` resolves the inputs from the command line; the studies
(`arnkit.evaluation.studies`) resolve their own."""

from __future__ import annotations

import time
from typing import Any

from arnkit.evaluation import checks as adaptive_checks
from arnkit.evaluation.craft import Crafter
from arnkit.evaluation.plan import EvaluationPlan
from arnkit.evaluation.resolve import ResolvedDefense, Surrogate, Targets, load_test_images
from arnkit.evaluation.score import clean_rows, score_columns, worst_case_rows
from arnkit.evaluation.write import grid_png, output_folder, results_record, write_results
from arnkit.runs.context import RunContext


def evaluate_plan(plan: EvaluationPlan, ctx: RunContext, targets: Targets, defenses: list[ResolvedDefense], *,
                  surrogate: Surrogate | None = None, started: float | None = None) -> dict[str, Any]:
    """Run `plan` against `defenses` in front of `targets.classifier`; write and return the record. `started`
    (a `time.perf_counter()`) is where the record's wall time counts from (default: now)."""
    started = time.perf_counter() if started is None else started
    ws = ctx.workspace
    x, y = load_test_images(plan.info, ws, plan.limit, plan.split)
    crafter = Crafter(ctx, plan.split)
    classifier, classifier_tag = targets.classifier, targets.record.fingerprint

    rows = clean_rows(defenses, classifier, x, y, plan.threat)
    scored = score_columns(plan, crafter, targets, defenses, surrogate)
    rows += scored.rows
    if plan.several_columns:
        rows += worst_case_rows(defenses, scored.wrong, plan.threat)

    checks = (adaptive_checks.sanity_suites(plan, crafter, classifier, classifier_tag, defenses, x, y)
              if plan.runs_sanity_suite else [])
    out_dir = output_folder(plan, ws, targets, defenses, surrogate)
    curves = (adaptive_checks.convergence_curves(plan, crafter, classifier, classifier_tag, defenses, x, y, out_dir)
              if plan.convergence_curves else None)
    if plan.threat.adaptive:
        adaptive_checks.mark_lower_bounds(rows, checks, curves, plan.first_label)

    record = results_record(plan, targets, defenses, surrogate, n=len(x), rows=rows, checks=checks, curves=curves)
    if scored.grid_adversarial is not None:
        record["grid_png"] = grid_png(out_dir, plan, classifier, x, scored.grid_adversarial, scored.restored)
    return write_results(out_dir, record, started, ws)
