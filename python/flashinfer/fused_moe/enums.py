"""Enums of the fused MoE API. Values are ABI shared with the C++ core (flashinfer_moe/types.h);
``tests/test_enums.py`` checks both sides agree. Every member has an upper-case alias."""

from __future__ import annotations

from enum import IntEnum

import torch


class _NamedIntEnum(IntEnum):
    """IntEnum that prints as ``Type.Member`` (Python 3.11 prints a bare IntEnum as its int),
    so configs and logs stay readable; with a format spec it formats as the integer."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __str__(self) -> str:
        return repr(self)

    def __format__(self, spec: str) -> str:
        return repr(self) if not spec else format(int(self), spec)


class RoutingMethodType(_NamedIntEnum):
    Default = 0
    Renormalize = 1
    DeepSeekV3 = 2
    Llama4 = 3
    RenormalizeNaive = 4
    TopK = 5
    SigmoidRenorm = 6
    MiniMax2 = 7
    Sigmoid = 8
    TopKSigmoid = 9
    Unspecified = 10
    RoundRobin = 11
    # upper-case aliases
    DEFAULT = 0
    RENORMALIZE = 1
    DEEPSEEK_V3 = 2
    DEEPSEEKV3 = 2
    LLAMA4 = 3
    RENORMALIZE_NAIVE = 4
    TOPK = 5
    TOP_K = 5
    SIGMOID_RENORM = 6
    MINIMAX2 = 7
    SIGMOID = 8
    TOPK_SIGMOID = 9
    UNSPECIFIED = 10
    ROUND_ROBIN = 11


class GatedActType(_NamedIntEnum):
    SwiGlu = 0
    GeGlu = 1
    SILU = 0
    GELU = 1
    SWIGLU = 0
    GEGLU = 1


class ActivationType(_NamedIntEnum):
    Gelu = 0
    Relu = 1
    Silu = 2
    Swiglu = 3
    Geglu = 4
    SwigluBias = 5
    Relu2 = 6
    SwigluStep = 7
    GegluTanh = 8
    Identity = 9
    Situ = 10
    InvalidType = 11
    GELU = 0
    RELU = 1
    SILU = 2
    SWIGLU = 3
    GEGLU = 4
    SWIGLU_BIAS = 5
    RELU2 = 6
    SWIGLU_STEP = 7
    GEGLU_TANH = 8
    IDENTITY = 9
    SITU = 10
    INVALID_TYPE = 11

    @property
    def is_gated(self) -> bool:
        return self in _GATED


_GATED = frozenset(
    {
        ActivationType.Swiglu,
        ActivationType.Geglu,
        ActivationType.SwigluBias,
        ActivationType.SwigluStep,
        ActivationType.GegluTanh,
        ActivationType.Situ,
    }
)


def normalize_activation_type(activation_type) -> ActivationType:
    """``activation_type`` (an int or an ``ActivationType``) as the enum member; an unknown
    value is a ``ValueError`` naming it."""
    try:
        return ActivationType(activation_type)
    except ValueError as err:
        raise ValueError(f"Unsupported activation_type {activation_type!r}") from err


def is_gated_activation(activation_type) -> bool:
    """True for the activations that read a gate half (``ActivationType.is_gated``)."""
    return ActivationType(activation_type).is_gated


# Defaults of the parameterized activations (flashinfer's module constants): clamped SwiGLU's
# alpha, beta and limit (float32 max: no clamp), SiTU-GLU's beta and linear beta.
DEFAULT_SWIGLU_ALPHA = 1.0
DEFAULT_SWIGLU_BETA = 0.0
DEFAULT_SWIGLU_LIMIT = float(torch.finfo(torch.float32).max)
DEFAULT_SITU_BETA = 4.0
DEFAULT_SITU_LINEAR_BETA = 25.0  # the Situ caps: canonically act_alpha / act_beta (semantics.md)


class WeightLayout(_NamedIntEnum):
    MajorK = 0
    MajorMn = 1
    BlockMajorK = 2
    MAJOR_K = 0
    MAJOR_MN = 1
    BLOCK_MAJOR_K = 2


class Fp8QuantizationType(_NamedIntEnum):
    NoneFp8 = 0
    DeepSeekFp8 = 1
    MxFp8 = 2
    NONE_FP8 = 0
    DEEPSEEK_FP8 = 1
    MX_FP8 = 2


class RoutingInputMode(_NamedIntEnum):
    """How precomputed routing reaches flashinfer's trtllm launchers: from logits, one packed
    int32 word per slot (``(id << 16) | bf16 bits``), or separate ids and weights. The
    ``*_routed_moe`` functions pick it from their ``topk_ids`` argument."""

    FromLogits = 0
    PackedPrecomputed = 1
    UnpackedPrecomputed = 2


def _dtype_code(block_format: int, signed: int, integer: int, bits: int, uid: int) -> int:
    return (block_format << 24) | (signed << 20) | (integer << 16) | (bits << 8) | uid


class DtypeTrtllmGen(_NamedIntEnum):
    """trtllm-gen element type codes (flashinfer's ``DtypeTrtllmGen``): each value packs
    (block-format bit, signed bit, integer bit, bit width, uid) as
    ``block << 24 | signed << 20 | integer << 16 | bits << 8 | uid``."""

    Bfloat16 = _dtype_code(0, 1, 0, 16, 0)
    Bool = _dtype_code(0, 0, 1, 1, 1)
    E2m1 = _dtype_code(1, 1, 0, 4, 2)
    E2m3 = _dtype_code(1, 1, 0, 6, 3)
    E3m2 = _dtype_code(1, 1, 0, 6, 4)
    E4m3 = _dtype_code(0, 1, 0, 8, 5)
    E5m2 = _dtype_code(0, 1, 0, 8, 6)
    Fp16 = _dtype_code(0, 1, 0, 16, 7)
    Fp32 = _dtype_code(0, 1, 0, 32, 8)
    Int8 = _dtype_code(0, 1, 1, 8, 9)
    Int32 = _dtype_code(0, 1, 1, 32, 10)
    Int64 = _dtype_code(0, 1, 1, 64, 11)
    MxE2m1 = _dtype_code(1, 1, 0, 4, 12)
    MxE4m3 = _dtype_code(1, 1, 0, 8, 13)
    MxInt4 = _dtype_code(1, 1, 1, 4, 14)
    UE8m0 = _dtype_code(0, 0, 0, 8, 15)
    UInt8 = _dtype_code(0, 0, 1, 8, 16)
    UInt16 = _dtype_code(0, 0, 1, 16, 17)
    UInt32 = _dtype_code(0, 0, 1, 32, 18)
    UInt64 = _dtype_code(0, 0, 1, 64, 19)
    UInt128 = _dtype_code(0, 0, 1, 128, 20)
    Void = _dtype_code(0, 1, 0, 0, 21)


def trtllm_gen_dtype_has_scale(dtype: DtypeTrtllmGen) -> bool:
    """True for the block-scaled element types (NVFP4, MXFP4, MXFP8, MXINT4)."""
    return dtype in (
        DtypeTrtllmGen.E2m1,
        DtypeTrtllmGen.MxE2m1,
        DtypeTrtllmGen.MxE4m3,
        DtypeTrtllmGen.MxInt4,
    )


def deduce_trtllm_gen_tensor_dtype(x: torch.Tensor, scale: torch.Tensor | None) -> DtypeTrtllmGen:
    """The trtllm-gen element type of an activation or weight tensor and its block scale:
    bfloat16 -> Bfloat16; float8_e4m3fn -> E4m3 without a scale, MxE4m3 with one; uint8 (two
    e2m1 codes per byte) -> E2m1 when there is one scale per 16 elements, else MxE2m1 (a scale
    is required). Other dtypes are a ``ValueError``."""
    if x.dtype == torch.bfloat16:
        return DtypeTrtllmGen.Bfloat16
    if x.dtype == torch.float8_e4m3fn:
        return DtypeTrtllmGen.E4m3 if scale is None else DtypeTrtllmGen.MxE4m3
    if x.dtype == torch.uint8:
        if scale is None:
            raise ValueError("scale: a block scale is required for packed e2m1 (uint8) input")
        elements = x.numel() * 2
        return DtypeTrtllmGen.E2m1 if scale.numel() == elements // 16 else DtypeTrtllmGen.MxE2m1
    raise ValueError(f"Unsupported trtllm-gen input tensor dtype {x.dtype}")


# ---- canonical-problem enums (mirror flashinfer_moe/types.h; internal, but ABI too) ----------


class ElemFormat(_NamedIntEnum):
    Float = 0
    E4M3 = 1
    E2M1Packed = 2
    E2M1Unpacked = 3
    Int4Packed = 4  # two signed int4 codes (two's complement) per byte, low nibble = even element


class ScaleFormat(_NamedIntEnum):
    Float = 0
    E4M3 = 1
    UE8M0 = 2


class ScaleLayout(_NamedIntEnum):
    Linear = 0
    Swizzled128x4 = 1


class ActQuant(_NamedIntEnum):
    None_ = 0
    Fp8Static = 1
    Fp8PerToken = 2
    Fp8PerGroup = 3
    MxFp8 = 4
    NvFp4 = 5


class GemmTactic(_NamedIntEnum):
    """Which compiled grouped-GEMM family runs a problem on CUDA (``MoeProblem.tactic``; the CPU
    executor ignores it). ``Auto`` lets the library pick by architecture and rows per expert;
    the others force one family, and a family that cannot run the problem (not compiled, wrong
    architecture, unsupported layout) is a ``ValueError`` naming ``tactic``. The environment
    variable ``FLASHINFER_MOE_GEMM_TACTIC`` overrides ``Auto`` (see ``runner.py``)."""

    Auto = 0
    Sm80Decode = 1  # portable mma.sync, small row tiles (few rows per expert)
    Sm80Prefill = 2  # portable mma.sync, large row tiles
    Sm90 = 3  # CUTLASS sm90 TMA + WGMMA pointer-array grouped GEMM
    AUTO = 0
    SM80_DECODE = 1
    SM80_PREFILL = 2
    SM90 = 3
