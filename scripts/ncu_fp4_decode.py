#!/usr/bin/env python3
"""One W4A16 layer call for Nsight Compute: the gpt-oss-120b-mxfp4 bench layer at T tokens.

    ncu --kernel-name regex:w4a16 --section SpeedOfLight --section WarpStateStats ... \\
        python3 scripts/ncu_fp4_decode.py [T] [preset]

Builds the benchmark's FP4 layer (bench_fp4.Fp4Layer), runs one warm-up call and one profiled
call; prints the output's checksum so a broken run is visible.
"""

from __future__ import annotations

import sys

import torch
from flashinfer.fused_moe.bench_fp4 import Fp4Layer
from flashinfer.fused_moe.bench_presets import find_presets

tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 256
name = sys.argv[2] if len(sys.argv) > 2 else "gpt-oss-120b-mxfp4"
layer = Fp4Layer(find_presets(name)[0], torch.device("cuda"))
x, logits = layer.inputs(tokens)
layer.ours(x, logits)
torch.cuda.synchronize()
out = layer.ours(x, logits)
torch.cuda.synchronize()
print(f"{name} T={tokens}: output sum {out.float().sum().item():.4e}")
