#!/usr/bin/env bash
# Issue-4 benchmark: one `arnkit train --dataset mnist` with defaults in a fresh workspace, end to end
# (target training + pool crafting + ARN training + closing report), with wall time and peak RSS.
# Usage: bash bench/train_mnist_default.sh [WORKSPACE [extra arnkit-train flags]]   (results in WORKSPACE/bench-train.json)
set -euo pipefail
ws=${1:-$(mktemp -d /tmp/arnkit-bench-XXXX)}
shift || true
rm -rf "$ws" && mkdir -p "$ws"
start=$(date +%s)
.venv/bin/python bench/peak_rss.py "$ws/rss.txt" .venv/bin/arnkit train --dataset mnist --workspace "$ws" --json "$@" > "$ws/train.json"
end=$(date +%s)
echo "{\"wall_seconds\": $((end - start)), \"peak_rss_mb\": $(cat "$ws/rss.txt"), \"machine\": \"$(nproc) cores, $(uname -m)\", \"date\": \"$(date -u +%F)\"}" > "$ws/bench-train.json"
cat "$ws/bench-train.json"
.venv/bin/python -c "import json,sys; r=json.load(open('$ws/train.json')); print(json.dumps(r['evaluation'], indent=1)); print('train_seconds', r['train_seconds'])"
