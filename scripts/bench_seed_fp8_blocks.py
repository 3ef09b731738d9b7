#!/usr/bin/env python3
"""The seed FP8 block form with row-block scales against the same layer with 128x128 blocks.

Issue 10's target: FP8 weights whose scales are the seed's ``[E, 2, I/16]`` row blocks (16 rows x
all columns per scale; the transposed W_out then has 16-column blocks along GEMM2's K) run
within 1.2x of the same layer with ``[E, 2, I/128, H/128]`` (DeepSeek-style) scales. Both calls
go through ``trtllm_fp8_block_scale_moe``'s seed form with e4m3 weights (no per-call rounding),
fp16 activations quantized inside per 1x128 groups, the seed example's shape (E=8, k=2, H=4096,
I=11008) and RoundRobin routing, at several token counts. Prints one table; asserts nothing.

    PYTHONPATH=python python3 scripts/bench_seed_fp8_blocks.py [--tokens 1,8,64,256,1024,4096]
"""

from __future__ import annotations

import argparse
import functools

import flashinfer
import torch
from flashinfer.fused_moe import RoutingMethodType
from flashinfer.fused_moe.bench import time_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="1,8,64,256,1024,4096")
    args = ap.parse_args()
    dev = torch.device("cuda")
    e, k, h, i = 8, 2, 4096, 11008
    g = torch.Generator(device=dev).manual_seed(0)
    experts = (torch.randn(e, 2, i, h, generator=g, device=dev) * 4).to(torch.float8_e4m3fn)
    rows16 = torch.rand(e, 2, i // 16, generator=g, device=dev) / 64 + 1e-3
    blocks = torch.rand(e, 2, i // 128, h // 128, generator=g, device=dev) / 64 + 1e-3
    print(f"card: {torch.cuda.get_device_name(dev)}; E={e} k={k} H={h} I={i}, fp16 x")
    print("T | rows16 us | 128x128 us | rows16 / 128x128")
    for t in (int(v) for v in args.tokens.split(",")):
        x = torch.randn(t, h, generator=g, device=dev).half()
        gating = torch.randn(t, e, generator=g, device=dev).half()
        kw = dict(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i,
                  routing_method=RoutingMethodType.RoundRobin)  # fmt: skip
        times = []
        for scale in (rows16, blocks):
            fn = functools.partial(flashinfer.trtllm_fp8_block_scale_moe, x, gating, experts,
                                   scale, **kw)  # fmt: skip
            ms, how = time_ms(fn, dev, t, graph="small")
            times.append((ms, how))
        (a, ha), (b, hb) = times
        print(f"{t} | {a * 1e3:.1f}{'g' if ha == 'graph' else ''} | "
              f"{b * 1e3:.1f}{'g' if hb == 'graph' else ''} | {a / b:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
