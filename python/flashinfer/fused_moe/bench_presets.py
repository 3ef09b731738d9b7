"""Model presets, token counts and datasheet rates for the benchmark CLI (``bench.py``).

A preset is one MoE layer of a public model: expert count, top-k, hidden and (per-expert)
intermediate size, the gated activation and the routing the model uses, all in bf16. Without a
GPU the benchmark runs "CPU smoke" versions of the presets (``cpu_smoke``): the same routing and
activation on experts scaled down so that a run of every preset takes about a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .enums import ActivationType, RoutingMethodType

DEFAULT_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
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

    def gemm1_rows(self) -> int:
        return 2 * self.intermediate_size if self.gated else self.intermediate_size

    def expert_weight_elems(self) -> int:
        """Elements of one expert's GEMM1 + GEMM2 weights."""
        return (self.gemm1_rows() + self.intermediate_size) * self.hidden_size

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


def find_presets(names: str | None):
    """Presets by comma-separated names (case-insensitive, a unique prefix is enough)."""
    if not names:
        return list(PRESETS)
    chosen = []
    for raw in names.split(","):
        key = raw.strip().lower()
        if not key:
            continue
        exact = [p for p in PRESETS if p.name.lower() == key]
        hits = exact or [p for p in PRESETS if p.name.lower().startswith(key)]
        if len(hits) != 1:
            known = ", ".join(p.name for p in PRESETS)
            raise ValueError(f"--presets: '{raw}' matches {len(hits)} presets; known: {known}")
        chosen.append(hits[0])
    return chosen


def cpu_smoke(p: Preset) -> Preset:
    """The preset shrunk for the CPU executor: at most 32 experts (k and the routing kept valid),
    hidden and intermediate sizes divided by 32 (multiples of 16)."""
    experts = min(p.num_experts, 32)
    kwargs = dict(p.routing_kwargs)
    if "n_group" in kwargs:  # keep 8 groups, and enough experts in the kept groups for top_k
        experts = max(experts, kwargs["n_group"] * max(1, -(-p.top_k // kwargs["topk_group"])))
    shrink = lambda n: max(16, n // 32 // 16 * 16)  # noqa: E731
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


def datasheet_for(device_name: str):
    """(label, bytes/s, bf16 FLOP/s) for a card name, or None when the card is not listed."""
    for label, bandwidth, flops in DATASHEET:
        if label.lower() in device_name.lower():
            return label, bandwidth, flops
    return None
