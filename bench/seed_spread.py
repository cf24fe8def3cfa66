"""Mean ± spread over defense seeds, from one `arnkit evaluate --defense all` that scored every seed of a recipe.

    python bench/seed_spread.py WS/evaluations/<run>.d/results.json [--out OUT.md] [--json OUT.json]

Each defense row of the evaluation is matched to its run record (`record.json` beside the exported file): rows
whose records agree on everything but the seed (key, label, options, seen attacks, steps, adaptive) form one
group, shown as mean ± sample standard deviation (min-max) per column. NONE and a recipe trained with one seed
stay single values. The seeds are the defenses' (`arnkit train --seed S`); every run defends the same seed-0
target. bench/seeds.sh trains the headline rows with 3 seeds and calls this.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arnkit.evaluation import spread  # noqa: E402
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
        taken = {v for k, v in names_by_identity.items() if k != identity}
        names_by_identity.setdefault(identity, name if name not in taken else f"{name} {identity}")
        out[defense["name"]] = (names_by_identity[identity], record.get("seed"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an evaluation's results.json")
    parser.add_argument("--out", type=Path, help="write the markdown table here (else stdout)")
    parser.add_argument("--json", type=Path, help="write the spread rows as JSON here")
    args = parser.parse_args(argv)
    results = read_json_record(args.results, "evaluation results")
    workspace = Workspace(args.results.resolve().parents[2])  # <ws>/evaluations/<run>.d/results.json
    rows = spread.spread_rows(results["rows"], members(results, workspace))
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
