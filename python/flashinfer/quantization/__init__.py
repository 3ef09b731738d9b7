"""Quantization helpers (pure torch, any device), each with its dequantizer.

fp8 per tensor / token / token group / weight block (`fp8`), NVFP4 and MXFP4 (`fp4`), MXFP8
(`mx`), MXINT4 (`mxint4`), the 128x4 swizzled scale layout (`sf_layout`) and the element codecs
(`codecs`).
All scales follow docs/semantics.md; see each module for the exact formulas.
"""

from .codecs import (
    e2m1_decode,
    e2m1_encode,
    e4m3_decode,
    e4m3_encode,
    int4_decode,
    pack_e2m1,
    ue8m0_decode,
    unpack_e2m1,
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
from .fp8 import (
    dequantize_fp8,
    quantize_fp8_block,
    quantize_fp8_per_tensor,
    quantize_fp8_per_token,
    quantize_fp8_per_token_group,
)
from .mx import mxfp8_dequantize_host, mxfp8_quantize
from .mxint4 import mxint4_dequantize, mxint4_quantize
from .sf_layout import (
    block_scale_deinterleave,
    block_scale_interleave,
    nvfp4_block_scale_interleave,
)

__all__ = [
    "SfLayout",
    "block_scale_deinterleave",
    "block_scale_interleave",
    "dequantize_fp8",
    "e2m1_and_ufp8sf_scale_to_float",
    "e2m1_decode",
    "e2m1_encode",
    "e4m3_decode",
    "e4m3_encode",
    "fp4_quantize",
    "int4_decode",
    "mxfp4_dequantize",
    "mxfp4_dequantize_host",
    "mxfp4_quantize",
    "mxfp8_dequantize_host",
    "mxfp8_quantize",
    "mxint4_dequantize",
    "mxint4_quantize",
    "nvfp4_block_scale_interleave",
    "nvfp4_quantize",
    "pack_e2m1",
    "quantize_fp8_block",
    "quantize_fp8_per_tensor",
    "quantize_fp8_per_token",
    "quantize_fp8_per_token_group",
    "ue8m0_decode",
    "unpack_e2m1",
]
