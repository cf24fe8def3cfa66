#!/usr/bin/env bash
# The one command a lent GPU machine runs (no TensorFlow there): install the carried wheels, then reproduce the
# MNIST ARN_PP row under KERAS_BACKEND=jax. Results go to $OUT (default .gpu-out).
#   bash bench/gpu/run.sh            # paper scale: reference width, 20,000 steps (fewer if the budget says so)
#   bash bench/gpu/run.sh --smoke    # 50 tiny steps, 100 test images: minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/../.."
if compgen -G ".gpu-carry/wheels/*.whl" > /dev/null && ! python3 -c "import keras" 2> /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu-carry/wheels/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
OUT=${OUT:-.gpu-out}
mkdir -p "$OUT"
# PYTHON may be a command with arguments (the tests run it with TensorFlow blocked).
${PYTHON:-python3} bench/gpu/reproduce.py --out "$OUT" "$@" 2>&1 | tee "$OUT/run.log"
