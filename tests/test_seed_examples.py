"""Every code example of the user's seed doc (shared/seed/fused_moe_seed.rst), run as written.

The examples are copied here as code (the .rst may be absent in CI) with one change only:
"cuda:0" became DEVICE ("cpu" on a machine without a GPU, where the CPU executor runs them).
Shapes are the doc's own (H=4096, I=11008, E=8): nothing is shrunk or skipped. The three
TensorRT-LLM examples reuse names from the block-scale one, exactly as the doc does, through a
module-scoped fixture that runs the block-scale example once.

Asserted: the documented output shapes; the result dtype (x's for cutlass_fused_moe, bfloat16
for the trtllm functions, seed_forms' dtype rule: the FP4 example's sums reach 1e5, past fp16's
65504, and stay finite in bf16); finiteness; and every MoE output against the float64 reference
of the problem the call translates to (the same seed-form builder, run on the CPU copy), within
the error budget of tests/numeric.py.
"""

from __future__ import annotations

import dataclasses

import flashinfer
import pytest
import torch
from flashinfer.fused_moe import GatedActType, RoutingMethodType, seed_forms
from flashinfer.fused_moe.reference import reference_moe
from moe_checks import budget_for
from numeric import assert_within_budget

DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"
# Not `gpu`: they run on the CPU too. GPU runs select them with -m "gpu or seed".
pytestmark = pytest.mark.seed

# The examples below keep the doc's own formatting, so they can be compared with it line by line.
# fmt: off


def _check(output, shape, dtype=torch.float16):
    assert isinstance(output, torch.Tensor)
    assert tuple(output.shape) == shape, output.shape
    assert output.dtype == dtype
    assert torch.isfinite(output).all()


def _on_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: _on_cpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        )
    return obj


def _matches_reference(output, builder, *args, **kwargs):
    """``output`` within the error budget of the float64 reference of ``builder(*args,
    **kwargs)``, the problem the seed call was translated into (built again, then moved to the
    CPU). The budget allows Hopper's FP8 MMA accumulator (whichever family ran it)."""
    problem = _on_cpu(builder(*args, **kwargs))
    problem.output = output.cpu()
    budget = budget_for(problem, fp8_tensor_cores=True)
    assert_within_budget(output, reference_moe(problem), budget, what=str(budget))


def test_enum_example(capsys):
    # 路由方法类型
    routing_method = RoutingMethodType.ROUND_ROBIN
    print(f"路由方法: {routing_method}")

    # 门控激活类型
    act_type = GatedActType.SILU
    print(f"激活类型: {act_type}")

    printed = capsys.readouterr().out
    # Python 3.11+ formats an IntEnum member in an f-string as its integer value
    assert f"路由方法: {routing_method}" in printed and f"激活类型: {act_type}" in printed
    assert routing_method is RoutingMethodType.RoundRobin and routing_method == 11
    assert act_type is GatedActType.SwiGlu and act_type == 0


def test_reorder_rows_example():
    torch.manual_seed(0)
    batch_size = 8
    hidden_size = 4096
    intermediate_size = 11008  # noqa: F841  (as in the doc)

    # 准备输入
    x = torch.randn(batch_size, hidden_size).half().to(DEVICE)
    expert_indices = torch.randint(0, 8, (batch_size,)).int().to(DEVICE)

    # 为门控激活 GEMM 重排行
    reordered_x = flashinfer.reorder_rows_for_gated_act_gemm(x, expert_indices)

    assert tuple(reordered_x.shape) == (batch_size, hidden_size)
    # rows grouped by expert, stable: the same rows, in the order of a stable sort by expert
    order = torch.sort(expert_indices.cpu().long(), stable=True).indices
    assert torch.equal(reordered_x.cpu(), x.cpu()[order])


def test_cutlass_fused_moe_example():
    torch.manual_seed(0)
    batch_size = 8
    num_experts = 8
    top_k = 2
    hidden_size = 4096
    intermediate_size = 11008
    expert_capacity = 64

    # 准备输入
    x = torch.randn(batch_size, hidden_size).half().to(DEVICE)

    # 门控输出（路由 logits）
    gating_output = torch.randn(batch_size, num_experts).half().to(DEVICE)

    # 专家权重（CUTLASS 布局）
    experts = torch.randn(
        num_experts, 2, intermediate_size, hidden_size,
        dtype=torch.float16, device=DEVICE
    )

    # 执行融合 MoE
    output = flashinfer.cutlass_fused_moe(
        x, gating_output, experts,
        num_experts=num_experts,
        top_k=top_k,
        expert_capacity=expert_capacity,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        act_type=GatedActType.SILU,
        routing_method=RoutingMethodType.ROUND_ROBIN
    )

    print(f"输出形状: {output.shape}")  # torch.Size([8, 4096])
    _check(output, (8, 4096))
    _matches_reference(
        output, seed_forms.cutlass_seed_problem, x, gating_output, experts,
        num_experts=num_experts, top_k=top_k, expert_capacity=expert_capacity,
        hidden_size=hidden_size, intermediate_size=intermediate_size, act_type=GatedActType.SILU,
        routing_method=RoutingMethodType.ROUND_ROBIN,
    )


@pytest.fixture(scope="module")
def block_scale_example():
    """The FP8 block-scale example; returns its names for the examples that reuse them."""
    torch.manual_seed(0)
    batch_size = 8
    num_experts = 8
    top_k = 2
    hidden_size = 4096
    intermediate_size = 11008

    x = torch.randn(batch_size, hidden_size).half().to(DEVICE)
    gating_output = torch.randn(batch_size, num_experts).half().to(DEVICE)

    # FP8 量化专家权重
    experts_fp8 = torch.randn(
        num_experts, 2, intermediate_size, hidden_size,
        dtype=torch.float16, device=DEVICE
    )
    experts_scale = torch.randn(
        num_experts, 2, intermediate_size // 16
    ).half().to(DEVICE)

    output = flashinfer.trtllm_fp8_block_scale_moe(
        x, gating_output, experts_fp8, experts_scale,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size
    )
    return dict(output=output, x=x, gating_output=gating_output, experts_fp8=experts_fp8,
                experts_scale=experts_scale, num_experts=num_experts, top_k=top_k,
                hidden_size=hidden_size, intermediate_size=intermediate_size)


def _sizes(ex):
    return {n: ex[n] for n in ("num_experts", "top_k", "hidden_size", "intermediate_size")}


def test_trtllm_fp8_block_scale_example(block_scale_example):
    ex = block_scale_example
    output = ex["output"]
    _check(output, (8, 4096), torch.bfloat16)
    _matches_reference(output, seed_forms.fp8_block_scale_seed_problem, ex["x"],
                       ex["gating_output"], ex["experts_fp8"], ex["experts_scale"], **_sizes(ex))


def test_trtllm_fp8_per_tensor_example(block_scale_example):
    x = block_scale_example["x"]
    gating_output = block_scale_example["gating_output"]
    experts_fp8 = block_scale_example["experts_fp8"]
    num_experts = block_scale_example["num_experts"]
    top_k = block_scale_example["top_k"]
    hidden_size = block_scale_example["hidden_size"]
    intermediate_size = block_scale_example["intermediate_size"]
    torch.manual_seed(1)

    # FP8 每张量缩放（更简单的缩放方式）
    experts_scale_per_tensor = torch.randn(num_experts, 2).half().to(DEVICE)

    output = flashinfer.trtllm_fp8_per_tensor_scale_moe(
        x, gating_output, experts_fp8, experts_scale_per_tensor,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size
    )
    _check(output, (8, 4096), torch.bfloat16)
    _matches_reference(output, seed_forms.fp8_per_tensor_scale_seed_problem, x, gating_output,
                       experts_fp8, experts_scale_per_tensor, **_sizes(block_scale_example))


def test_trtllm_fp4_block_scale_example(block_scale_example):
    x = block_scale_example["x"]
    gating_output = block_scale_example["gating_output"]
    num_experts = block_scale_example["num_experts"]
    top_k = block_scale_example["top_k"]
    hidden_size = block_scale_example["hidden_size"]
    intermediate_size = block_scale_example["intermediate_size"]
    torch.manual_seed(2)

    # FP4 量化专家权重
    experts_fp4 = torch.randint(
        0, 255, (num_experts, 2, intermediate_size, hidden_size),
        dtype=torch.uint8, device=DEVICE
    )
    experts_scale_fp4 = torch.randn(
        num_experts, 2, intermediate_size // 16
    ).half().to(DEVICE)

    output = flashinfer.trtllm_fp4_block_scale_moe(
        x, gating_output, experts_fp4, experts_scale_fp4,
        num_experts=num_experts,
        top_k=top_k,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size
    )
    _check(output, (8, 4096), torch.bfloat16)
    _matches_reference(output, seed_forms.fp4_block_scale_seed_problem, x, gating_output,
                       experts_fp4, experts_scale_fp4, **_sizes(block_scale_example))


def test_moe_layer_example(capsys):
    torch.manual_seed(0)

    class MoELayer:
        def __init__(self, num_experts, hidden_size, intermediate_size, top_k=2):
            self.num_experts = num_experts
            self.hidden_size = hidden_size
            self.intermediate_size = intermediate_size
            self.top_k = top_k

            # 初始化专家权重（实际应用中从模型加载）
            self.experts = torch.randn(
                num_experts, 2, intermediate_size, hidden_size,
                dtype=torch.float16, device=DEVICE
            )

            # 初始化门控网络（简化）
            self.gating_network = torch.randn(
                hidden_size, num_experts,
                dtype=torch.float16, device=DEVICE
            )

        def forward(self, x):
            """前向传播"""
            batch_size = x.shape[0]  # noqa: F841  (as in the doc)

            # 计算门控输出
            gating_output = torch.matmul(x, self.gating_network)

            # 执行融合 MoE
            output = flashinfer.cutlass_fused_moe(
                x, gating_output, self.experts,
                num_experts=self.num_experts,
                top_k=self.top_k,
                expert_capacity=64,
                hidden_size=self.hidden_size,
                intermediate_size=self.intermediate_size,
                act_type=GatedActType.SILU,
                routing_method=RoutingMethodType.ROUND_ROBIN
            )

            return output

    # 使用示例
    moe_layer = MoELayer(
        num_experts=8, hidden_size=4096, intermediate_size=11008, top_k=2
    )

    x = torch.randn(8, 4096).half().to(DEVICE)
    output = moe_layer.forward(x)
    print(f"输出形状: {output.shape}")  # torch.Size([8, 4096])
    _check(output, (8, 4096))
    assert "torch.Size([8, 4096])" in capsys.readouterr().out
    _matches_reference(
        output, seed_forms.cutlass_seed_problem, x, torch.matmul(x, moe_layer.gating_network),
        moe_layer.experts, num_experts=8, top_k=2, expert_capacity=64, hidden_size=4096,
        intermediate_size=11008, act_type=GatedActType.SILU,
        routing_method=RoutingMethodType.ROUND_ROBIN,
    )
