"""The C++ core drops into an engine's CMake build: find_package(flashinfer_moe) against the
installed package, link, run the CPU executor and read a validation status (no torch, no Python
in the consumer)."""

from __future__ import annotations

import os
import shutil
import subprocess

import flashinfer
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))


def _package_config_dir() -> str:
    return os.path.join(os.path.dirname(flashinfer.__file__), "lib", "cmake", "flashinfer_moe")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_find_package_build_and_run(tmp_path):
    config = _package_config_dir()
    if not os.path.isdir(config):
        pytest.skip("flashinfer is not an installed wheel here (dev tree): no package config")
    build = tmp_path / "build"
    subprocess.run(
        ["cmake", "-S", os.path.join(_HERE, "cpp_consumer"), "-B", str(build),
         f"-Dflashinfer_moe_DIR={config}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(build / "consumer")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "top_k: must be in [1, num_experts=2], got 5" in run.stdout
