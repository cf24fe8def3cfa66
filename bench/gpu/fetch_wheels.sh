#!/usr/bin/env bash
# Download, here (where pip reaches the registries), the wheels the GPU machine lacks: Keras and the two of its
# dependencies that image does not hold (namex, optree). Everything else arnkit needs is there already
# (bench/gpu/README.md). They land in .gpu-carry/wheels, which the device run carries.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.gpu-carry/wheels
mkdir -p "$dest"
keras_version=$(python3 - <<'PY' 2>/dev/null || echo 3.15.1
import importlib.metadata as m
print(m.version("keras"))
PY
)
for spec in "keras==$keras_version" "namex==0.1.0" "optree==0.18.0"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dest" "$spec"
done
ls -la "$dest"
