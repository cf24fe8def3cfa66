#!/usr/bin/env bash
# Table 2's LISA block (clean + sticker patches AP1-AP4) on all 1,148 test images, then the unseen pixel and
# spatial attacks, for a workspace that holds `arnkit train --dataset lisa` (bench/train_lisa_default.sh):
#   bash bench/eval_lisa_table2.sh WORKSPACE [LIMIT_FOR_THE_OTHER_ATTACKS]
# Rows: DEFENSES (default none,arn,at_pgd, Table 2's rows that arnkit has a LISA run of). A defense key with no
# trained run in WORKSPACE is trained there first with its own defaults (AT_PGD: 10 epochs, PGD-10 at 8/255),
# so the AT_PGD row needs no separate step; DEFENSES=none,arn skips it.
# Each command writes evaluations/<...>.d/results.{json,csv,md}; the wall time of each goes to stderr.
set -euo pipefail
WS=${1:?workspace}
OTHER_LIMIT=${2:-0}
DEFENSES=${DEFENSES:-none,arn,at_pgd}
ARNKIT=${ARNKIT:-.venv/bin/arnkit}
run() { echo "== arnkit evaluate $*" >&2; /usr/bin/time -f "%e s wall" "$ARNKIT" evaluate --dataset lisa --defense "$DEFENSES" --workspace "$WS" "$@"; }
run --attack ap1,ap2,ap3,ap4 --limit 0
run --attack pgd_n,pgd_t,cw_n,ddn_n,sta_n,sta_t,fwa_n,rp2,roa --limit "$OTHER_LIMIT"
run --attack all --limit "$OTHER_LIMIT"
