"""Time vs quality of the main job over ARN step counts, from ONE `arnkit train --dataset mnist` run.

The default schedule has a constant learning rate and batches that are a pure function of (seed, step), so
the checkpoint at step s of a 3,000-step run is the s-step run. At each milestone the snapshot is exported
and scored as the closing report scores the final defense (gray box, first 1,000 images of `--split`: `val`
by default, since this table picks a step count; `test` only to report a chosen one); the
time axis is what an s-step main job would take: target + pools + s steps + closing report, with the
snapshots' own scoring time taken out.

    ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/tradeoff_steps.py --milestones 1000 1500 2000 2500 3000 [--split val]

Prints one JSON object with `runtime.describe()` and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import arnkit  # noqa: E402,F401  (sets the oneDNN default before TensorFlow loads)
from arnkit import presets, runtime  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--milestones", type=int, nargs="+", default=[1000, 1500, 2000, 2500, 3000])
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--width", default=None)
    parser.add_argument("--guide-weight", type=float, default=None)
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="images the snapshots are scored on: val (the default: choosing) or test (reporting)")
    args = parser.parse_args()

    from arnkit.defenses.arn import export_preprocessor
    from arnkit.pipeline import train as train_mod
    from arnkit.pipeline.target import ensure_target

    ws = Path(args.workspace or tempfile.mkdtemp(prefix="arnkit-tradeoff-"))
    steps = max(args.milestones)
    points: list[dict] = []
    spent = {"scoring": 0.0}
    loaded: dict = {}
    started = time.perf_counter()

    def snapshot(step: int, arn) -> None:
        if step not in args.milestones:
            return
        t0 = time.perf_counter()
        if "target" not in loaded:  # trained by then; load the file once, not at every milestone
            loaded["target"] = ensure_target("mnist", workspace=ws)
        target, record = loaded["target"]
        evaluation, _ = train_mod.evaluate_gray_box("mnist", list(presets.get("mnist").seen),
                                                    export_preprocessor(arn), limit=1000, seed=0, workspace=ws,
                                                    progress=train_mod.NullProgress(), split=args.split)
        seconds = time.perf_counter() - t0
        spent["scoring"] += seconds
        points.append({"step": step, "elapsed_train_s": round(time.perf_counter() - started - spent["scoring"], 1),
                       "scoring_s": round(seconds, 1),
                       **{f"{k}_arn": round(v["arn"], 2) for k, v in evaluation.items()}})
        print(json.dumps(points[-1]), flush=True)

    record = train_mod.train_defense("mnist", steps=steps, width=args.width, guide_weight=args.guide_weight,
                                     workspace=ws, on_checkpoint=snapshot)
    phases = record["phase_seconds"]
    arn_s = phases["arn"] - spent["scoring"]
    per_step = arn_s / steps
    report_s = phases["report"]
    if args.split == "test":
        # The final report reused the test attacks the first snapshot crafted: add their crafting time back
        # (on val the report crafted its own test sets, so its time is already whole).
        later = sorted(p["scoring_s"] for p in points[1:]) or [points[0]["scoring_s"]]
        report_s += points[0]["scoring_s"] - later[len(later) // 2]
    for point in points:
        # An s-step main job: the same target, pools and report, s steps of the measured average step time.
        point["main_job_s"] = round(phases["target"] + phases["pools"] + point["step"] * per_step + report_s, 1)
    out = {"runtime": runtime.describe(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "workspace": str(ws), "split": args.split, "phase_seconds": phases, "arn_seconds_without_scoring": round(arn_s, 1),
           "seconds_per_step": round(per_step, 4), "report_s": round(report_s, 1), "points": points, "final": record["evaluation"]}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    print("\n| ARN steps | main job s (min) | clean | PGD_N | PGD_T |\n|---|---|---|---|---|")
    for p in points:
        print(f"| {p['step']} | {p['main_job_s']} ({p['main_job_s'] / 60:.1f}) | {p['clean_arn']:.2f} | "
              f"{p['pgd_n_arn']:.2f} | {p['pgd_t_arn']:.2f} |")


if __name__ == "__main__":
    main()
