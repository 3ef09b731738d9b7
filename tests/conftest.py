"""Shared pytest setup: markers, a per-test random generator, and the import path.

The package must be importable (no importorskip): a broken build is a test failure, not a skip.
Tests marked ``gpu`` are skipped when torch has no CUDA device.
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig
import tempfile

import pytest
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_PYTHON = os.path.join(os.path.dirname(_HERE), "python")
# FLASHINFER_MOE_TEST_INSTALLED=1 (CI sets it): the suite must test an installed wheel, and a
# `flashinfer` imported from anywhere but this interpreter's site-packages is an error.
INSTALLED_ONLY = os.environ.get("FLASHINFER_MOE_TEST_INSTALLED") == "1"
# The tests directory makes `import numeric` work from every test file. The in-tree package comes
# first only when it holds a compiled module (scripts/dev_build.sh links one there); otherwise the
# installed wheel is what gets tested.
_paths = [_HERE]
if not INSTALLED_ONLY and glob.glob(os.path.join(_PYTHON, "flashinfer", "_C*.so")):
    _paths.append(_PYTHON)
for path in _paths:
    if path not in sys.path:
        sys.path.insert(0, path)

# The autotuner's cache file (flashinfer/fused_moe/tuner.py): one per test session, never the
# user's own, so no test reads choices measured elsewhere or writes into the user's file.
os.environ["FLASHINFER_MOE_AUTOTUNE_CACHE"] = os.path.join(
    tempfile.mkdtemp(prefix="flashinfer_moe_tests_"), "autotune.json"
)

import flashinfer  # noqa: E402  (must import: fail loudly, never skip)


def _site_packages_dirs() -> set[str]:
    paths = sysconfig.get_paths()
    return {os.path.realpath(paths[key]) for key in ("purelib", "platlib")}


FLASHINFER_DIR = os.path.dirname(os.path.realpath(flashinfer.__file__))
FROM_SITE_PACKAGES = os.path.dirname(FLASHINFER_DIR) in _site_packages_dirs()
if INSTALLED_ONLY and not FROM_SITE_PACKAGES:
    raise RuntimeError(
        f"FLASHINFER_MOE_TEST_INSTALLED=1 but flashinfer was imported from {FLASHINFER_DIR}, "
        f"not from this interpreter's site-packages {sorted(_site_packages_dirs())}"
    )


def pytest_report_header(config):
    where = "installed" if FROM_SITE_PACKAGES else "source tree"
    try:
        from flashinfer import _C

        built = f"CUDA {_C.cuda_architectures()}" if _C.built_with_cuda() else "CPU-only"
    except ImportError as e:
        built = f"no compiled module ({e})"
    return f"flashinfer: {FLASHINFER_DIR} ({where}, {built})"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line(
        "markers",
        "seed: the seed document's examples, on cuda:0 when there is a GPU (else on the CPU); "
        "GPU runs select them with -m 'gpu or seed'",
    )


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def gen(request) -> torch.Generator:
    """A fresh CPU torch.Generator seeded from the test's node id, so each test is reproducible
    on its own and independent of the order tests run in."""
    g = torch.Generator()
    seed = sum((i + 1) * ord(c) for i, c in enumerate(request.node.nodeid)) % (2**31)
    g.manual_seed(seed)
    return g
