"""AT_PGD's schedule, chosen on the validation split (issue 30): MNIST and LISA.

    python bench/at_pgd_schedule.py WORKSPACE [--schedules 4:10:0.04,3:40:0.01] [--limit 1000] [--seed 0]
    python bench/at_pgd_schedule.py WORKSPACE --dataset lisa --schedules 10:10:0.00784,20:10:0.00784:0.0627

Each schedule EPOCHS:STEPS:STEP_SIZE[:EPS] fine-tunes the workspace's target with `arnkit train --defense at_pgd
--epochs E --attack-steps S --step-size A` (random start; EPS defaults to the dataset's preset, .3 on MNIST and
8/255 on LISA; the rest from `arnkit.presets`) and is scored on the first LIMIT val images (0: all) against the
robust classifier itself, which is the defense (no check runs: the pilot only ranks schedules). The columns are
the ones the tables report for AT_PGD: MNIST's PGD_N (PGD-40 of .01, eps .3, random start), LISA's four sticker
attacks AP1-AP4 (and their worst case per image, shown). Runs stay in WORKSPACE (use a scratch copy holding the target,
not the workspace of the tables, so `DEFENSES=all` never picks the pilots up); a schedule already scored is
skipped. Rows go to WORKSPACE/at-pgd-schedule.json with the command, machine and date; the choice is the lowest
error on the deciding column, clean error breaking ties: MNIST's PGD_N; on LISA the mean of AP1-AP4, since the
worst case per image saturates (98% on val for the preset's schedule: 6 of 381 images separate the schedules).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# (attacks scored on val, the columns whose mean error decides) per dataset
SCORED = {"mnist": ("pgd_n", ("pgd_n",)), "lisa": ("ap1,ap2,ap3,ap4", ("ap1", "ap2", "ap3", "ap4"))}


def decider(row: dict, deciding: tuple[str, ...]) -> float | None:
    """The row's mean val error over the deciding columns; None when it lacks one (another dataset's row)."""
    val = row["val"]
    return sum(val[k] for k in deciding) / len(deciding) if all(k in val for k in deciding) else None


def parse_schedules(text: str) -> list[tuple]:
    """"4:10:0.04,3:40:0.01:0.2" -> [(4, 10, 0.04), (3, 40, 0.01, 0.2)]; one clear line on a malformed entry."""
    schedules = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        try:
            if len(parts) not in (3, 4):
                raise ValueError
            schedule = (int(parts[0]), int(parts[1]), float(parts[2]), *(float(p) for p in parts[3:]))
        except ValueError:
            raise SystemExit(f"at_pgd_schedule: bad schedule {item!r}; write EPOCHS:STEPS:STEP_SIZE[:EPS], "
                             "for example 4:10:0.04") from None
        schedules.append(schedule)
    return schedules


def chosen(rows: list[dict], deciding: tuple[str, ...]) -> dict | None:
    """The row with the lowest error on the deciding column, clean error breaking ties."""
    scored = [r for r in rows if decider(r, deciding) is not None]
    return min(scored, key=lambda r: (decider(r, deciding), r["val"].get("clean", 0.0)), default=None)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--schedules", default="4:10:0.04,3:40:0.01")
    parser.add_argument("--dataset", default="mnist", choices=sorted(SCORED))
    parser.add_argument("--limit", type=int, default=None, help="the first N val images (0: all; default: 1000 "
                                                                   "on MNIST, all 381 on LISA)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    schedules = parse_schedules(args.schedules)
    attacks, deciding = SCORED[args.dataset]
    limit = args.limit if args.limit is not None else (1000 if args.dataset == "mnist" else 0)

    from recipe_search import machine  # lscpu's model, avx512f, arnkit's runtime (run as python bench/...)

    from arnkit.defenses import registry
    from arnkit.io import write_json_atomic
    from arnkit.pipeline.evaluate import evaluate
    from arnkit.progress import NullProgress

    out = Path(args.workspace) / "at-pgd-schedule.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for epochs, steps, step_size, *eps in schedules:
        eps = eps[0] if eps else None
        key = (args.dataset, epochs, steps, step_size, eps, args.seed, limit)
        if any((r.get("dataset", "mnist"), r["epochs"], r["attack_steps"], r["step_size"], r.get("eps"), r["seed"],
                r["limit"]) == key for r in rows):
            continue
        started = time.perf_counter()
        record = registry.get("at_pgd").train(args.dataset, workspace=args.workspace, epochs=epochs, eps=eps,
                                              attack_steps=steps, step_size=step_size, seed=args.seed,
                                              eval_limit=16, progress=NullProgress()).to_dict()
        minutes = (time.perf_counter() - started) / 60
        result = evaluate(args.dataset, attacks, defenses=[record["defense_path"]], split="val", limit=limit,
                          workspace=args.workspace, sanity_checks=False, progress=NullProgress())
        errors = {r["label"]: r["error"] for r in result["rows"] if r["defense"] != "none"}
        rows.append({"dataset": args.dataset, "epochs": epochs, "attack_steps": steps, "step_size": step_size,
                     "eps": eps, "seed": args.seed, "limit": limit, "split": "val", "val": errors,
                     "train_minutes": round(minutes, 1),
                     "reused": bool(record.get("reused")), "defense_path": record["defense_path"],
                     "machine": machine(), "date": time.strftime("%Y-%m-%d"),
                     "command": " ".join(["python bench/at_pgd_schedule.py", *argv])})
        write_json_atomic(out, {"rows": rows})
        print(json.dumps(rows[-1]), flush=True)
    mine = [r for r in rows if r.get("dataset", "mnist") == args.dataset]
    for row in mine:
        eps = f" eps {row['eps']:g}" if row.get("eps") is not None else ""
        print(f"{row['epochs']} epochs of PGD-{row['attack_steps']} step {row['step_size']}{eps}: "
              + ", ".join(f"{k} {v:.1f}" for k, v in row["val"].items())
              + f" ({row['train_minutes']} min{', reused' if row['reused'] else ''})")
    best = chosen(mine, deciding)
    if best:
        print(f"chosen on val (mean of {', '.join(deciding)}: {decider(best, deciding):.2f}): {best['epochs']} "
              f"epochs of PGD-{best['attack_steps']} step {best['step_size']}"
              + (f" eps {best['eps']:g}" if best.get("eps") is not None else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
