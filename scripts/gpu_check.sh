#!/usr/bin/env bash
# The one-command GPU check of the CUDA engine, run from the repository root on the GPU machine:
#   scripts/gpu_check.sh            (logs and results under $OUT, default ./gpu_check_out)
# Steps: the card (nvidia-smi) -> build for FLASHINFER_MOE_CUDA_ARCHS (default 90a) into
# build/gpu and link the module into python/flashinfer (as scripts/dev_build.sh does) -> the GPU
# test suite (pytest -m "gpu or seed": the seed examples on cuda:0 too) -> compute-sanitizer
# memcheck and racecheck on tests/gpu_sanitize_cases.py -> the e4m3 quantizer check
# (tests/cuda/check_act_quant.cu) -> the benchmark (python -m flashinfer.fused_moe.bench). Every
# step's failure is shown and the later steps still run (a failed build skips what needs it);
# a short summary table comes last. Everything is time-boxed so the whole run fits a 10-minute
# machine slot: GPU_CHECK_BUDGET_S (default 540) for all steps, and a cap per step.
# CUTLASS comes from third_party/cutlass/include (override: FLASHINFER_MOE_CUTLASS_DIR).
# Knobs: JOBS (16), GPU_CHECK_PYTEST_ARGS ("-x"), GPU_CHECK_BENCH_TOKENS (1,16,256,4096),
# GPU_CHECK_BENCH_DTYPE (bf16; fp8 or all for the FP8 presets), GPU_CHECK_SKIP (space-separated
# step names to skip: build pytest memcheck racecheck quantcheck bench).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET_S:-540}
START=$(date +%s)
PY=$(command -v python3)
BUILD=build/gpu
CUTLASS=${FLASHINFER_MOE_CUTLASS_DIR:-$PWD/third_party/cutlass/include}
ARCHS=${FLASHINFER_MOE_CUDA_ARCHS:-90a}
SKIP=" ${GPU_CHECK_SKIP:-} "
SUMMARY=()  # "step|status|seconds|note"

remaining() { echo $((BUDGET - ($(date +%s) - START))); }

# run_step NAME CAP_SECONDS LOG COMMAND...: runs COMMAND under `timeout`, tees into $OUT/LOG,
# records PASS / FAIL (rc) / TIMEOUT / SKIPPED in the summary; returns the command's status.
run_step() {
  local name=$1 cap=$2 logname=$3 log=$OUT/$3
  shift 3
  local left
  left=$(remaining)
  if [[ $SKIP == *" $name "* ]]; then
    SUMMARY+=("$name|SKIPPED|0|GPU_CHECK_SKIP")
    return 0
  fi
  if ((left < 15)); then
    SUMMARY+=("$name|SKIPPED|0|time budget spent")
    echo "== $name: skipped, time budget spent" | tee "$log"
    return 124
  fi
  local limit=$((cap < left ? cap : left))
  echo "== $name (limit ${limit}s): $*" | tee "$log"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0))
  if ((rc == 0)); then
    SUMMARY+=("$name|PASS|$dt|$logname")
  elif ((rc == 124 || rc == 137)); then
    SUMMARY+=("$name|TIMEOUT|$dt|after ${limit}s")
  else
    SUMMARY+=("$name|FAIL (rc $rc)|$dt|see $logname")
  fi
  echo "== $name: rc $rc in ${dt}s" | tee -a "$log"
  return "$rc"
}

# ---- 1. the card and the toolchain --------------------------------------------------------------
{
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,compute_cap \
      --format=csv,noheader 2>&1
  else
    echo "no nvidia-smi on PATH"
  fi
  "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "device", torch.cuda.get_device_name() if torch.cuda.is_available() else None)' 2>&1
  nvcc --version 2>&1 | tail -n 2
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (working tree as copied)"
} | tee "$OUT/machine.txt"
CARD=$(head -n 1 "$OUT/machine.txt")

# ---- 2. build and link the module ---------------------------------------------------------------
build_and_link() {
  [[ -d $CUTLASS ]] || { echo "CUTLASS include dir not found: $CUTLASS"; return 2; }
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DFLASHINFER_MOE_ENABLE_CUDA=ON -DFLASHINFER_MOE_CUDA_ARCHS="$ARCHS" \
    -DFLASHINFER_MOE_CUTLASS_DIR="$CUTLASS" -DPython_EXECUTABLE="$PY" || return $?
  cmake --build "$BUILD" -j "${JOBS:-16}" || return $?
  local found=0
  for f in "$BUILD"/src/bindings/_C*.so; do
    [[ -e $f ]] || continue
    ln -sf "$(realpath "$f")" python/flashinfer/ && found=1
  done
  ((found)) || { echo "no _C*.so under $BUILD/src/bindings"; return 3; }
  PYTHONPATH=python "$PY" -c 'from flashinfer import _C; print("built_with_cuda", _C.built_with_cuda(), "archs", _C.cuda_architectures())'
}
export -f build_and_link
export BUILD CUTLASS ARCHS PY JOBS
run_step build 330 build.log bash -c build_and_link
BUILD_OK=$?

# ---- 3. tests, sanitizers, benchmark ------------------------------------------------------------
export PYTHONPATH=$PWD/python
if ((BUILD_OK == 0)); then
  # shellcheck disable=SC2086  # GPU_CHECK_PYTEST_ARGS is a list of words
  run_step pytest 300 pytest.log "$PY" -m pytest -q -m "gpu or seed" tests -p no:cacheprovider \
    ${GPU_CHECK_PYTEST_ARGS--x} --junitxml="$OUT/pytest.xml"
  # One allocation per tensor, so an out-of-bounds access leaves every allocation (module doc).
  export PYTORCH_NO_CUDA_MEMORY_CACHING=1
  run_step memcheck 120 memcheck.log compute-sanitizer --tool memcheck --error-exitcode 86 \
    --print-limit 20 "$PY" tests/gpu_sanitize_cases.py
  run_step racecheck 120 racecheck.log compute-sanitizer --tool racecheck --error-exitcode 86 \
    --print-limit 20 "$PY" tests/gpu_sanitize_cases.py --quick
  unset PYTORCH_NO_CUDA_MEMORY_CACHING
  # The e4m3 quantizers bitwise against the CPU's (a standalone nvcc build, no CUTLASS).
  run_step quantcheck 120 quantcheck.log bash -c "nvcc -O3 -std=c++17 --expt-relaxed-constexpr \
    -gencode=arch=compute_90a,code=sm_90a -I src/include -I src tests/cuda/check_act_quant.cu \
    src/cuda/permute/gather_kernel.cu src/cuda/epilogue/activation_kernel.cu src/cuda/finalize/finalize_kernel.cu \
    src/cpu/act_quant.cpp -o $BUILD/check_act_quant && $BUILD/check_act_quant"
  run_step bench 150 bench.log "$PY" -m flashinfer.fused_moe.bench \
    --tokens "${GPU_CHECK_BENCH_TOKENS:-1,16,256,4096}" --dtype "${GPU_CHECK_BENCH_DTYPE:-bf16}" \
    --out "$OUT/bench"
else
  for s in pytest memcheck racecheck quantcheck bench; do
    SUMMARY+=("$s|SKIPPED|0|build failed")
  done
fi

# ---- 4. summary ---------------------------------------------------------------------------------
{
  echo
  echo "== gpu_check summary ($CARD; $(($(date +%s) - START))s of ${BUDGET}s; logs in $OUT)"
  printf '%-10s %-14s %6s  %s\n' step status secs note
  for row in "${SUMMARY[@]}"; do
    IFS='|' read -r s st dt note <<<"$row"
    printf '%-10s %-14s %6s  %s\n' "$s" "$st" "$dt" "$note"
  done
  echo "-- pytest: $(grep -E ' in [0-9.]+s' "$OUT/pytest.log" 2>/dev/null | tail -n 1)"
  grep -h -E 'FAILED|^ERROR ' "$OUT/pytest.log" 2>/dev/null | head -n 15
  for tool in memcheck racecheck; do
    echo "-- $tool: $(grep -h -E 'ERROR SUMMARY|RACECHECK SUMMARY|gpu_sanitize_cases:' \
      "$OUT/$tool.log" 2>/dev/null | tr '\n' ' ')"
  done
  echo "-- bench (us; first rows of the table):"
  grep -E '^\S.* \| ' "$OUT/bench.log" 2>/dev/null | head -n 12
} | tee "$OUT/summary.txt"
for row in "${SUMMARY[@]}"; do
  [[ $row == *"|PASS|"* || $row == *"|SKIPPED|0|GPU_CHECK_SKIP" ]] || exit 1
done
exit 0
