"""Adaptive ARN (issue 14): which design? Trains short adaptive runs that differ in one setting each, in a
workspace that already holds the MNIST target and seen pools (run `arnkit train --dataset mnist` there first),
and scores each by white-box PGD_T (eps .3, through ARN + target) at 40 and 160 iterations and by gray-box
clean, PGD_N and PGD_T error, all on the first N images of --split: `val` (the default; held out of train) to
pick a setting, `test` only to report the chosen one once.

    python bench/adaptive_pilots.py WS [--split val] [--steps 600] [--limit 200] [--only NAME,...]

Writes WS/adaptive-pilots.json (one entry per pilot: settings, seconds, errors, CPU flags) and prints a table.
Train settings not listed are `arnkit train --adaptive`'s defaults (arnkit.presets.AdaptivePreset).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

PILOTS: dict[str, dict] = {
    "share.5-pgd5": {},
    "share1-pgd5": {"adaptive_share": 1.0},
    "share.5-pgd10": {"adaptive_steps": 10},
    "share.5-pgd5-G-only": {"adaptive_update": "decoder"},
    "share.5-pgd5-no-guide": {"adaptive_guide_weight": 0.0},
}


def cpu_flags() -> str:
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    line = next((ln for ln in flags.splitlines() if ln.startswith("Flags")), "")
    return " ".join(sorted({f for f in line.split() if f.startswith(("avx2", "avx512f", "avx512_vnni", "fma"))}))


def white_box_error(defense_path: str, ws: Path, iterations: int, limit: int, split: str = "val") -> float:
    from arnkit import attacks, data
    from arnkit.defenses import registry
    from arnkit.evaluation.threat_models import WHITE
    from arnkit.pipeline.target import ensure_target

    classifier, record = ensure_target("mnist", workspace=ws)
    defense, _ = registry.load_file(defense_path, "mnist")
    model = WHITE.attacked_model(defense, classifier, classifier_tag=record.fingerprint).model
    x, y, _ = data.load_arrays("mnist", split, limit=limit, data_dir=ws / "data")
    result = attacks.make("pgd_t", dataset="mnist", steps=iterations)(model, x, y, seed=0)
    return round(100.0 * float(np.mean(result.pred != y)), 2)


def gray_errors(defense_path: str, ws: Path, limit: int, split: str) -> dict[str, float]:
    """Gray-box clean, PGD_N and PGD_T error (%) behind the defense on the split (not the closing report's
    test images, which a choice must not see)."""
    from arnkit import data
    from arnkit.defenses import registry
    from arnkit.evaluation.threat_models import GRAY
    from arnkit.pipeline.evaluate import evaluate
    from arnkit.pipeline.target import ensure_target

    classifier, record = ensure_target("mnist", workspace=ws)
    defense, _ = registry.load_file(defense_path, "mnist")
    model = GRAY.attacked_model(defense, classifier, classifier_tag=record.fingerprint).model
    x, y, _ = data.load_arrays("mnist", split, limit=limit, data_dir=ws / "data")
    clean = np.argmax(np.asarray(model(x, training=False)), -1)
    result = evaluate("mnist", "pgd_n,pgd_t", defenses=[defense_path], threat_model="gray", limit=limit,
                      split=split, sanity_checks=False, workspace=ws)
    rows = {row["attack"]: row["error"] for row in result["rows"] if row["defense"].lower() != "none"}
    return {"gray_clean": round(100.0 * float(np.mean(clean != y)), 2), "gray_pgd_n": rows.get("pgd_n"),
            "gray_pgd_t": rows.get("pgd_t")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="images scored: val (pick a setting; the default) or test (report the chosen one)")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    from arnkit.io import write_json_atomic
    from arnkit.pipeline.train import train_defense

    out_path = args.workspace / "adaptive-pilots.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    names = [n for n in PILOTS if not args.only or n in args.only.split(",")]
    for name in names:
        if f"{name}@{args.steps}@{args.split}" in results:  # scored already: a rerun resumes
            continue
        started = time.perf_counter()
        record = train_defense("mnist", workspace=args.workspace, steps=args.steps, adaptive=True,
                               config_overrides=PILOTS[name])
        wall = time.perf_counter() - started
        entry = {"settings": record["adaptive"], "steps": args.steps, "train_seconds": record["train_seconds"],
                 "wall_seconds": round(wall, 1), "reused": record["reused"], "split": args.split,
                 **gray_errors(record["defense_path"], args.workspace, args.limit, args.split),
                 "defense_path": record["defense_path"],
                 "cpu_flags": cpu_flags(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        for iterations in (40, 160):
            clock = time.perf_counter()
            entry[f"white_pgd_t_{iterations}"] = white_box_error(record["defense_path"], args.workspace, iterations,
                                                                 args.limit, args.split)
            entry[f"white_seconds_{iterations}"] = round(time.perf_counter() - clock, 1)
        entry["white_limit"] = args.limit
        results[f"{name}@{args.steps}@{args.split}"] = entry
        write_json_atomic(out_path, results)
        print(name, json.dumps({k: v for k, v in entry.items() if k not in ("defense_path",)}), flush=True)


if __name__ == "__main__":
    main()
