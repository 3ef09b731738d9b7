"""The C++ core drops into an engine's CMake build: find_package(flashinfer_moe) with
CMAKE_PREFIX_PATH set to the package's location, link, run the CPU executor and read a validation
status (no torch, no Python in the consumer).

Against an installed wheel the prefix is the installed `flashinfer/` directory itself (the wheel
carries lib/cmake/flashinfer_moe, include/ and libflashinfer_moe.so there), exactly what an engine
would pass. In the dev setup (scripts/dev_build.sh links the module into python/flashinfer) the
dev build is installed with `cmake --install` into a temporary prefix first, so the same install
rules are what the consumer finds."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import flashinfer
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.dirname(os.path.realpath(flashinfer.__file__))


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stdout}\n{run.stderr}"
    return run


def _dev_build_dir() -> str | None:
    """The CMake build directory whose module python/flashinfer links to (scripts/dev_build.sh)."""
    for module in glob.glob(os.path.join(_PACKAGE, "_C*.so")):
        if not os.path.islink(module):
            continue
        d = os.path.dirname(os.path.realpath(module))
        while d != os.path.dirname(d):
            if os.path.isfile(os.path.join(d, "CMakeCache.txt")):
                return d
            d = os.path.dirname(d)
    return None


def _cmake_prefix(tmp_path) -> str:
    if os.path.isdir(os.path.join(_PACKAGE, "lib", "cmake", "flashinfer_moe")):
        return _PACKAGE  # an installed wheel
    build = _dev_build_dir()
    if build is None:
        if os.environ.get("FLASHINFER_MOE_TEST_INSTALLED") == "1":
            pytest.fail(f"the installed package {_PACKAGE} has no lib/cmake/flashinfer_moe")
        pytest.skip("flashinfer is neither an installed wheel nor a dev build linked into python/")
    prefix = str(tmp_path / "prefix")
    _run(["cmake", "--install", build, "--prefix", prefix])
    return prefix


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_find_package_build_and_run(tmp_path):
    prefix = _cmake_prefix(tmp_path)
    build = tmp_path / "build"
    _run(["cmake", "-S", os.path.join(_HERE, "cpp_consumer"), "-B", str(build),
          f"-DCMAKE_PREFIX_PATH={prefix}"])  # fmt: skip
    # find_package found this package, not some other install of it.
    cache = (build / "CMakeCache.txt").read_text()
    found = next(line.split("=", 1)[1] for line in cache.splitlines()
                 if line.startswith("flashinfer_moe_DIR:"))  # fmt: skip
    assert os.path.realpath(found) == os.path.realpath(
        os.path.join(prefix, "lib", "cmake", "flashinfer_moe")
    )
    _run(["cmake", "--build", str(build)])
    run = _run([str(build / "consumer")])
    assert "top_k: must be in [1, num_experts=2], got 5" in run.stdout
