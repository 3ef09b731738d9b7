"""A few small CUDA executor cases for compute-sanitizer (memcheck, racecheck, initcheck).

Run from the repository root (scripts/gpu_check.sh does):

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 PYTHONPATH=python \\
        compute-sanitizer --tool memcheck --error-exitcode 86 python3 tests/gpu_sanitize_cases.py

``PYTORCH_NO_CUDA_MEMORY_CACHING=1`` gives every tensor its own allocation, so a read or write
past the end of an output or the workspace is outside any allocation and memcheck sees it (with
the caching allocator it would usually land inside a neighbouring cached block). Each case runs
every GEMM tactic and is checked like tests/test_gpu_moe.py (reference, CPU executor), so a
sanitizer-clean run is also a correct one. The shapes are tiny because the sanitizers slow
kernels down by orders of magnitude; they still cover one and many rows per expert, odd sizes
(unaligned rows), FP8 block and per-tensor scales, GEMM1's fused FP8 epilogues (sm80 and
Hopper) and a split-K GEMM2, FP4 weights in every storage form (W4A16, and W4A8 / W4A4 through
the widening kernels), an EP window with capacity, a transposed W2 view and the unfinalized
output.
``FLASHINFER_MOE_TEST_DEVICE=cpu`` runs them on the CPU executor (a dry run of the script).
``--quick`` runs the first four cases only (racecheck is the slowest tool): the third is the
Hopper fused FP8 GEMM1, the fourth the W4A16 kernel with its fused epilogue (their
shared-memory hand-offs are what racecheck should see). ``--match TEXT`` runs the cases whose
name contains TEXT.
Exit status 0 when every case passed, 1 otherwise (the sanitizer's own exit code wins when it
found an error).
"""

from __future__ import annotations

import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # moe_builders, numeric, ...

import torch  # noqa: E402
from flashinfer.fused_moe.enums import ActivationType as Act  # noqa: E402
from flashinfer.fused_moe.problem import QuantTensor  # noqa: E402
from gpu_cases import ON_GPU, check_all_tactics  # noqa: E402
from moe_builders import build_problem, make_weights  # noqa: E402


def _transposed_w2():
    p = build_problem(T=17, E=4, k=2, H=64, I=48, activation=Act.Silu, seed=4)
    p.w2 = QuantTensor(p.w2.data.transpose(1, 2).contiguous().transpose(1, 2))
    return p


def _fp8(w, q1, q2, **kw):
    """An e4m3 problem: weights of format ``w``, activation quantization q1 / q2."""
    p = build_problem(input_quant=q1, inter_quant=q2, **kw)
    m1 = 2 * p.intermediate_size
    p.w1 = make_weights(w, p.local_num_experts, m1, p.hidden_size, kw["seed"] + 20)
    p.w2 = make_weights(w, p.local_num_experts, p.hidden_size, p.intermediate_size, kw["seed"] + 30)
    return p


def _fp4_mixed_layouts():
    """NVFP4 with one code per byte in W1 and packed codes with 128x4-swizzled scales in W2."""
    p = build_problem(T=150, E=4, k=2, H=200, I=72, weights="nvfp4:unpacked:linear", seed=13)
    p.w2 = make_weights("nvfp4:packed:swizzled", 4, 200, 72, 43)
    return p


def _mxint4():
    from test_api_trtllm_mxint4 import int4_quant_tensor

    p = build_problem(T=5, E=4, k=2, H=256, I=48, seed=18)
    p.w1 = int4_quant_tensor(4, 96, 256, 19, exact=False)
    p.w2 = int4_quant_tensor(4, 256, 48, 20, exact=False)
    return p


CASES = [
    ("decode T=1", lambda: build_problem(T=1, E=8, k=2, H=200, I=72, seed=1)),
    ("odd sizes T=33 H=201 I=37", lambda: build_problem(T=33, E=8, k=3, H=201, I=37, seed=2)),
    ("fp8 block, sm90 fused GEMM1, ragged K T=20 H=4176 I=256",
     lambda: _fp8("e4m3:128x128", "fp8_group:128", "fp8_group:128", T=20, E=4, k=2, H=4176,
                  I=256, seed=11)),
    ("fp4 mxfp4 W4A16, fused gather + activation, ragged K T=5 H=2880 I=96",
     lambda: build_problem(T=5, E=4, k=2, H=2880, I=96, weights="mxfp4", activation=Act.SwigluBias,
                           act_params=True, biases=True, seed=12)),
    ("fp4 nvfp4 W4A16 stream kernel 8-row tile (T * k <= 8), ragged K T=2 H=2896 I=144",
     lambda: build_problem(T=2, E=2, k=2, H=2896, I=144, weights="nvfp4:packed:linear", seed=14)),
    ("fp4 path, mxint4 int4 codes + bf16 scales T=5 H=256 I=48", _mxint4),
    ("fp4 nvfp4 unpacked + swizzled packed, prefill T=150 H=200 I=72",
     lambda: _fp4_mixed_layouts()),
    ("fp4 W4A4 nvfp4 x nvfp4 per expert, widened, ragged H=200 I=72 T=11",
     lambda: build_problem(T=11, E=4, k=2, H=200, I=72, weights="nvfp4:packed:linear",
                           input_quant="nvfp4_per_expert", inter_quant="nvfp4", seed=14)),
    ("fp4 W4A8 mxfp4 x mxfp8, widened, I=200 T=7",
     lambda: build_problem(T=7, E=4, k=2, H=256, I=200, weights="mxfp4", input_quant="mxfp8",
                           inter_quant="mxfp8", seed=15)),
    ("situ + GEMM1 LoRA delta + inter_output, fp8 per-token T=12 H=64 I=40",
     lambda: _fp8("e4m3:0x0", "fp8_token", "fp8_token", T=12, E=4, k=2, H=64, I=40,
                  activation=Act.Situ, act_params=True, lora=True, inter_out=True, seed=16)),
    ("situ + GEMM1 LoRA delta, bf16 decode T=3 H=64 I=40",
     lambda: build_problem(T=3, E=4, k=2, H=64, I=40, activation=Act.Situ, act_params=True,
                           lora=True, inter_out=True, biases=True, seed=17)),
    ("fp8 block T=20 H=256 I=200",
     lambda: _fp8("e4m3:128x128", "fp8_group:128", "fp8_group:128", T=20, E=4, k=2, H=256,
                  I=200, seed=8)),
    ("fp8 per-tensor odd T=9 H=72 I=40",
     lambda: _fp8("e4m3:0x0", "fp8_static_per_expert", "fp8_token", T=9, E=4, k=2, H=72, I=40,
                  seed=9)),
    ("fp8 static, fused epilogue, split-K GEMM2 T=3 H=48 I=4096",
     lambda: _fp8("e4m3:0x0", "fp8_static", "fp8_static", T=3, E=4, k=2, H=48, I=4096,
                  seed=10)),
    ("sm90-friendly T=130 H=256 I=128",
     lambda: build_problem(T=130, E=4, k=2, H=256, I=128, seed=3)),
    ("EP window + capacity",
     lambda: build_problem(T=40, E=16, offset=4, local=8, k=4, capacity=3, H=64, I=32, seed=5,
                           biases=True)),
    ("transposed W2 view", _transposed_w2),
    ("permuted output (no finalize)",
     lambda: build_problem(T=24, E=4, k=2, H=64, I=32, permuted=True, seed=6)),
    ("fp16, top_k == E", lambda: build_problem(T=9, E=4, k=4, H=64, I=32, seed=7, weights="f16",
                                              in_dtype=torch.float16, out_dtype=torch.float16,
                                              compute=torch.float16)),
]  # fmt: skip


def main(argv: list[str]) -> int:
    if ON_GPU and not torch.cuda.is_available():
        print("gpu_sanitize_cases: no CUDA device", file=sys.stderr)
        return 1
    cases = CASES[:4] if "--quick" in argv else CASES
    if "--match" in argv:
        text = argv[argv.index("--match") + 1]
        cases = [c for c in cases if text in c[0]]
    failed = 0
    for name, make in cases:
        start = time.perf_counter()
        try:
            ran = check_all_tactics(make())
            if ON_GPU:
                torch.cuda.synchronize()
            tactics = ",".join(t.name for t in ran)
            print(f"PASS {name} [{tactics}] {time.perf_counter() - start:.1f}s", flush=True)
        except Exception:  # noqa: BLE001  (report every case, then fail the run)
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"gpu_sanitize_cases: {len(cases) - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
