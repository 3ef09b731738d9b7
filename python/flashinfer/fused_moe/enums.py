"""Enums of the fused MoE API. Values are ABI shared with the C++ core (flashinfer_moe/types.h);
``tests/test_enums.py`` checks both sides agree. Every member has an upper-case alias."""

from __future__ import annotations

from enum import IntEnum


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


def is_gated_activation(activation: int) -> bool:
    return ActivationType(activation).is_gated


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


# ---- canonical-problem enums (mirror flashinfer_moe/types.h; internal, but ABI too) ----------


class ElemFormat(_NamedIntEnum):
    Float = 0
    E4M3 = 1
    E2M1Packed = 2
    E2M1Unpacked = 3


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
