#!/usr/bin/env bash
# Issue 14's benchmark: the default ARN, ARN --adaptive and AT_PGD side by side, MNIST, LeNet target.
# Usage: bash bench/eval_adaptive.sh WS ARN.keras ADAPTIVE.keras AT.keras
#   WS holds the target and the three defenses (arnkit train; arnkit train --adaptive or
#   bench/adaptive_tradeoff.py; arnkit train --defense at_pgd). The script trains APE-G_PP there as the
#   independent surrogate of the transfer row. Every call is one `arnkit evaluate`; crafted sets are cached in
#   WS. Records go to WS/eval-adaptive/ and `python bench/adaptive_report.py WS` prints the tables.
#   The white-box calls run each attack alone, so its sanity checks (gradient, iterations doubled, SPSA vs
#   gradient, eps .5, ordering) run on it; AA_N runs on the first 100 images (its Square phase costs 5,000
#   queries per image that survives).
set -euo pipefail
ws=$1 arn=$2 ada=$3 at=$4
arnkit=${ARNKIT:-.venv/bin/arnkit}
out=$ws/eval-adaptive && mkdir -p "$out"
run() { local name=$1; shift; local start; start=$(date +%s)
  "$arnkit" evaluate --dataset mnist --workspace "$ws" --json "$@" > "$out/$name.json" 2> "$out/$name.log"
  echo "$name $(( $(date +%s) - start )) s" >> "$out/times.txt"; }
run white-pgd_t-base --defense "$arn,$at" --attack pgd_t --threat-model white --iterations 100
run white-pgd_n-base --defense "$arn,$at" --attack pgd_n --threat-model white --iterations 100
run white-pgd_t5-base --defense "$arn,$at" --attack pgd_t@0.5 --threat-model white --iterations 100
run white-aa_n-base --defense "$arn,$at" --attack aa_n --threat-model white --limit 100
run white-pgd_t-ada --defense "$ada" --attack pgd_t --threat-model white --iterations 100 --convergence
run white-pgd_n-ada --defense "$ada" --attack pgd_n --threat-model white --iterations 100
run white-pgd_t5-ada --defense "$ada" --attack pgd_t@0.5 --threat-model white --iterations 100
run white-aa_n-ada --defense "$ada" --attack aa_n --threat-model white --limit 100
run gray-fast --defense "$arn,$ada,$at" --attack pgd_n,pgd_t,cw_n,ddn_n,pgd_n@0.4
run bpda --defense "$arn,$ada" --attack pgd_n --threat-model bpda --iterations 100 --no-sanity
"$arnkit" train --dataset mnist --defense apeg --seen pgd_n,pgd_t --workspace "$ws" --json > "$out/apeg-train.json"
sur=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['defense_path'])" "$out/apeg-train.json")
run transfer --defense "$arn,$ada" --attack pgd_t --threat-model transfer --surrogate "$sur"
run white-worst --defense "$arn,$ada,$at" --attack pgd_n,pgd_t,aa_n --threat-model white --iterations 100 \
  --limit 100 --no-sanity
run gray-slow --defense "$arn,$ada,$at" --attack aa_n,jsma_t,sta_n,sta_t,fwa_n --limit 200
