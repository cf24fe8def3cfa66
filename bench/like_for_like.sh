#!/usr/bin/env bash
# Issue 30's like-for-like re-runs: the Table 1-2 cells whose settings changed to the paper's (docs/like-for-like.md).
#   bash bench/like_for_like.sh MNIST_WORKSPACE LISA_WORKSPACE [MNIST_LIMIT [LISA_ARCHIVE]]
#   DRY_RUN=1 bash bench/like_for_like.sh ...     # print the commands, run nothing
# MNIST: FWA_N at the paper's eps 0.3, its eps' column at 0.4, and FWA's own 0.5 (the second setting) for
#   every defense of MNIST_WORKSPACE (train them first: python bench/train_mnist_baselines.py MNIST_WORKSPACE).
# LISA: every row of the paper's LISA table -- NONE, AT_PGD, APE-G, DOA_9x5, DOA_7x7, ARN (seen AP1 + AP2) --
#   trained in LISA_WORKSPACE if missing (each reused when cached), then AP1-AP4 on all 1,148 test images at
#   DOA's settings: 100 iterations (the default) and 1,000 (the second setting; DOA ran 10, 100 and 1,000 and
#   the paper does not say which). Hours on a 2-core CPU. Each command's wall time goes to stderr.
set -euo pipefail
MNIST_WS=${1:?mnist workspace}
LISA_WS=${2:?lisa workspace}
MNIST_LIMIT=${3:-1000}
ARCHIVE=${4:-../shared/data/lisa-16.tar}
ARNKIT=${ARNKIT:-.venv/bin/arnkit}
run() {
  echo "== arnkit $*" >&2
  if [[ -n "${DRY_RUN:-}" ]]; then echo "arnkit $*"; return; fi
  /usr/bin/time -f "%e s wall" "$ARNKIT" "$@"
}

# MNIST, Table 2's FWA columns for every trained defense (gray box; AT_PGD and DOA attacked directly).
run evaluate --dataset mnist --workspace "$MNIST_WS" --defense all --attack fwa_n,fwa_n@0.4,fwa_n@0.5 \
  --limit "$MNIST_LIMIT"

# LISA, the paper's six rows.
run data import lisa "$ARCHIVE" --workspace "$LISA_WS"
run target train --dataset lisa --workspace "$LISA_WS"
run train --dataset lisa --seen ap1,ap2 --workspace "$LISA_WS"
run train --dataset lisa --defense at_pgd --workspace "$LISA_WS"
run train --dataset lisa --defense apeg --seen ap1,ap2 --workspace "$LISA_WS"
run train --dataset lisa --defense doa --roa 9x5 --workspace "$LISA_WS"
run train --dataset lisa --defense doa --roa 7x7 --workspace "$LISA_WS"
run evaluate --dataset lisa --workspace "$LISA_WS" --defense all --attack ap1,ap2,ap3,ap4 --limit 0
run evaluate --dataset lisa --workspace "$LISA_WS" --defense all --attack ap1,ap2,ap3,ap4 --limit 0 \
  --iterations 1000
