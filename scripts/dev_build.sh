#!/usr/bin/env bash
# Developer loop without pip: configure + build into build/dev and link the modules into
# python/flashinfer so that `PYTHONPATH=python` imports this tree. CUDA follows
# FLASHINFER_MOE_ENABLE_CUDA (default OFF here for a fast CPU loop; ON/AUTO to compile kernels).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/dev}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DFLASHINFER_MOE_ENABLE_CUDA="${FLASHINFER_MOE_ENABLE_CUDA:-OFF}" \
  -DFLASHINFER_MOE_CUDA_ARCHS="${FLASHINFER_MOE_CUDA_ARCHS:-90a}" \
  -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build" -j "${JOBS:-2}"
for f in "$build"/src/bindings/_C*.so; do ln -sf "$(realpath "$f")" python/flashinfer/; done
