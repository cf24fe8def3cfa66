#!/usr/bin/env bash
# Issue 30's headline rows with 3 defense seeds (same seed-0 target), scored once on the test split, then
# mean ± spread per column (bench/seed_spread.py).
#   bash bench/seeds.sh mnist WS [SEEDS] [LIMIT]     # ARN_PP, ARN --adaptive, HGD_PP, AT_PGD; Tables 1-2's columns
#   bash bench/seeds.sh lisa WS [SEEDS]              # ARN (seen AP1 + AP2), AT_PGD; AP1-AP4 on all 1,148 images
#   ROWS=arn bash bench/seeds.sh ...                 # only some rows (mnist: arn,adaptive,hgd,at_pgd; lisa: arn,at_pgd)
#   ROWS=- DEFENSES=none,A.keras,B.keras bash ...    # train nothing; score these defenses
#   (default: NONE and the runs this call trained or reused, never the workspace's other runs: a recipe
#   search's candidates live there too, and the test split must not score them)
#   DRY_RUN=1 bash bench/seeds.sh ...                # print the commands, run nothing
# SEEDS defaults to 0,1,2. Runs already trained are reused. NONE has no defense seed: one row. The spread
# table goes to WS/seeds-<dataset>.md and .json, with the robust classifiers (AT_PGD, DOA) also "on L": scored
# on the gray-box sets crafted against the original target, the paper's reading (seed_spread --robust-on-target). Hours on a 2-core CPU (MNIST: 4 recipes x 3 seeds).
set -euo pipefail
DATASET=${1:?mnist or lisa}
WS=${2:?workspace}
SEEDS=${3:-0,1,2}
source "$(dirname "$0")/run_lib.sh"   # run, train, TRAINED
want() { [[ ",$ROWS," == *",$1,"* ]]; }
L=(--dataset "$DATASET" --workspace "$WS")
case $DATASET in
  mnist)
    LIMIT=${4:-1000}
    ATTACKS=pgd_n,pgd_t,cw_n,ddn_n,aa_n,jsma_t,pgd_n@0.4,aa_n@0.4,sta_n,sta_t,fwa_n,fwa_n@0.4
    ROWS=${ROWS:-arn,adaptive,hgd,at_pgd}
    for seed in ${SEEDS//,/ }; do
      want arn && train "${L[@]}" --seed "$seed" --eval-limit 16 --json
      want adaptive && train "${L[@]}" --seed "$seed" --adaptive --eval-limit 16 --json
      want hgd && train "${L[@]}" --seed "$seed" --defense hgd --seen pgd_n,pgd_t --eval-limit 16 --json
      want at_pgd && train "${L[@]}" --seed "$seed" --defense at_pgd --eval-limit 16 --json
    done ;;
  lisa)
    LIMIT=0
    ATTACKS=ap1,ap2,ap3,ap4
    ROWS=${ROWS:-arn,at_pgd}
    for seed in ${SEEDS//,/ }; do
      want arn && train "${L[@]}" --seed "$seed" --seen ap1,ap2 --eval-limit 16 --json
      want at_pgd && train "${L[@]}" --seed "$seed" --defense at_pgd --eval-limit 16 --json
    done ;;
  *) echo "bench/seeds.sh: unknown dataset $DATASET; use mnist or lisa" >&2; exit 2 ;;
esac
DEFENSES=${DEFENSES:-$TRAINED}
if [[ -n "${DRY_RUN:-}" ]]; then
  run evaluate "${L[@]}" --defense "$DEFENSES" --attack "$ATTACKS" --split test --limit "$LIMIT" --json
  echo "python bench/seed_spread.py WS/evaluations/<that run>/results.json --robust-on-target --out $WS/seeds-$DATASET.md"
  exit 0
fi
RESULT=$(run evaluate "${L[@]}" --defense "$DEFENSES" --attack "$ATTACKS" --split test --limit "$LIMIT" --json)
JSON=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())["files"]["json"])' <<<"$RESULT")
"$PYTHON" bench/seed_spread.py "$JSON" --robust-on-target --out "$WS/seeds-$DATASET.md" --json "$WS/seeds-$DATASET.json"
cat "$WS/seeds-$DATASET.md"
