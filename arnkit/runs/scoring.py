"""Gray-box scoring of defenses: the paper's main setting, where the attacker knows the classifier and not
the defense. Examples are crafted against the context's target alone (shared by every defense) and then pass
through each defense. Every training run closes with this report; `arnkit evaluate` builds its rows with the
same pieces (`clean_rows`, `attack_row`, `worst_case_rows`, `grid_rows`, `grid_png`, `write_results`).

    rows, record = closing_report(ctx, resolved, ["pgd_n", "pgd_t"], limit=1000)
    rows["pgd_n"] == {"none": 100.0, "arn": 2.8}          # error %, on the first `limit` test images
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data
from arnkit.errors import ArnkitError
from arnkit.evaluation import figures, metrics, tables
from arnkit.runs.adversarial import ITERATION_PARAMS, craft_set
from arnkit.runs.context import RunContext
from arnkit.workspace import Workspace

GRID_IMAGES = 8
DEFAULT_LIMIT = 1000


@dataclass
class ResolvedDefense:
    """A defense ready to score: the object with `name`, `kind`, `predict(classifier, x)` (arnkit's `Defense`),
    the tag that keys its cached adaptive attacks, the attacks it saw, where it came from."""

    defense: Any
    tag: str  # fingerprint that keys cached adaptive attacks
    seen: list[str] = field(default_factory=list)
    path: str = ""
    record: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.defense.name, "kind": self.defense.kind, "fingerprint": self.tag, "seen": self.seen,
                "path": self.path}


# ------------------------------------------------------------------------------------------------- rows ---

def clean_rows(resolved: list[ResolvedDefense], classifier: Any, x: np.ndarray, y: np.ndarray,
               threat: str) -> list[dict[str, Any]]:
    """One 'clean' row per defense: the error of the defended classifier on natural images."""
    rows = []
    for r in resolved:
        pred, _ = r.defense.predict(classifier, x)
        rows.append({"defense": r.defense.name, "threat_model": threat, "attack": "clean", "label": "clean",
                     "iterations": None, "seen": False, "n": len(x),
                     "error": round(metrics.error_rate(metrics.misclassified(pred, y)), 4), "seconds": 0.0,
                     "params": {}})
    return rows


def attack_row(r: ResolvedDefense, threat: str, *, key: str, label: str, iterations: int | None, restarts: int,
               raised: bool, wrong: np.ndarray, params: dict[str, Any], seconds: float,
               adversarial_path: str) -> dict[str, Any]:
    """The row of one defense under one attack column."""
    return {"defense": r.defense.name, "threat_model": threat, "attack": key, "label": label,
            "iterations": iterations, "restarts": restarts, "seen": key in r.seen and not raised,
            "n": len(wrong), "error": round(metrics.error_rate(wrong), 4), "params": params,
            "seconds": round(seconds, 3), "adversarial_path": adversarial_path}


def worst_case_rows(resolved: list[ResolvedDefense], threat: str,
                    wrong: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Per defense, the error when the attacker picks the best column per image."""
    rows = []
    for r in resolved:
        mask = metrics.worst_case(wrong[r.defense.name])
        rows.append({"defense": r.defense.name, "threat_model": threat, "attack": "worst_case",
                     "label": "worst case", "iterations": None, "seen": False, "n": len(mask),
                     "error": round(metrics.error_rate(mask), 4), "seconds": 0.0, "params": {}})
    return rows


# ---------------------------------------------------------------------------------------------- writing ---

def grid_rows(x: np.ndarray, adversarial: np.ndarray, restored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The evaluation grid's rows: natural, adversarial, and each real defense's restored images."""
    return {"natural": x[:GRID_IMAGES], "adversarial": adversarial, **{
        f"restored ({name})": images for name, images in restored.items() if name != "none"}}


def grid_png(out_dir: Path, classifier: Any, grid: dict[str, np.ndarray], title: str) -> str:
    """The grid's PNG, each image captioned with the class the classifier predicts for it."""
    from arnkit.detection.detector import predict_labels

    captions = {name: [str(int(c)) for c in predict_labels(classifier, images)] for name, images in grid.items()}
    return str(figures.image_grid_png(out_dir / "grid.png", grid, captions=captions, title=title))


def write_results(out_dir: Path, record: dict[str, Any], started: float,
                  workspace: Workspace | None = None) -> dict[str, Any]:
    """Stamp the wall time since `started` and the date, and write the tables (results.json, .csv, .md);
    results.json stores paths relative to the workspace (`out_dir` is `<workspace>/evaluations/<name>.d`)."""
    record["seconds"] = round(time.perf_counter() - started, 2)
    record.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    workspace = workspace or Workspace(Path(out_dir).resolve().parent.parent)
    record["files"] = tables.write_tables(out_dir, "results", record, workspace=workspace)
    return record


# ---------------------------------------------------------------------------------------------- scoring ---

def image_limit(limit: int | None, info: Any, split: str = "test") -> int:
    """The number of images of `split`: None is DEFAULT_LIMIT (or the whole split when smaller), 0 the whole
    split; a negative value or one past the split is one line."""
    split_size = info.split_sizes.get(split)
    n_limit = min(DEFAULT_LIMIT, split_size or DEFAULT_LIMIT) if limit is None else int(limit)
    if n_limit < 0:
        raise ArnkitError(f"--limit must be >= 0, got {limit}")
    if split_size and n_limit > split_size:
        raise ArnkitError(f"--limit {n_limit} is larger than the {info.name} {split} split ({split_size}); "
                          "use --limit 0 for all of it")
    return n_limit


def score_gray_box(ctx: RunContext, resolved: list[ResolvedDefense], attack_keys: list[str], *,
                   limit: int | None = None, seed: int | None = None, split: str = "test") -> dict[str, Any]:
    """Score `resolved` (NONE included if wanted) on clean `split` images ('test', or 'val' to choose a setting)
    and on `attack_keys` crafted against the context's target at the dataset's budgets; write the tables under
    evaluations/ and return the record (the same record `arnkit evaluate --threat-model gray --no-sanity
    --split SPLIT` writes)."""
    started = time.perf_counter()
    target = ctx.require_target()
    classifier, seed = target.model, ctx.seed if seed is None else int(seed)
    meta, ws, threat = ctx.info, ctx.workspace, "gray"
    keys = [str(k).lower() for k in attack_keys]
    if not keys:
        raise ArnkitError("gray-box scoring needs at least one attack")
    n_limit = image_limit(limit, meta, split)
    x, y, _ = data.load_arrays(meta.name, split, limit=n_limit or None, data_dir=ws.data_dir)

    rows = clean_rows(resolved, classifier, x, y, threat)
    wrong: dict[str, dict[str, np.ndarray]] = {r.defense.name: {} for r in resolved}
    grid_source, restored_for_grid = None, {}
    for key in keys:
        start = time.perf_counter()
        adv = craft_set(ctx, key, split=split, limit=n_limit, params={}, seed=seed, model=classifier,
                        fingerprint=target.fingerprint)
        crafted_seconds = float(adv.attrs.get("seconds", 0.0))
        for r in resolved:
            pred, restored = r.defense.predict(classifier, adv.x_adv)
            mask = metrics.misclassified(pred, adv.labels)
            wrong[r.defense.name][key] = mask
            rows.append(attack_row(r, threat, key=key, label=key, iterations=None, restarts=1, raised=False,
                                   wrong=mask, params={}, adversarial_path=adv.path,
                                   seconds=crafted_seconds + time.perf_counter() - start))
            if grid_source is None:
                grid_source = adv.x_adv[:GRID_IMAGES]
            if restored is not None and r.defense.name not in restored_for_grid and len(restored_for_grid) < 4 \
                    and key == keys[0]:
                restored_for_grid[r.defense.name] = restored[:GRID_IMAGES]
            start = time.perf_counter()
    if len(keys) > 1:
        rows += worst_case_rows(resolved, threat, wrong)

    spec_record = {"dataset": meta.name, "threat_model": threat, "attacks": keys,
                   "defenses": [r.tag for r in resolved], "target": target.fingerprint, "limit": n_limit,
                   "iterations": None, "surrogate": "", "seed": seed, "sanity": False}
    if split != "test":  # keyed as evaluation/write.py keys it: the same folder as `arnkit evaluate --split`
        spec_record["split"] = split
    attack_name = keys[0] if len(keys) == 1 else f"{len(keys)}attacks"
    out_dir = ws.artifact("evaluations", f"{meta.name}-{threat}-{attack_name}", spec_record, "d")
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "title": f"{meta.name}: error rates (%) under the {threat} threat model",
        "dataset": meta.name, "threat_model": threat, "split": split, "n": len(x), "seed": seed, "restarts": 1,
        "target": {"model": target.record.model, "fingerprint": target.fingerprint, "path": target.path},
        "cross_model": False, "defenses": [r.describe() for r in resolved], "surrogate": None,
        "attacks": [{"key": k, "label": k, "params": {}, "iterations": [None], "budget": attack_budget(k, meta)}
                    for k in keys],
        "rows": rows, "sanity": [], "sanity_passed": None, "convergence": None,  # sanity_passed: no check ran
        "arnkit_version": arnkit.__version__, "seconds": 0.0,
    }
    if grid_source is not None:
        record["grid_png"] = grid_png(out_dir, classifier, grid_rows(x, grid_source, restored_for_grid),
                                      f"{keys[0]} ({threat}); captions: predicted class")
    return write_results(out_dir, record, started, ws)


def closing_report(ctx: RunContext, defense: ResolvedDefense, attack_keys: list[str], *, limit: int | None,
                   seed: int | None = None, split: str = "test") -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The report a training run closes with: gray box, the new defense beside NONE on clean and seen-attack
    `split` images of the context's target (benchmarks that pick a setting pass 'val'). Returns ({label:
    {"none": error %, <defense name>: error %}}, the evaluation record)."""
    from arnkit.runs.defense import no_defense

    result = score_gray_box(ctx, [ResolvedDefense(no_defense(), "none"), defense], attack_keys, limit=limit,
                            seed=seed, split=split)
    rows: dict[str, dict[str, float]] = {}
    for row in result["rows"]:
        if row["label"] != "worst case":
            rows.setdefault(row["label"], {})[row["defense"]] = float(row["error"])
    return rows, result


# Settings of an attack that change how it runs, not what it is allowed to do.
_NOT_BUDGET = ("batch_size", "precision")


def attack_budget(key: str, info: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings one column ran with, as numbers: the dataset's budget for the attack with the column's
    overrides (eps, steps, step size, ...), so a table can state them instead of "default"."""
    from arnkit import attacks

    try:
        made = attacks.make(key, dataset=info, **(params or {})).params()
    except (ArnkitError, TypeError, ValueError):
        return {}
    return {k: v for k, v in made.items()
            if k not in _NOT_BUDGET and isinstance(v, bool | int | float | str) and v is not None}


def budget_iterations(budget: dict[str, Any]) -> int | None:
    """The attack's own iteration count in `budget` (steps, n_iter, ...), or None when it has none."""
    return next((int(budget[name]) for name in ITERATION_PARAMS if isinstance(budget.get(name), int)
                 and not isinstance(budget.get(name), bool)), None)
