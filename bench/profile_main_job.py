"""What each phase of the main job (`arnkit train --dataset mnist`, README defaults) costs on this machine.

Runs the real pipeline (`train_defense`) in a fresh workspace at reduced sizes -- target epochs, pool images,
ARN steps and report images -- and times every progress event. Each phase's full-size cost is extrapolated
from its own steady rate: first event (tracing, warm-up) + remaining work / rate after the first event.
Prints one JSON object (with `runtime.describe()`: TF, oneDNN on/off, ISA cap, CPU ISA) and a markdown table.

    .venv/bin/python bench/profile_main_job.py                                   # this machine's default
    TF_ENABLE_ONEDNN_OPTS=0 .venv/bin/python bench/profile_main_job.py           # Eigen kernels
    ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/profile_main_job.py           # an AVX2-only CPU's oneDNN

Extra `--param k=v` pairs go to train_defense (e.g. --param steps=... is refused: use --steps).
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
from arnkit import runtime  # noqa: E402


class Recorder:
    """arnkit's Progress protocol, keeping (task, total, [(seconds since start, done)]) per phase."""

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    def start(self, task: str, total: int | None) -> None:
        self.tasks.append({"task": task, "total": total, "t0": time.perf_counter(), "events": []})

    def advance(self, amount: int = 1, **info: float) -> None:
        if self.tasks and amount > 0:  # (a resumed run's opening advance(0) is no work)
            cur = self.tasks[-1]
            done = (cur["events"][-1][1] if cur["events"] else 0) + amount
            cur["events"].append((time.perf_counter() - cur["t0"], done))

    def finish(self) -> None:
        if self.tasks and "seconds" not in self.tasks[-1]:
            self.tasks[-1]["seconds"] = time.perf_counter() - self.tasks[-1]["t0"]


def extrapolate(task: dict, full: int) -> dict:
    """Seconds for `full` units from the task's first event + its steady rate after that."""
    events = task["events"]
    if len(events) < 2:
        return {"measured_s": task.get("seconds"), "units": events[-1][1] if events else 0, "full_s": None}
    (t1, n1), (tn, nn) = events[0], events[-1]
    rate = (nn - n1) / (tn - t1)
    return {"measured_s": round(task["seconds"], 2), "units": nn, "first_event_s": round(t1, 2),
            "steady_per_s": round(rate, 2), "full_units": full, "full_s": round(t1 + (full - n1) / rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-epochs", type=int, default=1)
    parser.add_argument("--pool", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval", type=int, default=512)
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()

    import dataclasses

    from arnkit import presets
    from arnkit.pipeline import train as train_mod

    mnist = presets.get("mnist")
    full_epochs, full_pool, full_steps, full_eval = mnist.target.epochs, mnist.pool, mnist.arn.steps, 1000
    presets.PRESETS["mnist"] = dataclasses.replace(mnist, target=dataclasses.replace(mnist.target,
                                                                                    epochs=args.target_epochs))
    ws = Path(args.workspace or tempfile.mkdtemp(prefix="arnkit-profile-"))
    rec = Recorder()
    start = time.perf_counter()
    record = train_mod.train_defense("mnist", steps=args.steps, pool_size=args.pool, eval_limit=args.eval,
                                     workspace=ws, progress=rec)
    wall = time.perf_counter() - start

    rows = []
    for task in rec.tasks:
        name = task["task"]
        if name.startswith("train "):
            full = full_epochs * task["total"] // args.target_epochs
        elif name.startswith("ARN"):
            full = full_steps
        elif "/train" in name:
            full = full_pool
        else:
            full = full_eval
        rows.append({"phase": name, **extrapolate(task, full)})
    phases = record["phase_seconds"]
    attack_report = sum(r["measured_s"] or 0 for r in rows if "/test" in r["phase"])
    other_report = phases["report"] - attack_report
    full_total = sum(r["full_s"] or 0 for r in rows) + other_report * full_eval / args.eval
    out = {"runtime": runtime.describe(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_avg": os.getloadavg(), "args": vars(args), "wall_s": round(wall, 1), "phase_seconds": phases,
           "report_other_s": round(other_report, 2), "rows": rows, "full_total_s": round(full_total, 1),
           "evaluation": record["evaluation"]}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    print("\n| phase | measured s | units | first event s | steady units/s | full units | full s (extrapolated) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['phase']} | {r['measured_s']} | {r['units']} | {r.get('first_event_s')} | "
              f"{r.get('steady_per_s')} | {r.get('full_units')} | {r['full_s']} |")
    print(f"| report: restore + score (rest) | {other_report:.2f} | | | | | {other_report * full_eval / args.eval:.1f} |")
    print(f"\nextrapolated main job: {full_total:.0f} s ({full_total / 60:.1f} min); {runtime.describe()}")


if __name__ == "__main__":
    main()
