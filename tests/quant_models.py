"""Float64 models of the dynamic activation quantizations the kernels apply, shared by the
independent checks of the API tests (seed forms, cutlass full form, trtllm_*): e4m3 per group
of columns with scale amax / 448 (DeepSeek FP8, per-tensor when the group is the whole row) and
MXFP8 (e4m3 codes, power-of-two scales per 32). The scale math is fp32, as in the kernels.
"""

from __future__ import annotations

import torch

E4M3 = torch.float8_e4m3fn


def fp8_group_quant(v: torch.Tensor, group: int) -> torch.Tensor:
    """Dynamic e4m3 quantization per group of columns (scale amax / 448 in fp32)."""
    out = torch.empty_like(v)
    for c0 in range(0, v.shape[0], group):
        g = v[c0 : c0 + group].float()
        s = g.abs().max() / 448.0
        s = torch.where(s == 0, torch.ones_like(s), s)
        out[c0 : c0 + group] = ((g / s).clamp(-448, 448).to(E4M3).float() * s).double()
    return out


def mx_requant(h):
    """MXFP8 of a row: e4m3 codes with power-of-two scales 2^ceil(log2(amax / 448)) per 32."""
    g = h.float().reshape(-1, 32)
    amax = g.abs().amax(dim=1, keepdim=True)
    s = torch.where(
        amax > 0, torch.exp2(torch.ceil(torch.log2(amax / 448.0))), torch.ones_like(amax)
    )
    return ((g / s).to(E4M3).float() * s).reshape(-1).double()
