"""Write one evaluation: its output folder (keyed by everything that changes its numbers), the results record,
the JSON/CSV/markdown tables and the PNG grid of natural, adversarial and restored images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit.evaluation.plan import EvaluationPlan
from arnkit.evaluation.resolve import ResolvedDefense, Surrogate, Targets
from arnkit.runs import scoring
from arnkit.workspace import Workspace

GRID_IMAGES = scoring.GRID_IMAGES


def output_folder(plan: EvaluationPlan, ws: Workspace, targets: Targets, defenses: list[ResolvedDefense],
                  surrogate: Surrogate | None) -> Path:
    """`<workspace>/evaluations/<dataset>-<threat>-<attack>-<hash>.d/`, created."""
    spec_record = {"dataset": plan.info.name, "threat_model": plan.threat.name,
                   "attacks": [s.label for s in plan.specs], "defenses": [r.tag for r in defenses],
                   "target": targets.record.fingerprint, "limit": plan.limit, "iterations": plan.iterations,
                   "surrogate": surrogate.tag if surrogate else "", "seed": plan.seed, "sanity": plan.sanity_checks}
    if plan.split != "test":  # keyed only when not test: earlier evaluation folders keep their names
        spec_record["split"] = plan.split
    if plan.restarts > 1:  # keyed only when used: earlier evaluation folders keep their names
        spec_record["restarts"] = plan.restarts
    if plan.convergence_curves:
        spec_record["convergence"] = {"max_iterations": plan.max_iterations}
    out_dir = ws.artifact("evaluations", plan.folder_name, spec_record, "d")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def results_record(plan: EvaluationPlan, targets: Targets, defenses: list[ResolvedDefense],
                   surrogate: Surrogate | None, *, n: int, rows: list[dict[str, Any]], checks: list[dict[str, Any]],
                   curves: dict[str, Any] | None) -> dict[str, Any]:
    """The record `arnkit evaluate` returns and writes as results.json (before its grid, files and time)."""
    info, threat, record = plan.info, plan.threat, targets.record
    return {
        "title": f"{info.name}: error rates (%) under the {threat.name} threat model",
        "dataset": info.name, "threat_model": threat.name, "split": plan.split, "n": n, "seed": plan.seed,
        "restarts": plan.restarts,
        "target": {"model": record.model, "fingerprint": record.fingerprint, "path": record.path},
        "cross_model": targets.cross_model,
        "defenses": [r.describe() for r in defenses],
        "surrogate": {"path": surrogate.path, "fingerprint": surrogate.tag} if surrogate else None,
        "attacks": [{"key": s.key, "label": s.label, "params": s.params, "iterations": plan.plans[s.label],
                     "budget": scoring.attack_budget(s.key, info, s.params)} for s in plan.specs],
        "rows": rows, "sanity": checks, "sanity_passed": sanity_passed(checks),
        "convergence": curves,
        "arnkit_version": arnkit.__version__, "seconds": 0.0,
    }


def sanity_passed(checks: list[dict[str, Any]]) -> bool | None:
    """None when no check ran (gray box, transfer, --no-sanity): nothing was checked, so nothing passed."""
    return all(c["passed"] for c in checks) if checks else None


def grid_png(out_dir: Path, plan: EvaluationPlan, classifier: Any, natural: np.ndarray, adversarial: np.ndarray,
             restored: dict[str, np.ndarray]) -> str:
    """Natural, adversarial (the first column's) and restored images, each captioned with the class the
    classifier predicts for it."""

    title = f"{plan.first.label} ({plan.threat.name}); captions: predicted class"
    return scoring.grid_png(out_dir, classifier, scoring.grid_rows(natural, adversarial, restored), title)


write_results = scoring.write_results
