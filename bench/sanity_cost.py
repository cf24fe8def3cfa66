"""What the evaluation's self-checks cost now that they cover every attack (issue 30): one white-box
evaluation of `--defense none,arn` on MNIST, timed with the checks and without, and the outcome of each check.

    python bench/sanity_cost.py --workspace WS [--attack pgd_n,fgsm] [--limit 200] [--restarts 1]

It prints one JSON object: the command, the machine (lscpu model, avx512f), the date, both wall times and each
check's defense / attack / name / passed / detail. No number from it is quoted in docs/ yet (pending a run on
the benchmark machine); quote one only with this command, the machine line and the date it prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time


def machine() -> dict[str, object]:
    """The CPU model and whether it has avx512f (Linux lscpu; 'unknown' elsewhere)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor() or "unknown", "avx512f": None}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    model = fields.get("Model name", "unknown").strip()
    return {"model": model, "avx512f": "avx512f" in fields.get("Flags", "").split()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--attack", default="pgd_n,fgsm")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=1)
    args = parser.parse_args()

    from arnkit.pipeline.evaluate import evaluate

    common = {"defenses": "none,arn", "threat_model": "white", "limit": args.limit, "restarts": args.restarts,
              "workspace": args.workspace}
    seconds = {}
    for sanity in (False, True):  # without first: the table's sets are then cached for the second run
        start = time.perf_counter()
        result = evaluate(args.dataset, args.attack, sanity_checks=sanity, **common)
        seconds["with_checks" if sanity else "without_checks"] = round(time.perf_counter() - start, 1)
    print(json.dumps({
        "command": " ".join([sys.executable, *sys.argv]), "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": seconds, "sanity_passed": result["sanity_passed"],
        "checks": [{k: c.get(k) for k in ("defense", "attack", "name", "passed", "detail")} for c in result["sanity"]],
    }, indent=2))


if __name__ == "__main__":
    main()
