"""Model presets, token counts and datasheet rates for the benchmark CLI (``bench.py``).

A preset is one MoE layer of a public model: expert count, top-k, hidden and (per-expert)
intermediate size, the gated activation, the routing the model uses and the weight format:
bf16 (``PRESETS``, the default table), FP8 e4m3 (``FP8_PRESETS``, names ending in "-fp8":
128x128 block scales through ``trtllm_fp8_block_scale_moe``, or per-tensor scales through
``trtllm_fp8_per_tensor_scale_moe``) or FP4 e2m1 weights with bf16 activations
(``FP4_PRESETS``, names ending in "-mxfp4" / "-nvfp4", through ``trtllm_fp4_block_scale_moe``;
bench_fp4.py). Without a GPU the benchmark runs "CPU smoke" versions of the
presets (``cpu_smoke``): the same routing and activation on experts scaled down so that a run of
every preset takes about a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .enums import ActivationType, RoutingMethodType

DEFAULT_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
# Weight formats of a preset (Preset.quant), and the --dtype choices that select them.
QUANTS = ("bf16", "fp8_block", "fp8_tensor", "mxfp4", "nvfp4")
FP8_QUANTS = ("fp8_block", "fp8_tensor")
FP4_QUANTS = ("mxfp4", "nvfp4")
DTYPES = {"bf16": ("bf16",), "fp8": FP8_QUANTS, "fp4": FP4_QUANTS, "all": QUANTS}
# Elements per scale of the FP4 formats (MXFP4: ue8m0 per 32; NVFP4: e4m3 per 16).
FP4_BLOCK = {"mxfp4": 32, "nvfp4": 16}
FP8_BLOCK = 128  # DeepSeekFp8: 128x128 weight blocks, 1x128 activation groups
CPU_SMOKE_TOKENS = (1, 4, 16, 64, 256)


@dataclass(frozen=True)
class Preset:
    name: str
    num_experts: int
    top_k: int
    hidden_size: int
    intermediate_size: int
    routing_method: RoutingMethodType
    # Extra keywords of ``route`` (n_group, topk_group, routed_scaling_factor).
    routing_kwargs: dict[str, float] = field(default_factory=dict)
    activation: ActivationType = ActivationType.Swiglu
    # SwigluBias parameters (gpt-oss); None = plain SwiGLU.
    swiglu: tuple[float, float, float] | None = None  # (alpha, beta, limit)
    gated: bool = True
    dtype: str = "bfloat16"
    note: str = ""
    # Weight format, one of QUANTS: "bf16", "fp8_block" (DeepSeekFp8), "fp8_tensor", "mxfp4"
    # or "nvfp4" (W4A16).
    quant: str = "bf16"
    # fc1 / fc2 biases in the layer (gpt-oss has them; the FP4 layer times them).
    gemm_biases: bool = False

    @property
    def is_fp8(self) -> bool:
        return self.quant in FP8_QUANTS

    @property
    def is_fp4(self) -> bool:
        return self.quant in FP4_QUANTS

    def gemm1_rows(self) -> int:
        return 2 * self.intermediate_size if self.gated else self.intermediate_size

    def expert_weight_elems(self) -> int:
        """Elements of one expert's GEMM1 + GEMM2 weights."""
        return (self.gemm1_rows() + self.intermediate_size) * self.hidden_size

    def expert_weight_bytes(self) -> int:
        """Bytes one expert's weights occupy in the preset's format, scales included: the bytes
        a GEMM must read for each expert the routing touches (the floor's memory term)."""
        if self.quant == "bf16":
            return 2 * self.expert_weight_elems()
        if self.quant == "fp8_tensor":
            return self.expert_weight_elems() + 3 * 4  # three fp32 per-expert scalars
        if self.is_fp4:  # half a byte per code, one scale byte per block: 4.25 / 4.5 bits
            elems = self.expert_weight_elems()
            return elems // 2 + elems // FP4_BLOCK[self.quant]
        blocks = lambda n: -(-n // FP8_BLOCK)  # noqa: E731
        h = blocks(self.hidden_size)
        scales = blocks(self.gemm1_rows()) * h + h * blocks(self.intermediate_size)
        return self.expert_weight_elems() + 4 * scales

    def flops(self, num_tokens: int) -> float:
        """Dense GEMM FLOPs of the layer: every (token, slot) runs both expert GEMMs."""
        return 2.0 * num_tokens * self.top_k * self.expert_weight_elems()


PRESETS = (
    Preset("Mixtral-8x7B", 8, 2, 4096, 14336, RoutingMethodType.Renormalize),
    Preset("Qwen3-30B-A3B", 128, 8, 2048, 768, RoutingMethodType.Renormalize),
    Preset("Qwen3-235B-A22B", 128, 8, 4096, 1536, RoutingMethodType.Renormalize),
    Preset(
        "DeepSeek-V3",
        256,
        8,
        7168,
        2048,
        RoutingMethodType.DeepSeekV3,
        routing_kwargs={"n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5},
        note="routed experts only (no shared expert)",
    ),
    Preset(
        "gpt-oss-120b",
        128,
        4,
        2880,
        2880,
        RoutingMethodType.Renormalize,
        activation=ActivationType.SwigluBias,
        swiglu=(1.702, 1.0, 7.0),
        note="clamped SwiGLU; GEMM biases left out",
    ),
    Preset(
        "Llama-4-Scout",
        16,
        1,
        5120,
        8192,
        RoutingMethodType.Llama4,
        note="routed experts only (no shared expert)",
    ),
)


def _fp8(p: Preset, quant: str, **changes) -> Preset:
    return dataclasses.replace(
        p, name=p.name + "-fp8", quant=quant, dtype="float8_e4m3fn", **changes
    )


_BF16 = {p.name: p for p in PRESETS}
FP8_PRESETS = (
    _fp8(_BF16["DeepSeek-V3"], "fp8_block", note="block FP8 (DeepSeekFp8); routed experts only"),
    _fp8(_BF16["Qwen3-30B-A3B"], "fp8_block", note="block FP8 (DeepSeekFp8)"),
    Preset(
        "Qwen3.5-35B-A3B-fp8",
        256,
        8,
        2048,
        512,
        RoutingMethodType.Renormalize,
        quant="fp8_block",
        dtype="float8_e4m3fn",
        note="Qwen3.5-35B-A3B-shaped routed experts; block FP8 (DeepSeekFp8)",
    ),
    _fp8(_BF16["Mixtral-8x7B"], "fp8_tensor", note="per-tensor FP8 (static activation scales)"),
)
FP4_PRESETS = (
    dataclasses.replace(
        _BF16["gpt-oss-120b"], name="gpt-oss-120b-mxfp4", quant="mxfp4", dtype="mxfp4",
        gemm_biases=True, note="MXFP4 weights x bf16 activations (W4A16); biases, clamped SwiGLU",
    ),
    dataclasses.replace(
        _BF16["Qwen3-235B-A22B"], name="Qwen3-235B-A22B-nvfp4", quant="nvfp4", dtype="nvfp4",
        note="NVFP4 weights (e4m3 scales per 16) x bf16 activations (W4A16), seed pair form",
    ),
)  # fmt: skip
ALL_PRESETS = PRESETS + FP8_PRESETS + FP4_PRESETS
_SUFFIXES = ("-fp8", "-mxfp4", "-nvfp4")


def model_name(p: Preset) -> str:
    """The preset's model without its format suffix ("Qwen3-30B-A3B-fp8" -> "Qwen3-30B-A3B")."""
    for suffix in _SUFFIXES:
        if p.name.endswith(suffix):
            return p.name[: -len(suffix)]
    return p.name


def find_presets(names: str | None, dtype: str = "bf16"):
    """Presets by comma-separated names (case-insensitive). ``dtype`` (a DTYPES key) picks the
    pool: every preset of those formats when ``names`` is empty, and the presets a name prefix
    may match (so "qwen3-30b" is the bf16 preset, with dtype "fp8" the FP8 one, with "all"
    both); a full name matches in every pool."""
    pool = [p for p in ALL_PRESETS if p.quant in DTYPES[dtype]]
    if not names:
        return pool
    chosen = []
    for raw in names.split(","):
        key = raw.strip().lower()
        if not key:
            continue
        exact = [p for p in ALL_PRESETS if p.name.lower() == key]
        hits = exact or [p for p in pool if p.name.lower().startswith(key)]
        # One model in several formats (dtype "all": "qwen3-30b" is the bf16 and the FP8 preset).
        if len({model_name(p) for p in hits}) != 1:
            known = ", ".join(p.name for p in ALL_PRESETS)
            raise ValueError(f"--presets: '{raw}' matches {len(hits)} presets; known: {known}")
        chosen.extend(hits)
    return chosen


def cpu_smoke(p: Preset) -> Preset:
    """The preset shrunk for the CPU executor: at most 32 experts (k and the routing kept valid),
    hidden and intermediate sizes divided by 32 (multiples of 16; of 128 for block FP8, whose
    scales cover 128 columns; of 32 for FP4, whose MXFP4 scales cover 32)."""
    experts = min(p.num_experts, 32)
    kwargs = dict(p.routing_kwargs)
    if "n_group" in kwargs:  # keep 8 groups, and enough experts in the kept groups for top_k
        experts = max(experts, kwargs["n_group"] * max(1, -(-p.top_k // kwargs["topk_group"])))
    step = FP8_BLOCK if p.quant == "fp8_block" else (32 if p.is_fp4 else 16)
    shrink = lambda n: max(step, n // 32 // step * step)  # noqa: E731
    return dataclasses.replace(
        p,
        num_experts=experts,
        hidden_size=shrink(p.hidden_size),
        intermediate_size=shrink(p.intermediate_size),
        routing_kwargs=kwargs,
        note=("CPU smoke shape; " + p.note).rstrip("; "),
    )


# Datasheet rates (dense, no sparsity): memory bandwidth in bytes/s and bf16 tensor FLOP/s.
# Matched against torch.cuda.get_device_name() in this order (H200 before H100).
DATASHEET = (
    ("H200", 4.8e12, 989e12),
    ("H100", 3.35e12, 989e12),
    ("A100", 2.04e12, 312e12),
)


# Datasheet dense FP8 (e4m3) tensor FLOP/s by DATASHEET label; a card without FP8 tensor cores
# (A100) is absent, and its FP8 points get no floor.
FP8_DATASHEET_FLOPS = {"H200": 1979e12, "H100": 1979e12}


def datasheet_for(device_name: str):
    """(label, bytes/s, bf16 FLOP/s) for a card name, or None when the card is not listed."""
    for label, bandwidth, flops in DATASHEET:
        if label.lower() in device_name.lower():
            return label, bandwidth, flops
    return None


def dense_flops_for(sheet, quant: str) -> float | None:
    """The datasheet dense tensor rate of a weight format on the card of ``sheet`` (a
    ``datasheet_for`` result), or None when the card or the format's rate is not listed."""
    if sheet is None:
        return None
    # W4A16 runs bf16 MMAs on the widened codes: the bf16 rate bounds it.
    if quant == "bf16" or quant in FP4_QUANTS:
        return sheet[2]
    return FP8_DATASHEET_FLOPS.get(sheet[0])
