"""AT_PGD's MNIST schedule, chosen on the validation split (issue 30).

    python bench/at_pgd_schedule.py WORKSPACE [--schedules 4:10:0.04,3:40:0.01] [--limit 1000] [--seed 0]

Each schedule EPOCHS:STEPS:STEP_SIZE fine-tunes the workspace's MNIST target with `arnkit train --defense at_pgd
--epochs E --attack-steps S --step-size A` (eps .3, random start; the rest from `arnkit.presets`) and is scored on
the first LIMIT val images: clean error and the evaluation's PGD_N (PGD-40 of .01, eps .3, random start) against
the robust classifier itself, which is the defense (no check runs: the pilot only ranks schedules). Runs stay in
WORKSPACE (use a scratch copy holding the target, not the workspace of the tables, so `DEFENSES=all` never
picks the pilots up); a schedule already scored is skipped. Rows go to WORKSPACE/at-pgd-schedule.json with the
command, machine and date; the choice is the lowest PGD_N error, clean error breaking ties.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_schedules(text: str) -> list[tuple[int, int, float]]:
    """"4:10:0.04,3:40:0.01" -> [(4, 10, 0.04), (3, 40, 0.01)]; one clear line on a malformed entry."""
    schedules = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        try:
            epochs, steps, step_size = int(parts[0]), int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise SystemExit(f"at_pgd_schedule: bad schedule {item!r}; write EPOCHS:STEPS:STEP_SIZE, "
                             "for example 4:10:0.04") from None
        schedules.append((epochs, steps, step_size))
    return schedules


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--schedules", default="4:10:0.04,3:40:0.01")
    parser.add_argument("--limit", type=int, default=1000, help="the first N val images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    schedules = parse_schedules(args.schedules)

    from recipe_search import machine  # lscpu's model, avx512f, arnkit's runtime (run as python bench/...)

    from arnkit.defenses import registry
    from arnkit.io import write_json_atomic
    from arnkit.pipeline.evaluate import evaluate
    from arnkit.progress import NullProgress

    out = Path(args.workspace) / "at-pgd-schedule.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for epochs, steps, step_size in schedules:
        if any((r["epochs"], r["attack_steps"], r["step_size"], r["seed"], r["limit"])
               == (epochs, steps, step_size, args.seed, args.limit) for r in rows):
            continue
        started = time.perf_counter()
        record = registry.get("at_pgd").train("mnist", workspace=args.workspace, epochs=epochs, attack_steps=steps,
                                              step_size=step_size, seed=args.seed, eval_limit=16,
                                              progress=NullProgress()).to_dict()
        minutes = (time.perf_counter() - started) / 60
        result = evaluate("mnist", "pgd_n", defenses=[record["defense_path"]], split="val", limit=args.limit,
                          workspace=args.workspace, sanity_checks=False, progress=NullProgress())
        errors = {r["label"]: r["error"] for r in result["rows"] if r["defense"] != "none"}
        rows.append({"epochs": epochs, "attack_steps": steps, "step_size": step_size, "seed": args.seed,
                     "limit": args.limit, "split": "val", "val": errors, "train_minutes": round(minutes, 1),
                     "reused": bool(record.get("reused")), "defense_path": record["defense_path"],
                     "machine": machine(), "date": time.strftime("%Y-%m-%d"),
                     "command": " ".join(["python bench/at_pgd_schedule.py", *argv])})
        write_json_atomic(out, {"rows": rows})
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        print(f"{row['epochs']} epochs of PGD-{row['attack_steps']} step {row['step_size']}: "
              + ", ".join(f"{k} {v:.1f}" for k, v in row["val"].items())
              + f" ({row['train_minutes']} min{', reused' if row['reused'] else ''})")


if __name__ == "__main__":
    main(sys.argv[1:])
