#!/usr/bin/env bash
# The main job as a user runs it: one `arnkit train --dataset mnist` with defaults in a fresh workspace, end to
# end (target training + pool crafting + ARN training + closing report), with wall time, peak RSS, the time of
# each phase and what it ran on (CPU model and ISA, oneDNN on/off and its ISA cap).
# Usage: bash bench/train_mnist_default.sh [WORKSPACE [extra arnkit-train flags]]   (results in WORKSPACE/bench-train.json)
#   ONEDNN_MAX_CPU_ISA=AVX2 bash bench/train_mnist_default.sh ...   # an AVX2-only CPU's kernels on an AVX-512 one
#   TF_ENABLE_ONEDNN_OPTS=0 bash bench/train_mnist_default.sh ...   # TensorFlow's Eigen kernels
set -euo pipefail
ws=${1:-$(mktemp -d /tmp/arnkit-bench-XXXX)}
shift || true
rm -rf "$ws" && mkdir -p "$ws"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
start=$(date +%s)
.venv/bin/python bench/peak_rss.py "$ws/rss.txt" .venv/bin/arnkit train --dataset mnist --workspace "$ws" --json "$@" \
  > "$ws/train.json" 2> "$ws/train.log"
end=$(date +%s)
WALL=$((end - start)) RSS=$(cat "$ws/rss.txt") CPU="$cpu" LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" \
  .venv/bin/python - "$ws" <<'PY'
import json, os, sys, time
ws = sys.argv[1]
record = json.load(open(f"{ws}/train.json"))
out = {"wall_seconds": int(os.environ["WALL"]), "peak_rss_mb": int(os.environ["RSS"]), "cpu": os.environ["CPU"],
       "load_avg_at_end": os.environ["LOAD"], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
       "runtime": record["runtime"], "phase_seconds": record["phase_seconds"],
       "train_seconds": record["train_seconds"], "defense_fingerprint": record["defense_fingerprint"],
       "evaluation": record["evaluation"]}
json.dump(out, open(f"{ws}/bench-train.json", "w"), indent=1)
print(json.dumps(out, indent=1))
PY
