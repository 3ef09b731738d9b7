"""The Python enums agree with the C++ ones (values are ABI) and carry the DESIGN 4.2 aliases."""

from __future__ import annotations

import pytest
from flashinfer import _C
from flashinfer.fused_moe import enums
from flashinfer.fused_moe.enums import (
    ActivationType,
    ActQuant,
    ElemFormat,
    Fp8QuantizationType,
    GatedActType,
    GemmTactic,
    RoutingMethodType,
    ScaleFormat,
    ScaleLayout,
    WeightLayout,
)

# (Python enum, nanobind enum, Python name -> C++ name where they differ)
MIRRORS = [
    (RoutingMethodType, _C.RoutingMethod, {}),
    (ActivationType, _C.Activation, {}),
    (ElemFormat, _C.ElemFormat, {}),
    (ScaleFormat, _C.ScaleFormat, {}),
    (ScaleLayout, _C.ScaleLayout, {}),
    (ActQuant, _C.ActQuant, {}),
    (GemmTactic, _C.GemmTactic, {}),
]


def _canonical_members(py_enum):
    """Members by their canonical (first-defined) name; aliases map to the same member."""
    return {m.name: m for m in py_enum}


@pytest.mark.parametrize(
    "py_enum,native_enum,renames", MIRRORS, ids=lambda x: getattr(x, "__name__", "")
)
def test_every_value_matches_native(py_enum, native_enum, renames):
    # nanobind enums are enum.Enum (not IntEnum): read .value
    native = {name: m.value for name, m in native_enum.__members__.items()}
    py = {renames.get(n, n): int(m) for n, m in _canonical_members(py_enum).items()}
    assert py == native, f"{py_enum.__name__}: python {py} != native {native}"


@pytest.mark.parametrize(
    "py_enum,native_enum,renames", MIRRORS, ids=lambda x: getattr(x, "__name__", "")
)
def test_native_enum_round_trips(py_enum, native_enum, renames):
    # problem.to_native() converts with native_enum(int(v)): every Python value must be accepted.
    for member in py_enum:
        assert native_enum(int(member)).value == int(member)


def test_routing_method_values_and_aliases():
    expected = dict(
        Default=0,
        Renormalize=1,
        DeepSeekV3=2,
        Llama4=3,
        RenormalizeNaive=4,
        TopK=5,
        SigmoidRenorm=6,
        MiniMax2=7,
        Sigmoid=8,
        TopKSigmoid=9,
        Unspecified=10,
        RoundRobin=11,
    )
    assert {m.name: int(m) for m in RoutingMethodType} == expected
    aliases = dict(
        DEFAULT=0,
        RENORMALIZE=1,
        DEEPSEEK_V3=2,
        LLAMA4=3,
        RENORMALIZE_NAIVE=4,
        TOPK=5,
        SIGMOID_RENORM=6,
        MINIMAX2=7,
        SIGMOID=8,
        TOPK_SIGMOID=9,
        UNSPECIFIED=10,
        ROUND_ROBIN=11,
    )
    for alias, value in aliases.items():
        assert getattr(RoutingMethodType, alias) is RoutingMethodType(value), alias
    # every member has an upper-case alias (DESIGN 4.2)
    upper_values = {int(RoutingMethodType[a]) for a in RoutingMethodType.__members__ if a.isupper()}
    assert upper_values == set(expected.values())


def test_gated_act_type_values_and_aliases():
    assert int(GatedActType.SwiGlu) == 0 and int(GatedActType.GeGlu) == 1
    assert GatedActType.SILU is GatedActType.SwiGlu
    assert GatedActType.GELU is GatedActType.GeGlu


def test_activation_type_values_and_aliases():
    expected = dict(
        Gelu=0,
        Relu=1,
        Silu=2,
        Swiglu=3,
        Geglu=4,
        SwigluBias=5,
        Relu2=6,
        SwigluStep=7,
        GegluTanh=8,
        Identity=9,
        Situ=10,
        InvalidType=11,
    )
    assert {m.name: int(m) for m in ActivationType} == expected
    upper_values = {int(ActivationType[a]) for a in ActivationType.__members__ if a.isupper()}
    assert upper_values == set(expected.values())


def test_is_gated_matches_design():
    gated = {
        ActivationType.Swiglu,
        ActivationType.Geglu,
        ActivationType.SwigluBias,
        ActivationType.SwigluStep,
        ActivationType.GegluTanh,
        ActivationType.Situ,
    }
    for a in ActivationType:
        assert a.is_gated == (a in gated), a
        assert enums.is_gated_activation(int(a)) == (a in gated), a
    with pytest.raises(ValueError):
        enums.is_gated_activation(99)


def test_other_enums():
    assert [(m.name, int(m)) for m in WeightLayout] == [
        ("MajorK", 0),
        ("MajorMn", 1),
        ("BlockMajorK", 2),
    ]
    assert [(m.name, int(m)) for m in Fp8QuantizationType] == [
        ("NoneFp8", 0),
        ("DeepSeekFp8", 1),
        ("MxFp8", 2),
    ]


def test_repr_round_trips():
    # DESIGN: configs round-trip through eval of the repr.
    for enum_cls in (
        RoutingMethodType,
        ActivationType,
        GatedActType,
        WeightLayout,
        Fp8QuantizationType,
    ):
        for m in enum_cls:
            assert eval(repr(m), {enum_cls.__name__: enum_cls}) is m
