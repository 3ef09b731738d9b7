"""``flashinfer.fused_moe.core``: the module path of flashinfer's MoE functions.

flashinfer defines its flat MoE API in ``fused_moe/core.py``, and engines import from there
directly (vLLM imports ``get_w2_permute_indices_with_cache`` and
``_maybe_get_cached_w3_w1_permute_indices`` to prepare shuffled weights). This module re-exports
the names of that file that this library implements; each is the same object as the one
``flashinfer.fused_moe`` exports (defined in ``api_cutlass.py``, ``api_trtllm.py``, ``enums.py``,
``layout.py``, ``prepare.py`` and ``trtllm_mxint4.py``).

``is_trtllm_moe_supported`` answers for this library's trtllm functions (``trtllm_support.py``).
Not here: the JIT module builders (``gen_*_module``, ``get_cutlass_fused_moe_module``), which
describe flashinfer's build, not this library.
"""

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
from .enums import (
    ActivationType,
    DtypeTrtllmGen,
    Fp8QuantizationType,
    GatedActType,
    RoutingInputMode,
    RoutingMethodType,
    WeightLayout,
    deduce_trtllm_gen_tensor_dtype,
)
from .layout import (
    _maybe_get_cached_w3_w1_permute_indices,
    convert_to_block_layout,
    get_reorder_rows_for_gated_act_gemm_row_indices,
    get_shuffle_matrix_a_row_indices,
    get_shuffle_matrix_sf_a_row_indices,
    get_w2_permute_indices_with_cache,
    reorder_rows_for_gated_act_gemm,
)
from .prepare import (
    interleave_moe_scales_for_sm90_mixed_gemm,
    interleave_moe_weights_for_sm90_mixed_gemm,
)
from .trtllm_mxint4 import trtllm_mxint4_block_scale_moe, trtllm_mxint4_block_scale_routed_moe
from .trtllm_support import is_trtllm_moe_supported

__all__ = [
    "ActivationType",
    "DtypeTrtllmGen",
    "Fp8QuantizationType",
    "GatedActType",
    "RoutingInputMode",
    "RoutingMethodType",
    "WeightLayout",
    "_maybe_get_cached_w3_w1_permute_indices",
    "convert_to_block_layout",
    "cutlass_fused_moe",
    "cutlass_fused_moe_workspace_size",
    "deduce_trtllm_gen_tensor_dtype",
    "get_reorder_rows_for_gated_act_gemm_row_indices",
    "get_shuffle_matrix_a_row_indices",
    "get_shuffle_matrix_sf_a_row_indices",
    "get_w2_permute_indices_with_cache",
    "interleave_moe_scales_for_sm90_mixed_gemm",
    "interleave_moe_weights_for_sm90_mixed_gemm",
    "is_trtllm_moe_supported",
    "reorder_rows_for_gated_act_gemm",
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
]
