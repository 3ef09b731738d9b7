"""The module paths that code written against flashinfer imports from: each import works and
each name is the very object this library defines (an alias, never a copy or a wrapper)."""

from __future__ import annotations

import importlib

import flashinfer
import flashinfer.fused_moe as fused_moe
import pytest
from flashinfer.fused_moe import api_cutlass, api_trtllm, enums, layout

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


def test_core_is_reachable_as_attributes():
    assert flashinfer.fused_moe.core is importlib.import_module("flashinfer.fused_moe.core")
    assert flashinfer.utils is importlib.import_module("flashinfer.utils")
    # the names shared with flashinfer.fused_moe are the same objects there
    for name in fused_moe.core.__all__:
        if hasattr(fused_moe, name):
            assert getattr(fused_moe, name) is getattr(fused_moe.core, name), name
