"""flashinfer.fused_moe: fused Mixture-of-Experts layers (routing, grouped GEMMs, combine).

Public entry points: ``cutlass_fused_moe`` (both call forms) and the ``trtllm_*`` family, the
enums, weight-layout utilities, routing alone (``route``) and quantization helpers. Every entry
point translates its arguments into one canonical ``MoeProblem`` (``problem.py``, numeric
contract in docs/semantics.md) that the native executors run; ``reference`` holds the float64
reference implementation of that problem, shipped so users can validate results too.
``core`` is flashinfer's module path for the same functions (``flashinfer.fused_moe.core``).
"""

from ..quantization import (
    SfLayout,
    block_scale_deinterleave,
    block_scale_interleave,
    dequantize_fp8,
    e2m1_and_ufp8sf_scale_to_float,
    fp4_quantize,
    mxfp4_dequantize,
    mxfp4_dequantize_host,
    mxfp4_quantize,
    mxfp8_dequantize_host,
    mxfp8_quantize,
    mxint4_dequantize,
    mxint4_quantize,
    nvfp4_block_scale_interleave,
    nvfp4_quantize,
    quantize_fp8_block,
    quantize_fp8_per_tensor,
    quantize_fp8_per_token,
    quantize_fp8_per_token_group,
)
from . import core, custom_ops, reference
from .api_cutlass import cutlass_fused_moe, cutlass_fused_moe_workspace_size
from .api_trtllm import (
    trtllm_bf16_moe,
    trtllm_bf16_routed_moe,
    trtllm_fp4_block_scale_moe,
    trtllm_fp4_block_scale_routed_moe,
    trtllm_fp8_block_scale_moe,
    trtllm_fp8_block_scale_routed_moe,
    trtllm_fp8_per_tensor_scale_moe,
    trtllm_fp8_per_tensor_scale_routed_moe,
)
from .bgmv_moe import (
    bgmv_moe,
    bgmv_moe_expand,
    bgmv_moe_shrink,
    fill_w_ptr,
    has_bgmv_moe,
)
from .enums import (
    ActivationType,
    Fp8QuantizationType,
    GatedActType,
    RoutingInputMode,
    RoutingMethodType,
    WeightLayout,
    is_gated_activation,
)
from .layout import (
    convert_from_block_layout,
    convert_to_block_layout,
    get_reorder_rows_for_gated_act_gemm_row_indices,
    get_shuffle_matrix_a_row_indices,
    get_shuffle_matrix_sf_a_row_indices,
    reorder_rows_for_gated_act_gemm,
    shuffle_matrix_a,
    shuffle_matrix_sf_a,
    undo_reorder_rows_for_gated_act_gemm,
    unshuffle_matrix_a,
    unshuffle_matrix_sf_a,
)
from .lora_delta import bgmv_moe_gemm1_lora_delta, bgmv_moe_gemm2_lora_delta
from .prepare import (
    deinterleave_moe_scales_for_sm90_mixed_gemm,
    deinterleave_moe_weights_for_sm90_mixed_gemm,
    interleave_moe_scales_for_sm90_mixed_gemm,
    interleave_moe_weights_for_sm90_mixed_gemm,
    preprocess_moe_weights_for_sm90_mixed_gemm_humming,
)
from .problem import ActQuantSpec, MoeProblem, QuantTensor, RoutingSpec
from .routing import pack_topk_ids, route, unpack_topk_ids
from .trtllm_gen_routing import TrtllmGenRoutingResult, trtllm_gen_routing
from .trtllm_mxint4 import trtllm_mxint4_block_scale_moe, trtllm_mxint4_block_scale_routed_moe
from .trtllm_support import is_trtllm_moe_supported

__all__ = [
    # enums
    "ActivationType",
    "Fp8QuantizationType",
    "GatedActType",
    "RoutingInputMode",
    "RoutingMethodType",
    "WeightLayout",
    "is_gated_activation",
    # fused MoE entry points
    "cutlass_fused_moe",
    "cutlass_fused_moe_workspace_size",
    "trtllm_bf16_moe",
    "trtllm_bf16_routed_moe",
    "trtllm_fp4_block_scale_moe",
    "trtllm_fp4_block_scale_routed_moe",
    "trtllm_fp8_block_scale_moe",
    "trtllm_fp8_block_scale_routed_moe",
    "trtllm_fp8_per_tensor_scale_moe",
    "trtllm_fp8_per_tensor_scale_routed_moe",
    "trtllm_mxint4_block_scale_moe",
    "trtllm_mxint4_block_scale_routed_moe",
    "is_trtllm_moe_supported",
    # multi-LoRA deltas
    "bgmv_moe",
    "bgmv_moe_expand",
    "bgmv_moe_gemm1_lora_delta",
    "bgmv_moe_gemm2_lora_delta",
    "bgmv_moe_shrink",
    "fill_w_ptr",
    "has_bgmv_moe",
    # canonical problem and reference
    "ActQuantSpec",
    "MoeProblem",
    "QuantTensor",
    "RoutingSpec",
    "core",
    "custom_ops",
    "reference",
    # routing
    "TrtllmGenRoutingResult",
    "pack_topk_ids",
    "route",
    "trtllm_gen_routing",
    "unpack_topk_ids",
    # weight layout
    "convert_from_block_layout",
    "convert_to_block_layout",
    "get_reorder_rows_for_gated_act_gemm_row_indices",
    "get_shuffle_matrix_a_row_indices",
    "get_shuffle_matrix_sf_a_row_indices",
    "reorder_rows_for_gated_act_gemm",
    "shuffle_matrix_a",
    "shuffle_matrix_sf_a",
    "undo_reorder_rows_for_gated_act_gemm",
    "unshuffle_matrix_a",
    "unshuffle_matrix_sf_a",
    # sm90 mixed-input weight preparation
    "deinterleave_moe_scales_for_sm90_mixed_gemm",
    "deinterleave_moe_weights_for_sm90_mixed_gemm",
    "interleave_moe_scales_for_sm90_mixed_gemm",
    "interleave_moe_weights_for_sm90_mixed_gemm",
    "preprocess_moe_weights_for_sm90_mixed_gemm_humming",
    # quantization
    "SfLayout",
    "block_scale_deinterleave",
    "block_scale_interleave",
    "dequantize_fp8",
    "e2m1_and_ufp8sf_scale_to_float",
    "fp4_quantize",
    "mxfp4_dequantize",
    "mxfp4_dequantize_host",
    "mxfp4_quantize",
    "mxfp8_dequantize_host",
    "mxfp8_quantize",
    "mxint4_dequantize",
    "mxint4_quantize",
    "nvfp4_block_scale_interleave",
    "nvfp4_quantize",
    "quantize_fp8_block",
    "quantize_fp8_per_tensor",
    "quantize_fp8_per_token",
    "quantize_fp8_per_token_group",
]
