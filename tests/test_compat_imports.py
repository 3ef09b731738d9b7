"""The module paths that code written against flashinfer imports from: each import works and
each name is the very object this library defines (an alias, never a copy or a wrapper)."""

from __future__ import annotations

import importlib

import flashinfer
import flashinfer.fused_moe as fused_moe
import pytest
from flashinfer import autotuner
from flashinfer.fused_moe import api_cutlass, api_trtllm, enums, layout, prepare
from flashinfer.quantization import fp4, nvfp4_quantization_utils, sf_layout

_routing_mod = importlib.import_module("flashinfer.fused_moe.trtllm_gen_routing")
_bgmv_mod = importlib.import_module("flashinfer.fused_moe.bgmv_moe")
_lora_delta_mod = importlib.import_module("flashinfer.fused_moe.lora_delta")
_support_mod = importlib.import_module("flashinfer.fused_moe.trtllm_support")
_BGMV_NAMES = ("bgmv_moe", "bgmv_moe_shrink", "bgmv_moe_expand", "fill_w_ptr", "has_bgmv_moe")
_FP4_NAMES = (
    ("fp4_quantize", fp4.fp4_quantize),
    ("nvfp4_quantize", fp4.nvfp4_quantize),
    ("mxfp4_quantize", fp4.mxfp4_quantize),
    ("mxfp4_dequantize", fp4.mxfp4_dequantize),
    ("mxfp4_dequantize_host", fp4.mxfp4_dequantize_host),
    ("e2m1_and_ufp8sf_scale_to_float", fp4.e2m1_and_ufp8sf_scale_to_float),
    ("SfLayout", fp4.SfLayout),
    ("block_scale_interleave", sf_layout.block_scale_interleave),
    ("nvfp4_block_scale_interleave", sf_layout.block_scale_interleave),
    ("shuffle_matrix_a", layout.shuffle_matrix_a),
    ("shuffle_matrix_sf_a", layout.shuffle_matrix_sf_a),
)
_PREPARE_NAMES = (
    "interleave_moe_weights_for_sm90_mixed_gemm",
    "interleave_moe_scales_for_sm90_mixed_gemm",
)

# (module path, name, the defining object)
ALIASES = [
    ("flashinfer.fused_moe.core", "cutlass_fused_moe", api_cutlass.cutlass_fused_moe),
    (
        "flashinfer.fused_moe.core",
        "cutlass_fused_moe_workspace_size",
        api_cutlass.cutlass_fused_moe_workspace_size,
    ),
    *[
        ("flashinfer.fused_moe.core", name, getattr(api_trtllm, name))
        for name in (
            "trtllm_bf16_moe",
            "trtllm_bf16_routed_moe",
            "trtllm_fp8_per_tensor_scale_moe",
            "trtllm_fp8_per_tensor_scale_routed_moe",
            "trtllm_fp8_block_scale_moe",
            "trtllm_fp8_block_scale_routed_moe",
            "trtllm_fp4_block_scale_moe",
            "trtllm_fp4_block_scale_routed_moe",
        )
    ],
    *[
        ("flashinfer.fused_moe.core", name, getattr(layout, name))
        for name in (
            "_maybe_get_cached_w3_w1_permute_indices",
            "get_w2_permute_indices_with_cache",
            "get_reorder_rows_for_gated_act_gemm_row_indices",
            "reorder_rows_for_gated_act_gemm",
            "convert_to_block_layout",
            "get_shuffle_matrix_a_row_indices",
            "get_shuffle_matrix_sf_a_row_indices",
        )
    ],
    *[
        ("flashinfer.fused_moe.core", name, getattr(enums, name))
        for name in (
            "ActivationType",
            "DtypeTrtllmGen",
            "Fp8QuantizationType",
            "RoutingInputMode",
            "RoutingMethodType",
            "WeightLayout",
            "deduce_trtllm_gen_tensor_dtype",
        )
    ],
    (
        "flashinfer.utils",
        "get_shuffle_matrix_a_row_indices",
        layout.get_shuffle_matrix_a_row_indices,
    ),
    (
        "flashinfer.utils",
        "get_shuffle_matrix_sf_a_row_indices",
        layout.get_shuffle_matrix_sf_a_row_indices,
    ),
    *[("flashinfer.fused_moe.core", n, getattr(prepare, n)) for n in _PREPARE_NAMES],
    *[
        ("flashinfer.fused_moe", n, getattr(prepare, n))
        for n in (*_PREPARE_NAMES, "preprocess_moe_weights_for_sm90_mixed_gemm_humming")
    ],
    *[("flashinfer.fp4_quantization", n, obj) for n, obj in _FP4_NAMES],
    *[("flashinfer.quantization.fp4_quantization", n, obj) for n, obj in _FP4_NAMES],
    *[
        ("flashinfer.tllm_enums", n, getattr(enums, n))
        for n in ("ActivationType", "RoutingMethodType", "GatedActType", "is_gated_activation")
    ],
    ("flashinfer.tllm_enums", "SfLayout", fp4.SfLayout),
    *[
        (
            "flashinfer.quantization.nvfp4_quantization_utils",
            n,
            getattr(nvfp4_quantization_utils, n),
        )
        for n in ("nvfp4_e4m3_max", "make_nvfp4_global_scale", "NVFP44Over6Config")
    ],
    ("flashinfer", "autotune", autotuner.autotune),
    ("flashinfer.autotuner", "autotune", autotuner.autotune),
    ("flashinfer.fused_moe", "trtllm_gen_routing", _routing_mod.trtllm_gen_routing),
    ("flashinfer.fused_moe", "TrtllmGenRoutingResult", _routing_mod.TrtllmGenRoutingResult),
    *[("flashinfer.fused_moe", n, getattr(_bgmv_mod, n)) for n in _BGMV_NAMES],
    *[
        ("flashinfer.fused_moe", n, getattr(_lora_delta_mod, n))
        for n in ("bgmv_moe_gemm1_lora_delta", "bgmv_moe_gemm2_lora_delta")
    ],
    ("flashinfer.fused_moe", "is_trtllm_moe_supported", _support_mod.is_trtllm_moe_supported),
    ("flashinfer.fused_moe.core", "is_trtllm_moe_supported", _support_mod.is_trtllm_moe_supported),
]


@pytest.mark.parametrize("module,name,obj", ALIASES, ids=[f"{m}.{n}" for m, n, _ in ALIASES])
def test_alias_is_the_defining_object(module, name, obj):
    mod = importlib.import_module(module)
    assert getattr(mod, name) is obj
    # `from module import name` and the package attribute path agree
    namespace: dict = {}
    exec(f"from {module} import {name}", namespace)
    assert namespace[name] is obj


@pytest.mark.parametrize("module", sorted({m for m, _, _ in ALIASES}))
def test_module_all_resolves(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name


# The import statements of issue 13, spelled as code written against flashinfer spells them.
ISSUE_IMPORTS = """
from flashinfer.fused_moe.core import (
    _maybe_get_cached_w3_w1_permute_indices,
    get_w2_permute_indices_with_cache,
)
from flashinfer.fp4_quantization import fp4_quantize, mxfp4_quantize, nvfp4_quantize
from flashinfer.tllm_enums import (
    DEFAULT_SITU_BETA,
    DEFAULT_SITU_LINEAR_BETA,
    DEFAULT_SWIGLU_ALPHA,
    DEFAULT_SWIGLU_BETA,
    DEFAULT_SWIGLU_LIMIT,
)
from flashinfer.quantization.nvfp4_quantization_utils import (
    NVFP44Over6Config,
    make_nvfp4_global_scale,
    nvfp4_e4m3_max,
)
from flashinfer import autotune
from flashinfer.autotuner import autotune as autotune2
from flashinfer.fused_moe.trtllm_gen_routing import TrtllmGenRoutingResult
from flashinfer.fused_moe import (
    interleave_moe_scales_for_sm90_mixed_gemm,
    interleave_moe_weights_for_sm90_mixed_gemm,
    preprocess_moe_weights_for_sm90_mixed_gemm_humming,
    trtllm_gen_routing,
)
from flashinfer.fused_moe import (
    bgmv_moe,
    bgmv_moe_expand,
    bgmv_moe_gemm1_lora_delta,
    bgmv_moe_gemm2_lora_delta,
    bgmv_moe_shrink,
    fill_w_ptr,
    has_bgmv_moe,
)
from flashinfer.fused_moe.bgmv_moe import fill_w_ptr as fill_w_ptr2
from flashinfer.fused_moe.core import is_trtllm_moe_supported
"""


def test_issue_imports_run():
    namespace: dict = {}
    exec(ISSUE_IMPORTS, namespace)
    assert namespace["autotune"] is namespace["autotune2"]
    assert namespace["trtllm_gen_routing"] is _routing_mod.trtllm_gen_routing
    assert namespace["fill_w_ptr"] is namespace["fill_w_ptr2"]
    # the submodule path still imports although the package attribute is the function
    assert importlib.import_module("flashinfer.fused_moe.trtllm_gen_routing") is _routing_mod


def test_core_is_reachable_as_attributes():
    assert flashinfer.fused_moe.core is importlib.import_module("flashinfer.fused_moe.core")
    assert flashinfer.utils is importlib.import_module("flashinfer.utils")
    # the names shared with flashinfer.fused_moe are the same objects there
    for name in fused_moe.core.__all__:
        if hasattr(fused_moe, name):
            assert getattr(fused_moe, name) is getattr(fused_moe.core, name), name
