#!/usr/bin/env bash
# Issue 14's benchmark: the default ARN, ARN --adaptive and AT_PGD side by side, MNIST, LeNet target.
# Usage: bash bench/eval_adaptive.sh WS ARN.keras ADAPTIVE.keras AT.keras SURROGATE.keras [LIMIT [AA_LIMIT]]
#   WS holds the target (arnkit train there first); SURROGATE is an independently trained pre-processor (APE-G)
#   for the transfer rows. Every call is an `arnkit evaluate`; crafted sets are cached in WS, so the combined
#   worst-case call at the end reuses the per-attack ones. JSON records go to WS/eval-adaptive/.
set -euo pipefail
ws=$1 arn=$2 ada=$3 at=$4 sur=$5 limit=${6:-1000} aa_limit=${7:-200}
arnkit=${ARNKIT:-.venv/bin/arnkit}
out=$ws/eval-adaptive && mkdir -p "$out"
run() { local name=$1; shift; echo "== $name: $*" >&2; /usr/bin/time -f "$name %e s" "$arnkit" evaluate --dataset mnist \
  --workspace "$ws" --json "$@" > "$out/$name.json"; }
three="$arn,$ada,$at"
# White box, converged: each attack alone, so its iterations check (doubling, first 200 images) runs.
run white-pgd_n --defense "$three" --attack pgd_n --threat-model white --iterations 100 --limit "$limit"
run white-pgd_t --defense "$three" --attack pgd_t --threat-model white --iterations 100 --limit "$limit"
run white-pgd_t-eps.5 --defense "$three" --attack pgd_t@0.5 --threat-model white --iterations 100 --limit "$limit"
run white-aa_n --defense "$three" --attack aa_n --threat-model white --limit "$aa_limit"
# The worst case per image over the white-box attacks above (same sets, from the cache; no new crafting).
run white-worst --defense "$three" --attack pgd_n,pgd_t,aa_n --threat-model white --iterations 100 \
  --limit "$aa_limit" --no-sanity
# Gray box, Tables 1-2 columns.
run gray-fast --defense "$three" --attack pgd_n,pgd_t,cw_n,ddn_n,pgd_n@0.4 --limit "$limit"
run gray-slow --defense "$three" --attack aa_n,jsma_t,sta_n,sta_t,fwa_n --limit "$limit"
# BPDA (Table 4) and transfer through the independent surrogate.
run bpda --defense "$arn,$ada" --attack pgd_n --threat-model bpda --limit "$limit"
run transfer --defense "$arn,$ada" --attack pgd_t --threat-model transfer --surrogate "$sur" --limit "$limit"
