#!/usr/bin/env bash
# Issue 11's end-to-end run: `arnkit train --dataset lisa --seen ap1,ap2` with defaults in a fresh workspace
# (LISA import + target training + AP1/AP2 pool crafting + ARN training + closing gray-box report), with wall
# time and peak RSS of each command, the time of each phase and what it ran on.
# Usage: bash bench/train_lisa_default.sh [WORKSPACE [LISA_ARCHIVE [extra arnkit-train flags]]]
#   results in WORKSPACE/bench-train.json; the archive defaults to ../shared/data/lisa-16.tar
set -euo pipefail
ws=${1:-$(mktemp -d /tmp/arnkit-lisa-bench-XXXX)}
archive=${2:-../shared/data/lisa-16.tar}
shift 2 || shift $# || true
rm -rf "$ws" && mkdir -p "$ws"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
flags=$(lscpu | grep -o '\bavx[0-9a-z_]*\|\bfma\b\|\bamx[a-z_]*' | sort -u | tr '\n' ' ')
t0=$(date +%s)
.venv/bin/python bench/peak_rss.py "$ws/rss-import.txt" .venv/bin/arnkit data import lisa "$archive" \
  --workspace "$ws" --json > "$ws/import.json" 2> "$ws/import.log"
t1=$(date +%s)
.venv/bin/python bench/peak_rss.py "$ws/rss.txt" .venv/bin/arnkit train --dataset lisa --seen ap1,ap2 \
  --workspace "$ws" --json "$@" > "$ws/train.json" 2> "$ws/train.log"
t2=$(date +%s)
IMPORT=$((t1 - t0)) WALL=$((t2 - t1)) RSS=$(cat "$ws/rss.txt") RSS_IMPORT=$(cat "$ws/rss-import.txt") \
  CPU="$cpu" FLAGS="$flags" LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" .venv/bin/python - "$ws" <<'PY'
import json, os, sys, time
ws = sys.argv[1]
record = json.load(open(f"{ws}/train.json"))
out = {"train_wall_seconds": int(os.environ["WALL"]), "train_peak_rss_mb": int(os.environ["RSS"]),
       "import_wall_seconds": int(os.environ["IMPORT"]), "import_peak_rss_mb": int(os.environ["RSS_IMPORT"]),
       "cpu": os.environ["CPU"], "cpu_flags": os.environ["FLAGS"].strip(),
       "load_avg_at_end": os.environ["LOAD"], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
       "runtime": record["runtime"], "phase_seconds": record["phase_seconds"],
       "train_seconds": record["train_seconds"], "defense_fingerprint": record["defense_fingerprint"],
       "evaluation": record["evaluation"]}
json.dump(out, open(f"{ws}/bench-train.json", "w"), indent=1)
print(json.dumps(out, indent=1))
PY
