"""flashinfer-moe: fused Mixture-of-Experts kernels behind the ``flashinfer.fused_moe`` API.

``tllm_enums`` (and the other modules named after flashinfer's paths) exist so code written
against flashinfer imports unchanged; their names are the same objects as these.

The compiled core (``flashinfer._C``) is imported on first use by the functions that run a
problem, so ``import flashinfer`` works (and the pure-Python helpers and the float64 reference
are usable) even where the extension is missing; a call that needs it then fails with the
import error.
"""

__version__ = "0.1.0"

from . import autotuner, fp4_quantization, fused_moe, quantization, tllm_enums, utils
from .autotuner import autotune
from .fused_moe import (
    ActivationType,
    Fp8QuantizationType,
    GatedActType,
    RoutingMethodType,
    WeightLayout,
    cutlass_fused_moe,
    is_gated_activation,
    reorder_rows_for_gated_act_gemm,
    shuffle_matrix_a,
    shuffle_matrix_sf_a,
    trtllm_bf16_moe,
    trtllm_bf16_routed_moe,
    trtllm_fp4_block_scale_moe,
    trtllm_fp4_block_scale_routed_moe,
    trtllm_fp8_block_scale_moe,
    trtllm_fp8_block_scale_routed_moe,
    trtllm_fp8_per_tensor_scale_moe,
    trtllm_fp8_per_tensor_scale_routed_moe,
)
from .quantization import (
    SfLayout,
    block_scale_interleave,
    e2m1_and_ufp8sf_scale_to_float,
    fp4_quantize,
    mxfp4_dequantize,
    mxfp4_dequantize_host,
    mxfp4_quantize,
    mxfp8_dequantize_host,
    mxfp8_quantize,
    nvfp4_block_scale_interleave,
    nvfp4_quantize,
)

__all__ = [
    "__version__",
    "fused_moe",
    "quantization",
    "autotune",
    "autotuner",
    "ActivationType",
    "Fp8QuantizationType",
    "GatedActType",
    "RoutingMethodType",
    "WeightLayout",
    "SfLayout",
    "block_scale_interleave",
    "cutlass_fused_moe",
    "e2m1_and_ufp8sf_scale_to_float",
    "fp4_quantize",
    "is_gated_activation",
    "mxfp4_dequantize",
    "mxfp4_dequantize_host",
    "mxfp4_quantize",
    "mxfp8_dequantize_host",
    "mxfp8_quantize",
    "nvfp4_block_scale_interleave",
    "nvfp4_quantize",
    "reorder_rows_for_gated_act_gemm",
    "shuffle_matrix_a",
    "shuffle_matrix_sf_a",
    "trtllm_bf16_moe",
    "trtllm_bf16_routed_moe",
    "trtllm_fp4_block_scale_moe",
    "trtllm_fp4_block_scale_routed_moe",
    "trtllm_fp8_block_scale_moe",
    "trtllm_fp8_block_scale_routed_moe",
    "trtllm_fp8_per_tensor_scale_moe",
    "trtllm_fp8_per_tensor_scale_routed_moe",
    "fp4_quantization",
    "tllm_enums",
    "utils",
]
