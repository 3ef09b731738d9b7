"""``flashinfer.quantization.fp4_quantization``: flashinfer's module path of its FP4
quantization helpers (also importable as ``flashinfer.fp4_quantization``).

Every name is the same object as the one ``flashinfer.quantization`` / ``flashinfer.fused_moe``
exports: the quantizers and dequantizers are defined in ``quantization/fp4.py``, the 128x4
scale layout in ``quantization/sf_layout.py``, and the row shuffles in ``fused_moe/layout.py``.
Not here (not implemented): ``nvfp4_batched_quantize``, ``scaled_fp4_grouped_quantize``,
``silu_and_mul_scaled_nvfp4_experts_quantize``, the NVFP4 KV-cache helpers and flashinfer's JIT
module getters.
"""

from ..fused_moe.layout import (
    get_shuffle_matrix_a_row_indices,
    get_shuffle_matrix_sf_a_row_indices,
    shuffle_matrix_a,
    shuffle_matrix_sf_a,
)
from .fp4 import (
    SfLayout,
    e2m1_and_ufp8sf_scale_to_float,
    fp4_quantize,
    mxfp4_dequantize,
    mxfp4_dequantize_host,
    mxfp4_quantize,
    nvfp4_quantize,
)
from .sf_layout import block_scale_interleave, nvfp4_block_scale_interleave

__all__ = [
    "SfLayout",
    "block_scale_interleave",
    "e2m1_and_ufp8sf_scale_to_float",
    "fp4_quantize",
    "get_shuffle_matrix_a_row_indices",
    "get_shuffle_matrix_sf_a_row_indices",
    "mxfp4_dequantize",
    "mxfp4_dequantize_host",
    "mxfp4_quantize",
    "nvfp4_block_scale_interleave",
    "nvfp4_quantize",
    "shuffle_matrix_a",
    "shuffle_matrix_sf_a",
]
