"""``flashinfer.tllm_enums``: the module path where flashinfer keeps its kernel-ABI enums.

Code written against flashinfer imports the enums from here; every name is the same object as
the one ``flashinfer.fused_moe`` (or ``flashinfer.quantization`` for ``SfLayout``) exports, so
values, aliases and ``is`` comparisons agree whichever path a caller used. The enums are defined
in ``flashinfer/fused_moe/enums.py``.
"""

from .fused_moe.enums import (
    DEFAULT_SITU_BETA,
    DEFAULT_SITU_LINEAR_BETA,
    DEFAULT_SWIGLU_ALPHA,
    DEFAULT_SWIGLU_BETA,
    DEFAULT_SWIGLU_LIMIT,
    ActivationType,
    DtypeTrtllmGen,
    Fp8QuantizationType,
    GatedActType,
    RoutingInputMode,
    RoutingMethodType,
    WeightLayout,
    deduce_trtllm_gen_tensor_dtype,
    is_gated_activation,
    normalize_activation_type,
    trtllm_gen_dtype_has_scale,
)
from .quantization.fp4 import SfLayout

__all__ = [
    "DEFAULT_SITU_BETA",
    "DEFAULT_SITU_LINEAR_BETA",
    "DEFAULT_SWIGLU_ALPHA",
    "DEFAULT_SWIGLU_BETA",
    "DEFAULT_SWIGLU_LIMIT",
    "ActivationType",
    "DtypeTrtllmGen",
    "Fp8QuantizationType",
    "GatedActType",
    "RoutingInputMode",
    "RoutingMethodType",
    "SfLayout",
    "WeightLayout",
    "deduce_trtllm_gen_tensor_dtype",
    "is_gated_activation",
    "normalize_activation_type",
    "trtllm_gen_dtype_has_scale",
]
