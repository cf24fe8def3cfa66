"""Train every defense of the MNIST Tables 1-2 with its registry defaults, in one workspace, and record each
one's training time, phases, closing report and the machine (CPU flags included).

    python bench/train_mnist_baselines.py WORKSPACE [ROW,ROW...]     # results in WORKSPACE/bench-baselines.json
    python bench/train_mnist_baselines.py WORKSPACE --paths          # print none,<their .keras>; train nothing

Rows already trained in the workspace are reused (their recorded times are the original run's). Then
bench/eval_mnist_baselines.sh and bench/like_for_like.sh put NONE and exactly these rows side by side
(`--paths`), never `--defense all`: a workspace may also hold search candidates or pilots, which the test split
must not score.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from arnkit import runtime
from arnkit.defenses import registry
from arnkit.io import write_json_atomic
from arnkit.progress import NullProgress

# (row of the paper's tables, recipe, options): PP = seen PGD_N + PGD_T, DP = seen DDN_N + PGD_N.
ROWS = [
    ("ARN_PP", "arn", {"seen": "pgd_n,pgd_t"}),
    ("AT_PGD", "at_pgd", {}),
    ("DOA_7x7", "doa", {"roa": "7x7"}),
    ("APE-G_PP", "apeg", {"seen": "pgd_n,pgd_t"}),
    ("HGD_PP", "hgd", {"seen": "pgd_n,pgd_t"}),
    ("APE-G_DP", "apeg", {"seen": "ddn_n,pgd_n"}),
    ("HGD_DP", "hgd", {"seen": "ddn_n,pgd_n"}),
    ("ARN_DP", "arn", {"seen": "ddn_n,pgd_n"}),
]


def paths(workspace: str) -> str:
    """"none,<exported file of each trained row>", in the rows' order, from WORKSPACE/bench-baselines.json."""
    out_path = Path(workspace) / "bench-baselines.json"
    if not out_path.exists():
        raise SystemExit(f"train_mnist_baselines: {out_path} is missing; train the rows first: "
                         f"python bench/train_mnist_baselines.py {workspace}")
    results = json.loads(out_path.read_text())
    return ",".join(["none", *(results[name]["defense_path"] for name, _, _ in ROWS if name in results)])


def main(workspace: str, only: str = "") -> None:
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    out_path = Path(workspace) / "bench-baselines.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["machine"] = runtime.describe()
    for name, key, options in ROWS:
        if wanted and name not in wanted:
            continue
        started = time.perf_counter()
        record = registry.get(key).train("mnist", workspace=workspace, seed=0, progress=NullProgress(), **options)
        raw = record.to_dict()
        results[name] = {
            "key": key, "options": options, "defense_path": record.defense_path, "reused": raw.get("reused"),
            "wall_seconds_this_call": round(time.perf_counter() - started, 1),
            "train_seconds": raw.get("train_seconds"), "phase_seconds": raw.get("phase_seconds"),
            "evaluation": raw.get("evaluation"), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        write_json_atomic(out_path, results)
        print(name, json.dumps(results[name]), flush=True)


if __name__ == "__main__":
    if sys.argv[2:3] == ["--paths"]:
        print(paths(sys.argv[1]))
    else:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
