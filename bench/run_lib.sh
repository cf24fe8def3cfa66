# Sourced by bench/seeds.sh and bench/like_for_like.sh: run arnkit with its wall time on stderr (DRY_RUN=1 prints
# the command instead), and train() keeps each run's exported file in TRAINED ("none,<path>,..."), so the
# evaluations name exactly the runs the script trained, never `--defense all`.
ARNKIT=${ARNKIT:-.venv/bin/arnkit}
PYTHON=${PYTHON:-.venv/bin/python}
run() {
  echo "== $(date -u +%FT%TZ) arnkit $*" >&2
  if [[ -n "${DRY_RUN:-}" ]]; then echo "arnkit $*"; return; fi
  /usr/bin/time -f "%e s wall, %M KB peak RSS" "$ARNKIT" "$@"
}
TRAINED=none RUNS=0
# `arnkit train --json` prints the run record: keep its defense_path
train() {
  local out
  out=$(run train "$@")
  echo "$out"
  if [[ -n "${DRY_RUN:-}" ]]; then RUNS=$((RUNS + 1)); TRAINED+=",<run $RUNS>"; return; fi
  TRAINED+=",$("$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())["defense_path"])' <<<"$out")"
}
