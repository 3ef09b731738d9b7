"""Shared pytest setup: markers, a per-test random generator, and the import path.

The package must be importable (no importorskip): a broken build is a test failure, not a skip.
Tests marked ``gpu`` are skipped when torch has no CUDA device.
"""

from __future__ import annotations

import glob
import os
import sys

import pytest
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_PYTHON = os.path.join(os.path.dirname(_HERE), "python")
# The tests directory makes `import numeric` work from every test file. The in-tree package comes
# first only when it holds a compiled module (scripts/dev_build.sh links one there); otherwise the
# installed wheel is what gets tested.
_paths = [_HERE]
if glob.glob(os.path.join(_PYTHON, "flashinfer", "_C*.so")):
    _paths.append(_PYTHON)
for path in _paths:
    if path not in sys.path:
        sys.path.insert(0, path)

import flashinfer  # noqa: E402,F401  (must import: fail loudly, never skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")


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
