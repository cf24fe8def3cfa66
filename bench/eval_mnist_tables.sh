#!/usr/bin/env bash
# The MNIST versions of the paper's Tables 1-4 for a workspace that holds a trained `arnkit train` defense:
#   bash bench/eval_mnist_tables.sh WORKSPACE [LIMIT]
# Table 1+2 (gray box, every registered attack + raised eps), Table 3 (white-box PGD_T at eps .3 and .5,
# ITE-40) and Table 4 (BPDA + PGD_N at 40 and 100 iterations), each with its sanity checks.
set -euo pipefail
WS=${1:?workspace}
LIMIT=${2:-1000}
ARNKIT=${ARNKIT:-arnkit}
run() { echo "== arnkit evaluate $*" >&2; /usr/bin/time -f "%e s wall" "$ARNKIT" evaluate --workspace "$WS" --limit "$LIMIT" "$@"; }
run --attack all
run --attack pgd_t --threat-model white --iterations 40
run --attack pgd_t@0.5 --threat-model white --iterations 40
run --attack pgd_n --threat-model bpda
"$ARNKIT" report --workspace "$WS"
