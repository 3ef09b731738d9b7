"""Checks a built flashinfer-moe wheel before anyone installs it:
  python scripts/check_wheel.py dist/wheelhouse/flashinfer_moe-...whl [--archs "80;90a;100a"]

- contents: the nanobind module for this interpreter, libflashinfer_moe.so, the public headers and
  the CMake package (flashinfer/lib/cmake/flashinfer_moe); no build junk (bytecode, object files,
  CMake trees, sources, tests, grafted copies of libraries);
- linkage (readelf): the module finds the core through RUNPATH $ORIGIN, and neither binary needs
  anything beyond glibc, libstdc++ and libgcc (the CUDA runtime is static, the driver dlopen'ed);
- the module loads in this interpreter, without the package's __init__ (so without torch), and
  reports CUDA with the expected architectures (with --archs).
Run it with the interpreter the wheel is for. Exits non-zero with every problem listed.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

# What a binary in the wheel may need: the C and C++ runtimes that every manylinux system has.
ALLOWED_NEEDED = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libflashinfer_moe.so",
}
JUNK = re.compile(
    r"(__pycache__/|\.pyc$|\.o$|\.a$|\.cu$|\.cuh$|\.cpp$|CMakeFiles/|CMakeCache\.txt$"
    r"|\.ninja|^tests/|/tests/|\.libs/|^build/|\.git/)"
)


def check(wheel: str, archs: str | None) -> list[str]:
    problems = []
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    module = f"flashinfer/_C{ext}"
    core = "flashinfer/libflashinfer_moe.so"
    required = [
        "flashinfer/__init__.py",
        "flashinfer/fused_moe/__init__.py",
        module,
        core,
        "flashinfer/include/flashinfer_moe/moe.h",
        "flashinfer/include/flashinfer_moe/types.h",
        "flashinfer/lib/cmake/flashinfer_moe/flashinfer_moeConfig.cmake",
        "flashinfer/lib/cmake/flashinfer_moe/flashinfer_moeConfigVersion.cmake",
        "flashinfer/lib/cmake/flashinfer_moe/flashinfer_moe_targets.cmake",
    ]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for name in required:
            if name not in names:
                problems.append(f"missing {name}")
        for name in names:
            if JUNK.search(name):
                problems.append(f"unexpected file {name}")
            elif not (name.startswith("flashinfer/") or ".dist-info/" in name):
                problems.append(f"file outside the package: {name}")
        if problems:
            return problems
        tmp = tempfile.mkdtemp(prefix="check_wheel_")
        z.extract(module, tmp)
        z.extract(core, tmp)
    pkg = os.path.join(tmp, "flashinfer")
    for name in (os.path.basename(module), os.path.basename(core)):
        dyn = subprocess.run(
            ["readelf", "-d", os.path.join(pkg, name)], capture_output=True, text=True, check=True
        ).stdout
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn))
        for lib in sorted(needed - ALLOWED_NEEDED):
            problems.append(f"{name} needs {lib} (not part of the manylinux base)")
        if name == os.path.basename(module):
            runpath = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.+?)\]", dyn)
            if not any("$ORIGIN" in p.split(":") for p in runpath):
                problems.append(f"{name}: RUNPATH {runpath} lacks $ORIGIN (cannot find the core)")
    path = os.path.join(pkg, os.path.basename(module))
    loader = importlib.machinery.ExtensionFileLoader("flashinfer._C", path)
    spec = importlib.util.spec_from_loader("flashinfer._C", loader)
    try:
        c = importlib.util.module_from_spec(spec)
        loader.exec_module(c)
    except ImportError as e:
        return problems + [f"the module does not load: {e}"]
    if archs is not None:
        want = archs.replace(";", ",")
        if not c.built_with_cuda():
            problems.append("the module was built without CUDA")
        elif c.cuda_architectures() != want:
            problems.append(f"CUDA architectures {c.cuda_architectures()!r}, expected {want!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel")
    parser.add_argument("--archs", help="expected FLASHINFER_MOE_CUDA_ARCHS (CUDA required)")
    args = parser.parse_args()
    problems = check(args.wheel, args.archs)
    size = os.path.getsize(args.wheel) / 1e6
    for p in problems:
        print(f"check_wheel: {os.path.basename(args.wheel)}: {p}", file=sys.stderr)
    if not problems:
        print(f"check_wheel: {os.path.basename(args.wheel)} ok ({size:.1f} MB)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
