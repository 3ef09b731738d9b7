"""``is_trtllm_moe_supported``: whether the ``trtllm_*_moe`` functions run a (weights,
activations) element-type pair.

flashinfer answers for its trtllm-gen kernels (False below compute capability 10). Here the
trtllm functions run on this library's executors, so the answer is the pairs they accept, the
same on the CPU and on every CUDA device this library runs on (sm80 and newer): engines that ask
before choosing the trtllm path then take it on Hopper and Ampere too.
"""

from __future__ import annotations

from .enums import DtypeTrtllmGen

_D = DtypeTrtllmGen
# Activations of the FP4 form: NVFP4, MXFP8, per-tensor FP8, bf16 (trtllm_fp4._fp4_input).
_FP4_ACTIVATIONS = frozenset({_D.E2m1, _D.MxE4m3, _D.E4m3, _D.Bfloat16})
SUPPORTED_PAIRS = frozenset(
    {(_D.Bfloat16, _D.Bfloat16), (_D.E4m3, _D.E4m3), (_D.MxE4m3, _D.MxE4m3)}
    | {(w, a) for w in (_D.E2m1, _D.MxE2m1) for a in _FP4_ACTIVATIONS}
    | {(_D.MxInt4, _D.Bfloat16)}
)


def is_trtllm_moe_supported(
    dtype_weights: DtypeTrtllmGen, dtype_act: DtypeTrtllmGen, quant_method: str | None = None
) -> bool:
    """True when the trtllm functions of this library run weights of ``dtype_weights`` with
    activations of ``dtype_act`` (``SUPPORTED_PAIRS``: bf16 / bf16; FP8 per-tensor or block,
    e4m3 / e4m3; MXFP8 / MXFP8; NVFP4 or MXFP4 weights with NVFP4, MXFP8, FP8 or bf16
    activations; MXINT4 / bf16). ``quant_method`` is accepted for flashinfer's signature and,
    as there, does not change the answer."""
    if quant_method is not None and not isinstance(quant_method, str):
        raise TypeError(f"quant_method: expected a str or None, got {type(quant_method).__name__}")
    for name, value in (("dtype_weights", dtype_weights), ("dtype_act", dtype_act)):
        if not isinstance(value, DtypeTrtllmGen):
            raise TypeError(f"{name}: expected a DtypeTrtllmGen, got {type(value).__name__}")
    return (dtype_weights, dtype_act) in SUPPORTED_PAIRS
