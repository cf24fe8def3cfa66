"""Mean ± spread over defense seeds, from one `arnkit evaluate --defense all` that scored every seed of a recipe.

    python bench/seed_spread.py WS/evaluations/<run>.d/results.json [--out OUT.md] [--json OUT.json]

Each defense row of the evaluation is matched to its run record (`record.json` beside the exported file): rows
whose records agree on everything but the seed (key, label, options, seen attacks, steps, adaptive) form one
group, shown as mean ± sample standard deviation (min-max) per column. NONE and a recipe trained with one seed
stay single values. The seeds are the defenses' (`arnkit train --seed S`); every run defends the same seed-0
target. bench/seeds.sh trains the headline rows with 3 seeds and calls this.

    python bench/seed_spread.py RESULTS.json --robust-on-target    # also the robust classifiers "on L"

`--robust-on-target` adds a row "<name> on L" per robust classifier of the workspace (AT_PGD, DOA), scored on
the very sets the evaluation's columns used against the original target (the paper's gray-box reading for a
defense that replaces the classifier; `arnkit evaluate` attacks it directly, its white-box number), with the
clean error on the same images. The sets are the evaluation's cached ones (a missing one is crafted, and said).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arnkit.evaluation import metrics, spread  # noqa: E402
from arnkit.io import read_json_record, write_json_atomic  # noqa: E402
from arnkit.runs.defense_record import read_record  # noqa: E402
from arnkit.workspace import Workspace  # noqa: E402

IDENTITY = ("key", "label", "options", "seen", "steps", "adaptive", "target_fingerprint")


def group_of(record: dict[str, Any]) -> tuple[str, str]:
    """(identity digest, display name) of a run record, seed left out."""
    identity = json.dumps({k: record.get(k) for k in IDENTITY}, sort_keys=True, default=str)
    recipe = record.get("recipe")
    name = str(record.get("label") or record.get("key")) + (f" [{recipe}]" if recipe and recipe != "default" else "")
    return hashlib.sha256(identity.encode()).hexdigest()[:8], name


def group_name(names: dict[str, str], identity: str, name: str) -> str:
    """The display name of a seed group, kept in `names` ({identity: name}): its own name, or with its identity
    digest when another group (same label, other options: say two AT_PGD schedules) already has that name."""
    if identity not in names:
        names[identity] = name if name not in names.values() else f"{name} {identity}"
    return names[identity]


def members(results: dict[str, Any], workspace: Workspace) -> dict[str, tuple[str, int | None]]:
    """{defense row name: (group name, seed)} for every defense of the evaluation."""
    out: dict[str, tuple[str, int | None]] = {}
    names_by_identity: dict[str, str] = {}
    for defense in results["defenses"]:
        if not defense.get("path"):  # NONE
            out[defense["name"]] = (defense["name"], None)
            continue
        record = read_record(workspace.locate(defense["path"]).parent / "record.json")
        identity, name = group_of(record)
        out[defense["name"]] = (group_name(names_by_identity, identity, name), record.get("seed"))
    return out


def classifier_records(workspace: Workspace, target_fingerprint: str | None = None
                       ) -> list[tuple[Path, dict[str, Any]]]:
    """(exported file, run record) of every robust classifier trained in the workspace (for that target)."""
    found = []
    for record_path in sorted(workspace.root.glob("defenses/*/record.json")):
        record = read_record(record_path)
        if record.get("kind") != "classifier" or not record.get("defense_path"):
            continue
        if target_fingerprint and record.get("target_fingerprint") not in (None, target_fingerprint):
            continue
        found.append((workspace.locate(record["defense_path"]), record))
    return found


def set_limit(results: dict[str, Any], split_size: int) -> int:
    """The --limit the evaluation ran with, as its sets' cache key holds it (0 = the whole split)."""
    n = int(results["n"])
    return 0 if n == split_size else n


def score_on_sets(sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  predict: dict[str, Any], seen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Rows (defense, label, error, n, error_ci, seen) for each classifier in `predict` ({row name: images ->
    labels}) on each column of `sets` ({label: (x, labels, clean x)}); 'clean' is scored on the clean images of
    the first column (every column of one evaluation covers the same images)."""
    rows = []
    columns = list(sets.items())
    if columns:
        _, (_, labels, x_clean) = columns[0]
        columns = [("clean", (x_clean, labels, x_clean))] + columns
    for name, fn in predict.items():
        masks = {}
        for label, (x, labels, _) in columns:
            masks[label] = np.asarray(fn(x)) != labels
            rows.append(_row(name, label, masks[label], label in seen.get(name, [])))
        if masks:  # the evaluation's worst case: wrong on the clean image or under any column
            rows.append(_row(name, "worst case", metrics.worst_case(masks), False))
    return rows


def _row(defense: str, label: str, wrong: np.ndarray, seen: bool) -> dict[str, Any]:
    lo, hi = metrics.wilson_interval(int(wrong.sum()), len(wrong))
    return {"defense": defense, "label": label, "attack": label, "error": round(metrics.error_rate(wrong), 4),
            "n": len(wrong), "error_ci": [round(lo, 4), round(hi, 4)], "seen": seen}


def robust_on_target(results: dict[str, Any], workspace: Workspace) -> tuple[list[dict[str, Any]],
                                                                           dict[str, tuple[str, int | None]]]:
    """The robust classifiers' rows on the evaluation's own gray-box sets, and their seed groups."""
    from arnkit import data
    from arnkit.defenses import registry
    from arnkit.runs.adversarial import craft_set
    from arnkit.runs.context import RunContext
    from arnkit.runs.target import with_target

    target_fp = (results.get("target") or {}).get("fingerprint")
    classifiers = classifier_records(workspace, target_fp)
    if not classifiers:
        return [], {}
    dataset, split = results["dataset"], results.get("split", "test")
    ctx = with_target(RunContext.build(dataset, workspace=workspace, seed=int(results.get("seed", 0))))
    if target_fp and ctx.require_target().fingerprint != target_fp:
        raise SystemExit(f"seed_spread: the evaluation attacked target {target_fp}, but the workspace's default "
                         f"target is {ctx.require_target().fingerprint}; --robust-on-target reads evaluations of "
                         "the workspace's own target only")
    x_all, _, _ = data.load_arrays(dataset, split, data_dir=workspace.data_dir)
    limit = set_limit(results, len(x_all))
    sets = {}
    for attack in results["attacks"]:
        adv = craft_set(ctx, attack["key"], split=split, limit=limit, params=attack.get("params") or {},
                        restarts=int(results.get("restarts", 1)))
        if not adv.reused:
            print(f"seed_spread: {attack['label']} was not cached for this evaluation; crafted it against the "
                  "target", file=sys.stderr)
        sets[attack["label"]] = (adv.x_adv, adv.labels, x_all[adv.indices])
    predict, seen, members_out, names = {}, {}, {}, {}
    for path, record in classifiers:
        identity, name = group_of(record)
        row = f"{path.parent.name}/{record.get('label') or record.get('key')} on L"
        defense, _ = registry.load_file(path, dataset)
        predict[row] = lambda x, d=defense: d.predict(None, x)[0]
        seen[row] = list(record.get("seen") or [])
        members_out[row] = (group_name(names, identity, f"{name} on L"), record.get("seed"))
    return score_on_sets(sets, predict, seen), members_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an evaluation's results.json")
    parser.add_argument("--out", type=Path, help="write the markdown table here (else stdout)")
    parser.add_argument("--json", type=Path, help="write the spread rows as JSON here")
    parser.add_argument("--robust-on-target", action="store_true",
                        help="add the workspace's robust classifiers, scored on the evaluation's gray-box sets")
    args = parser.parse_args(argv)
    results = read_json_record(args.results, "evaluation results")
    workspace = Workspace(args.results.resolve().parents[2])  # <ws>/evaluations/<run>.d/results.json
    rows, groups = list(results["rows"]), members(results, workspace)
    if args.robust_on_target:
        extra_rows, extra_groups = robust_on_target(results, workspace)
        rows, groups = rows + extra_rows, {**groups, **extra_groups}
    rows = spread.spread_rows(rows, groups)
    text = (f"{results.get('title', '')}, {results.get('split', 'test')} split, n = {results.get('n')} images; "
            f"from {args.results}\n\n" + spread.markdown(rows))
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    if args.json:
        write_json_atomic(args.json, {"source": str(args.results), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
