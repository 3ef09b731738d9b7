"""flashinfer.tllm_enums: the same enum objects as flashinfer.fused_moe, flashinfer's constants,
the trtllm-gen dtype codes and how a tensor's code is deduced."""

from __future__ import annotations

import inspect

import flashinfer
import flashinfer.fused_moe as fused_moe
import pytest
import torch
from flashinfer import tllm_enums
from flashinfer.quantization import SfLayout

SHARED = [
    "ActivationType",
    "Fp8QuantizationType",
    "GatedActType",
    "RoutingInputMode",
    "RoutingMethodType",
    "WeightLayout",
    "is_gated_activation",
]


@pytest.mark.parametrize("name", SHARED)
def test_same_objects_as_fused_moe(name):
    assert getattr(tllm_enums, name) is getattr(fused_moe, name)


def test_sf_layout_and_top_level_names_are_the_same_objects():
    assert tllm_enums.SfLayout is SfLayout
    for name in ("ActivationType", "RoutingMethodType", "SfLayout", "is_gated_activation"):
        assert getattr(flashinfer, name) is getattr(tllm_enums, name)


def test_every_public_name_resolves():
    for name in tllm_enums.__all__:
        assert getattr(tllm_enums, name) is not None


def test_activation_constants():
    assert tllm_enums.DEFAULT_SWIGLU_ALPHA == 1.0
    assert tllm_enums.DEFAULT_SWIGLU_BETA == 0.0
    assert tllm_enums.DEFAULT_SWIGLU_LIMIT == torch.finfo(torch.float32).max
    assert tllm_enums.DEFAULT_SITU_BETA == 4.0
    assert tllm_enums.DEFAULT_SITU_LINEAR_BETA == 25.0


def test_is_gated_activation_exact_set():
    A = tllm_enums.ActivationType
    gated = {A.Swiglu, A.Geglu, A.SwigluBias, A.SwigluStep, A.GegluTanh, A.Situ}
    for member in A:
        assert tllm_enums.is_gated_activation(member) == (member in gated), member
        assert tllm_enums.is_gated_activation(int(member)) == (member in gated), member
        assert member.is_gated == (member in gated)


def test_normalize_activation_type():
    A = tllm_enums.ActivationType
    assert tllm_enums.normalize_activation_type(3) is A.Swiglu
    assert tllm_enums.normalize_activation_type(A.Relu2) is A.Relu2
    with pytest.raises(ValueError, match="Unsupported activation_type 99"):
        tllm_enums.normalize_activation_type(99)


def test_routing_input_mode_values():
    M = tllm_enums.RoutingInputMode
    assert {m.name: int(m) for m in M} == {
        "FromLogits": 0,
        "PackedPrecomputed": 1,
        "UnpackedPrecomputed": 2,
    }


def test_sf_layout_values():
    assert {m.name: int(m) for m in SfLayout} == {
        "layout_128x4": 0,
        "layout_8x4": 1,
        "layout_linear": 2,
    }


# (block-format bit, signed, integer, bits, uid) per member, from the reference's trtllm-gen table.
DTYPE_FIELDS = {
    "Bfloat16": (0, 1, 0, 16, 0),
    "Bool": (0, 0, 1, 1, 1),
    "E2m1": (1, 1, 0, 4, 2),
    "E2m3": (1, 1, 0, 6, 3),
    "E3m2": (1, 1, 0, 6, 4),
    "E4m3": (0, 1, 0, 8, 5),
    "E5m2": (0, 1, 0, 8, 6),
    "Fp16": (0, 1, 0, 16, 7),
    "Fp32": (0, 1, 0, 32, 8),
    "Int8": (0, 1, 1, 8, 9),
    "Int32": (0, 1, 1, 32, 10),
    "Int64": (0, 1, 1, 64, 11),
    "MxE2m1": (1, 1, 0, 4, 12),
    "MxE4m3": (1, 1, 0, 8, 13),
    "MxInt4": (1, 1, 1, 4, 14),
    "UE8m0": (0, 0, 0, 8, 15),
    "UInt8": (0, 0, 1, 8, 16),
    "UInt16": (0, 0, 1, 16, 17),
    "UInt32": (0, 0, 1, 32, 18),
    "UInt64": (0, 0, 1, 64, 19),
    "UInt128": (0, 0, 1, 128, 20),
    "Void": (0, 1, 0, 0, 21),
}


def test_dtype_trtllm_gen_codes_decode_to_their_fields():
    D = tllm_enums.DtypeTrtllmGen
    assert [m.name for m in D] == list(DTYPE_FIELDS)
    for m in D:
        v = int(m)
        fields = ((v >> 24) & 0xFF, (v >> 20) & 0xF, (v >> 16) & 0xF, (v >> 8) & 0xFF, v & 0xFF)
        assert fields == DTYPE_FIELDS[m.name], m
    assert int(D.E2m1) == 0x01100402  # one hand-computed code
    assert tllm_enums.trtllm_gen_dtype_has_scale(D.E2m1)
    assert tllm_enums.trtllm_gen_dtype_has_scale(D.MxInt4)
    assert not tllm_enums.trtllm_gen_dtype_has_scale(D.E4m3)


def test_deduce_trtllm_gen_tensor_dtype(gen):
    D = tllm_enums.DtypeTrtllmGen
    deduce = tllm_enums.deduce_trtllm_gen_tensor_dtype
    m, k = 3, 64
    x = torch.randn(m, k, generator=gen)
    assert deduce(x.bfloat16(), None) is D.Bfloat16
    assert deduce(x.to(torch.float8_e4m3fn), None) is D.E4m3
    assert deduce(x.to(torch.float8_e4m3fn), torch.ones(m, k // 32, dtype=torch.uint8)) is D.MxE4m3
    packed = torch.randint(0, 256, (m, k // 2), dtype=torch.uint8, generator=gen)
    assert deduce(packed, torch.ones(m, k // 16, dtype=torch.uint8)) is D.E2m1
    assert deduce(packed, torch.ones(m, k // 32, dtype=torch.uint8)) is D.MxE2m1
    with pytest.raises(ValueError):
        deduce(packed, None)
    with pytest.raises(ValueError):
        deduce(x, None)  # float32 is not a trtllm-gen operand


def test_signatures():
    assert list(inspect.signature(tllm_enums.deduce_trtllm_gen_tensor_dtype).parameters) == [
        "x",
        "scale",
    ]
    assert list(inspect.signature(tllm_enums.is_gated_activation).parameters) == ["activation_type"]


def test_reprs_are_qualified():
    assert (
        repr(tllm_enums.RoutingInputMode.PackedPrecomputed) == "RoutingInputMode.PackedPrecomputed"
    )
    assert repr(tllm_enums.DtypeTrtllmGen.MxE2m1) == "DtypeTrtllmGen.MxE2m1"
