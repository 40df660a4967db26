"""The v1 contract's reference math, in fp32 plain PyTorch (CONTRACT.md, sections 1-3).

The registry cannot import the kernel package's own `reference.py` (that package is a
Hub artifact, not an installed module), so the few lines the smoke test and
`StaticFP8Linear` need live here. Every function works on any device.
"""

from __future__ import annotations

import math

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


def q_fp8(v: torch.Tensor) -> torch.Tensor:
    """Saturating FP8 conversion of an fp32 tensor (NaN stays NaN, +-inf -> +-448)."""
    return torch.clamp(v.float(), -FP8_MAX, FP8_MAX).to(FP8)


def row_scale(scale: torch.Tensor) -> torch.Tensor:
    """A weight scale as something that broadcasts over `[rows, cols]`: [] or [rows, 1]."""
    scale = scale.float()
    if scale.numel() == 1:
        return scale.reshape(())
    return scale.reshape(-1, 1)


def dequant_weight(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return weight.float() * row_scale(scale)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.gelu(x, approximate="tanh")


def silu(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x)


ACTIVATIONS = {"silu": silu, "gelu_tanh": gelu_tanh}


def input_quant(x: torch.Tensor, channel_scale: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Section 1: `q(input.float() * channel_scale.float() / scale.float())`."""
    return q_fp8(x.float() * channel_scale.float() / scale.float().reshape(()))


def gated_mlp(
    xq: torch.Tensor,
    gate_up_weight: torch.Tensor,
    down_weight: torch.Tensor,
    input_scale: torch.Tensor,
    gate_up_weight_scale: torch.Tensor,
    hidden_scale: torch.Tensor,
    down_weight_scale: torch.Tensor,
    activation: str = "silu",
) -> torch.Tensor:
    """Section 2 (SwiGLU for activation='silu', GeGLU for 'gelu_tanh'), bf16 result."""
    act = ACTIVATIONS[activation]
    lead = xq.shape[:-1]
    a = xq.reshape(-1, xq.shape[-1]).float() * input_scale.float().reshape(())
    gu = a @ dequant_weight(gate_up_weight, gate_up_weight_scale).T
    h_dim = gate_up_weight.shape[0] // 2
    g, u = gu[:, :h_dim], gu[:, h_dim:]
    h = act(g) * u
    hs = hidden_scale.float().reshape(())
    hq = q_fp8(h / hs)
    out = (hq.float() * hs) @ dequant_weight(down_weight, down_weight_scale).T
    return out.bfloat16().reshape(*lead, down_weight.shape[0])


def dense_gelu_mlp(
    xq: torch.Tensor,
    up_weight: torch.Tensor,
    up_bias: torch.Tensor,
    down_weight: torch.Tensor,
    down_bias: torch.Tensor,
    input_scale: torch.Tensor,
    up_weight_scale: torch.Tensor,
    hidden_scale: torch.Tensor,
    down_weight_scale: torch.Tensor,
) -> torch.Tensor:
    """Section 3, bf16 result."""
    lead = xq.shape[:-1]
    a = xq.reshape(-1, xq.shape[-1]).float() * input_scale.float().reshape(())
    h = gelu_tanh(a @ dequant_weight(up_weight, up_weight_scale).T + up_bias.float())
    hs = hidden_scale.float().reshape(())
    hq = q_fp8(h / hs)
    out = (hq.float() * hs) @ dequant_weight(down_weight, down_weight_scale).T + down_bias.float()
    return out.bfloat16().reshape(*lead, down_weight.shape[0])


def rel_frobenius_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """`||out - ref|| / ||ref||` in fp64 (0 when both are zero; inf on non-finite output)."""
    o = out.detach().double()
    r = ref.detach().double()
    if not torch.isfinite(o).all():
        return math.inf
    denom = torch.linalg.vector_norm(r)
    num = torch.linalg.vector_norm(o - r)
    if float(denom) == 0.0:
        return 0.0 if float(num) == 0.0 else math.inf
    return float(num / denom)


CONTRACT_REL_TOL = 1e-2
