"""Adaptive ARN (issue 14): white-box error vs training time vs clean error, from the snapshots of one run.

Trains `arnkit train --adaptive` (plus any `--set NAME=VALUE` ARNConfig overrides) in a workspace holding the
MNIST target and pools, and at every checkpoint scores the snapshot: white-box PGD_T (eps .3, 40 iterations,
through ARN + target) on the first LIMIT images of --split and clean error behind ARN on its first 1,000. The
split is `val` by default (held out of train: for choosing a setting); `--split test` reports a chosen one. The
time spent scoring is kept out of the training time.

    python bench/adaptive_tradeoff.py WS [--split val] [--steps 3000] [--every 500] [--limit 200] [--set adaptive_share=0.5]

Writes WS/adaptive-tradeoff.json: one point per snapshot (step, training seconds so far, errors) and the run's
record path.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="images scored: val (pick a setting; the default) or test (report the chosen one)")
    args = parser.parse_args()
    from arnkit import attacks, data
    from arnkit.attacks.adaptive import compose
    from arnkit.defenses.arn import export_preprocessor
    from arnkit.pipeline.target import ensure_target
    from arnkit.pipeline.train import train_defense

    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    ws = args.workspace
    classifier, _ = ensure_target("mnist", workspace=ws)
    x, y, _ = data.load_arrays("mnist", args.split, limit=1000, data_dir=ws / "data")
    points, scoring = [], [0.0]
    started = time.perf_counter()

    def score(step: int, arn) -> None:
        clock = time.perf_counter()
        restore = export_preprocessor(arn)
        clean = np.argmax(np.asarray(classifier(np.asarray(restore(x)), training=False)), -1)
        white = attacks.make("pgd_t", dataset="mnist", steps=40)(compose(restore, classifier), x[:args.limit],
                                                                  y[:args.limit], seed=0)
        point = {"step": step, "train_seconds": round(clock - started - scoring[0], 1),
                 "clean": round(100.0 * float(np.mean(clean != y)), 2),
                 "white_pgd_t_40": round(100.0 * float(np.mean(white.pred != y[:args.limit])), 2)}
        scoring[0] += time.perf_counter() - clock
        points.append(point)
        print(json.dumps(point), flush=True)

    record = train_defense("mnist", workspace=ws, steps=args.steps, adaptive=True, checkpoint_every=args.every,
                           config_overrides=overrides, on_checkpoint=score)
    out = {"overrides": overrides, "steps": args.steps, "split": args.split, "white_limit": args.limit, "points": points,
           "record": str(Path(record["defense_path"]).parent / "record.json"), "adaptive": record["adaptive"],
           "scoring_seconds": round(scoring[0], 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (ws / "adaptive-tradeoff.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
