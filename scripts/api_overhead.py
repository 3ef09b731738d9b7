#!/usr/bin/env python3
"""Per-call host overhead of the Python API of flashinfer.fused_moe (no kernel work measured).

For each hot entry point (cutlass_fused_moe full and seed forms, trtllm_bf16_moe,
trtllm_bf16_routed_moe, route, the FP8 / FP4 full forms and the FP8 / FP4 seed forms) it times back-to-back calls on a tiny problem and, separately,
the time spent inside the native ``flashinfer._C`` functions during those calls (the functions
are wrapped with a timer for the measurement). The host overhead is total minus native: what the
Python translation layer costs per call. On CUDA the native calls only enqueue kernels, so
"native" is launch time; the GPU work itself is not waited for except once per measurement
(a synchronize after the loop, so the queue never grows without bound).

    PYTHONPATH=python python3 scripts/api_overhead.py [--device cuda] [--iters 2000]

``--clock thread`` counts this thread's CPU time instead of wall time, so other processes on a
shared machine do not inflate the numbers. Prints one line per entry point: the best of the repeats (least overhead), in microseconds per call for total, native and
overhead.
"""

from __future__ import annotations

import argparse
import time

import flashinfer
import torch
from flashinfer import _C
from flashinfer.fused_moe import RoutingMethodType, WeightLayout, pack_topk_ids, route

_NATIVE_FUNCS = ("run_cpu", "run_cuda", "route_cpu", "route_cuda", "workspace_size")
_native_ns = [0]
_clock = [time.perf_counter_ns]  # --clock thread swaps in the thread's CPU time


def _wrap_native(stub: bool) -> None:
    """Replace the native entry points by timed wrappers (the module's attribute lookup at call
    time picks them up). ``stub``: the executors (``run_*``, ``route_*``) become no-ops after
    their arguments are converted, so only the Python layer and the argument conversion remain
    (no kernel work and none of its cache effects on the surrounding Python code)."""
    for name in _NATIVE_FUNCS:
        fn = getattr(_C, name, None)
        if fn is None:
            continue
        if stub and name != "workspace_size":
            fn = _stub_route if name.startswith("route") else _stub_run

        def timed(*args, _fn=fn):
            t0 = _clock[0]()
            try:
                return _fn(*args)
            finally:
                _native_ns[0] += _clock[0]() - t0

        setattr(_C, name, timed)


def _stub_run(problem, workspace, stream) -> None:
    """Stands in for ``run_cpu`` / ``run_cuda``: converts the workspace like they do, runs nothing."""
    if workspace is not None:
        _C.TensorView.of(workspace)


def _stub_route(problem, stream) -> None:
    """Stands in for ``route_cpu`` / ``route_cuda``."""


def _cases(device: str):
    """(name, zero-argument callable) of each entry point on a tiny bf16 problem."""
    t, h, i, e, k = 4, 128, 64, 8, 2
    dt = torch.bfloat16
    g = torch.Generator().manual_seed(0)

    def rand(*shape, dtype=dt):
        return (torch.randn(*shape, generator=g) * 0.1).to(dtype).to(device)

    x = rand(t, h)
    fc1, fc2 = rand(e, 2 * i, h), rand(e, h, i)
    logits = rand(t, e, dtype=torch.float32)
    ids, weights = route(logits, k, RoutingMethodType.Renormalize)
    packed = pack_topk_ids(ids, weights)
    ws_bytes = flashinfer.fused_moe.cutlass_fused_moe_workspace_size(
        t, h, i, e, k, x_dtype=dt, weight_dtype=dt, output_dtype=dt, device=device
    )
    ws = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=device)
    out = torch.empty(t, h, dtype=dt, device=device)
    native = dict(use_shuffled_weight=False, weight_layout=WeightLayout.MajorK)
    cfm = flashinfer.cutlass_fused_moe
    return [
        ("cutlass_fused_moe full", lambda: cfm(x, ids, weights, fc1, fc2, dt, None)),
        (
            "cutlass_fused_moe full +out+ws",
            lambda: cfm(x, ids, weights, fc1, fc2, dt, None, output=out, workspace_buffer=ws),
        ),
        ("cutlass_fused_moe seed", lambda: cfm(x, logits, (fc1, fc2), num_experts=e, top_k=k)),
        (
            "trtllm_bf16_moe",
            lambda: flashinfer.trtllm_bf16_moe(
                logits,
                None,
                x,
                fc1,
                fc2,
                e,
                k,
                None,
                None,
                i,
                0,
                e,
                routing_method_type=1,
                **native,
            ),
        ),
        (
            "trtllm_bf16_routed_moe",
            lambda: flashinfer.trtllm_bf16_routed_moe(
                packed, x, fc1, fc2, e, k, None, None, i, 0, e, routing_method_type=1, **native
            ),
        ),
        ("route", lambda: route(logits, k, RoutingMethodType.Renormalize)),
        ("pack_topk_ids", lambda: pack_topk_ids(ids, weights)),
    ] + _quantized_cases(device, x, logits, packed, rand)


def _quantized_cases(device: str, x, logits, packed, rand):
    """The FP8 / FP4 full forms and the seed forms on a problem with 128-aligned sizes (FP8
    blocks), native MajorK weights, values that need not be meaningful (timing only)."""
    t, h, i, e, k = x.shape[0], 256, 128, 8, 2
    e4m3, f32 = torch.float8_e4m3fn, torch.float32
    xb = rand(t, h)
    xq = rand(t, h, dtype=f32).to(e4m3)
    xs = rand(h // 128, t, dtype=f32).abs() + 0.01
    w1q, w2q = rand(e, 2 * i, h, dtype=f32).to(e4m3), rand(e, h, i, dtype=f32).to(e4m3)
    s1 = rand(e, 2 * i // 128, h // 128, dtype=f32).abs() + 0.01
    s2 = rand(e, h // 128, i // 128, dtype=f32).abs() + 0.01
    scalars = [rand(e, dtype=f32).abs() + 0.01 for _ in range(3)]
    g = torch.Generator().manual_seed(1)
    p1 = torch.randint(0, 256, (e, 2 * i, h // 2), dtype=torch.uint8, generator=g).to(device)
    p2 = torch.randint(0, 256, (e, h, i // 2), dtype=torch.uint8, generator=g).to(device)
    sf1 = torch.randint(120, 130, (e, 2 * i, h // 32), dtype=torch.uint8, generator=g).to(device)
    sf2 = torch.randint(120, 130, (e, h, i // 32), dtype=torch.uint8, generator=g).to(device)
    sizes = dict(num_experts=e, top_k=k, n_group=None, topk_group=None, intermediate_size=i,
                 local_expert_offset=0, local_num_experts=e, routed_scaling_factor=None)  # fmt: skip
    renorm = dict(routing_method_type=1)
    # The seed forms: fp16 [E, 2, I, H] experts and [T, E] gating, quantized inside the call.
    xh, gate = rand(t, h, dtype=torch.float16), rand(t, e, dtype=torch.float16)
    experts = rand(e, 2, i, h, dtype=torch.float16)
    seed_sizes = dict(num_experts=e, top_k=k, hidden_size=h, intermediate_size=i)
    block_scale = rand(e, 2, i // 16, dtype=torch.float16).abs() + 0.01
    tensor_scale = rand(e, 2, dtype=torch.float16).abs() + 0.01
    fp4_experts = torch.randint(0, 255, (e, 2, i, h), dtype=torch.uint8, generator=g).to(device)
    fi = flashinfer
    return [
        ("trtllm_fp8_per_tensor_scale_moe", lambda: fi.trtllm_fp8_per_tensor_scale_moe(
            logits, None, xq, w1q, scalars[0], scalars[1], w2q, scalars[2], **sizes,
            use_routing_scales_on_input=False, **renorm, use_shuffled_weight=False)),
        ("trtllm_fp8_block_scale_moe", lambda: fi.trtllm_fp8_block_scale_moe(
            logits, None, xq, xs, w1q, s1, w2q, s2, **sizes, **renorm)),
        ("trtllm_fp8_block_scale_routed_moe", lambda: fi.trtllm_fp8_block_scale_routed_moe(
            packed, None, xq, xs, w1q, s1, w2q, s2, **sizes, **renorm)),
        ("trtllm_fp4_block_scale_moe mxfp4", lambda: fi.trtllm_fp4_block_scale_moe(
            logits, None, xb, None, p1, sf1, None, None, None, None, p2, sf2, None, None,
            None, None, **sizes, **renorm, use_shuffled_weight=False)),
        ("seed fp8 block", lambda: fi.trtllm_fp8_block_scale_moe(
            xh, gate, experts, block_scale, **seed_sizes)),
        ("seed fp8 per tensor", lambda: fi.trtllm_fp8_per_tensor_scale_moe(
            xh, gate, experts, tensor_scale, **seed_sizes)),
        ("seed fp4", lambda: fi.trtllm_fp4_block_scale_moe(
            xh, gate, fp4_experts, block_scale, **seed_sizes)),
    ]  # fmt: skip


def _measure(fn, iters: int, repeats: int, sync) -> tuple[float, float]:
    """(total us/call, native us/call) of the best of ``repeats`` runs of ``iters`` calls."""
    for _ in range(max(10, iters // 10)):  # warm up (allocator caches, lazy imports)
        fn()
    sync()
    totals, natives = [], []
    for _ in range(repeats):
        _native_ns[0] = 0
        t0 = _clock[0]()
        for _ in range(iters):
            fn()
        t1 = _clock[0]()
        sync()
        totals.append((t1 - t0) / iters / 1e3)
        natives.append(_native_ns[0] / iters / 1e3)
    # Minimum over repeats: the machine may be shared, and noise only ever adds time.
    best = min(range(repeats), key=lambda r: totals[r] - natives[r])
    return totals[best], natives[best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--clock",
        choices=("wall", "thread"),
        default="wall",
        help="thread: this thread's CPU time, immune to other processes on a busy machine "
        "(on CUDA, use wall: launches may block)",
    )
    ap.add_argument(
        "--stub-native",
        action="store_true",
        help="replace the executors by no-ops: total is then the pure host overhead",
    )
    ap.add_argument("--only", default="", help="comma-separated substrings of case names")
    args = ap.parse_args()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    if args.clock == "thread":
        _clock[0] = time.thread_time_ns
    cases = _cases(args.device)  # built with the real executors (route() makes the ids)
    _wrap_native(args.stub_native)
    only = [s for s in args.only.split(",") if s]
    print(
        f"device={args.device} torch={torch.__version__} iters={args.iters} clock={args.clock} stub_native={args.stub_native}"
    )
    print(f"{'entry point':34s} {'total us':>9s} {'native us':>10s} {'overhead us':>12s}")
    for name, fn in cases:
        if only and not any(s in name for s in only):
            continue
        total, native = _measure(fn, args.iters, args.repeats, sync)
        print(f"{name:34s} {total:9.1f} {native:10.1f} {total - native:12.1f}")


if __name__ == "__main__":
    main()
