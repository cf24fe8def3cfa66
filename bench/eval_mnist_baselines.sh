#!/usr/bin/env bash
# The baselines' rows of the paper's MNIST Tables 1-4, for a workspace that holds the defenses of
# bench/train_mnist_baselines.py:
#   bash bench/eval_mnist_baselines.sh WORKSPACE [LIMIT [SLOW_LIMIT]]
# Table 1+2 (gray box; NONE and the rows train_mnist_baselines.py trained, side by side): the fast attacks on
# LIMIT images, the slow ones (AA, JSMA, STA, FWA) on SLOW_LIMIT. The robust classifiers (AT_PGD, DOA) are
# attacked directly, so each of their columns costs as much as the NONE column.
# Table 3: white-box PGD_T (ITE-40, eps .3 and .5) on APE-G, HGD and ARN themselves, white CW on APE-G and DDN on
# HGD, and the gray-box rows:
# crafted through APE-G+L or HGD+L (transfer), scored on ARN. Table 4: BPDA (P+B, ITE-40 and 100) on APE-G and ARN.
set -euo pipefail
WS=${1:?workspace}
LIMIT=${2:-1000}
SLOW=${3:-$LIMIT}
ARNKIT=${ARNKIT:-arnkit}
PYTHON=${PYTHON:-python}
run() { echo "== arnkit evaluate $*" >&2; /usr/bin/time -f "%e s wall" "$ARNKIT" evaluate --workspace "$WS" "$@"; }
# Exactly the trained rows, never `--defense all` (the workspace may hold pilots or search candidates too).
ROWS=$("$PYTHON" "$(dirname "$0")/train_mnist_baselines.py" "$WS" --paths)
run --limit "$LIMIT" --defense "$ROWS" --attack pgd_n,pgd_t,cw_n,ddn_n,pgd_n@0.4
run --limit "$SLOW" --defense "$ROWS" --attack aa_n,jsma_t,aa_n@0.4,sta_n,sta_t,fwa_n,fwa_n@0.4
# The PP runs by path: `--defense arn` means the newest ARN, which is ARN_DP once both are trained.
pp() { ls "$WS"/defenses/mnist-"$1"-pgd_n-pgd_t-*.d/"$1".keras | head -1; }
APEG=$(pp apeg); HGD=$(pp hgd); ARN=$(pp arn)
run --limit "$LIMIT" --defense "$APEG,$HGD,$ARN" --attack pgd_t,pgd_t@0.5 --threat-model white --iterations 40
run --limit "$LIMIT" --defense "$APEG" --attack cw_n --threat-model white
run --limit "$LIMIT" --defense "$HGD" --attack ddn_n --threat-model white
run --limit "$LIMIT" --defense "$ARN" --attack pgd_t,pgd_t@0.5,cw_n --threat-model transfer --surrogate "$APEG"
run --limit "$LIMIT" --defense "$ARN" --attack pgd_t,pgd_t@0.5,ddn_n --threat-model transfer --surrogate "$HGD"
run --limit "$LIMIT" --defense "$APEG,$ARN" --attack pgd_n --threat-model bpda
python "$(dirname "$0")/baselines_tables.py" "$WS"
"$ARNKIT" report --workspace "$WS"
