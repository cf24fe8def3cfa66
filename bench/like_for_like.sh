#!/usr/bin/env bash
# Issue 30's like-for-like re-runs: the Table 1-2 cells whose settings changed to the paper's (docs/like-for-like.md).
#   bash bench/like_for_like.sh MNIST_WORKSPACE LISA_WORKSPACE [MNIST_LIMIT [LISA_ARCHIVE]]
#   PART=lisa bash bench/like_for_like.sh - LISA_WORKSPACE     # only the LISA block (PART=mnist: only MNIST)
#   LONG=1 ...                                                  # also AP1-AP4 at 1,000 iterations on test
#   DRY_RUN=1 bash bench/like_for_like.sh ...                   # print the commands, run nothing
# MNIST: FWA_N at the paper's eps 0.3, its eps' column at 0.4, and FWA's own 0.5 (the second setting) for NONE
#   and the rows of Tables 1-2 (train them first: python bench/train_mnist_baselines.py MNIST_WORKSPACE).
# Every evaluation names its defenses: never `--defense all`, which would also score any pilot or search
# candidate of the workspace on the test split.
# LISA: every row of the paper's LISA table -- NONE, AT_PGD, APE-G, DOA_9x5, DOA_7x7, ARN (seen AP1 + AP2) --
#   trained in LISA_WORKSPACE if missing (each reused when cached), plus ARN's `paper` recipe beside its
#   `default` one, so LISA's ARN recipe is chosen on the validation tracks (381 images) before the test split
#   (all 1,148 images) is scored once. AP1-AP4 at DOA's settings, 100 iterations; with LONG=1 also 1,000 (DOA ran
#   10, 100 and 1,000 and the paper does not say which). Closing reports use 16 test images only, so no
#   training command scores the test split. Hours on a 2-core CPU. Each command's wall time goes to stderr.
set -euo pipefail
MNIST_WS=${1:?mnist workspace (- with PART=lisa)}
LISA_WS=${2:?lisa workspace}
MNIST_LIMIT=${3:-1000}
ARCHIVE=${4:-../shared/data/lisa-16.tar}
PART=${PART:-all}
source "$(dirname "$0")/run_lib.sh"   # run, train, TRAINED

if [[ $PART == all || $PART == mnist ]]; then
  # MNIST, Table 2's FWA columns for NONE and every row (gray box; AT_PGD and DOA attacked directly).
  if [[ -n "${DRY_RUN:-}" ]]; then ROWS="none,<the rows of $MNIST_WS/bench-baselines.json>"
  else ROWS=$("$PYTHON" "$(dirname "$0")/train_mnist_baselines.py" "$MNIST_WS" --paths); fi
  run evaluate --dataset mnist --workspace "$MNIST_WS" --defense "$ROWS" --attack fwa_n,fwa_n@0.4,fwa_n@0.5 \
    --limit "$MNIST_LIMIT" --json
fi

if [[ $PART == all || $PART == lisa ]]; then
  L=(--dataset lisa --workspace "$LISA_WS")
  run data import lisa "$ARCHIVE" --workspace "$LISA_WS"
  run target train "${L[@]}" --json
  train "${L[@]}" --seen ap1,ap2 --eval-limit 16 --json
  train "${L[@]}" --seen ap1,ap2 --recipe paper --eval-limit 16 --json
  train "${L[@]}" --defense at_pgd --eval-limit 16 --json
  train "${L[@]}" --defense apeg --seen ap1,ap2 --eval-limit 16 --json
  train "${L[@]}" --defense doa --roa 9x5 --eval-limit 16 --json
  train "${L[@]}" --defense doa --roa 7x7 --eval-limit 16 --json
  # The choice (ARN's recipe) on validation, then the test split once: NONE and the runs trained above only.
  run evaluate "${L[@]}" --defense "$TRAINED" --attack ap1,ap2,ap3,ap4 --split val --limit 0 --json
  run evaluate "${L[@]}" --defense "$TRAINED" --attack ap1,ap2,ap3,ap4 --split test --limit 0 --json
  if [[ -n "${LONG:-}" ]]; then
    run evaluate "${L[@]}" --defense "$TRAINED" --attack ap1,ap2,ap3,ap4 --split test --limit 0 --iterations 1000 --json
  fi
fi
