"""The math of every endpoint, in plain PyTorch (CONTRACT.md, version 1).

This module is the definition the CUDA kernels are tested against and the
documentation of what they compute. It runs on any device. Everything is fp32,
except that the two matrix products accumulate in fp64: the result then does not
depend on TF32 settings or on the accumulation order of whatever BLAS runs it.

Notation: `q(v)` is saturating FP8 conversion exactly as PyTorch does it; scales are
dequantisation multipliers (real value = fp8 value * scale).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0

__all__ = [
    "q",
    "gelu_tanh",
    "channel_scale_quantize_fp8_static_bf16",
    "fp8_swiglu_mlp_bf16",
    "fp8_geglu_mlp_bf16",
    "fp8_gelu_mlp_bf16",
    "gated_mlp",
    "relative_error",
]


def q(v: torch.Tensor) -> torch.Tensor:
    """Saturating FP8 e4m3fn conversion of an fp32 tensor (NaN stays NaN, +-inf -> +-448)."""
    return torch.clamp(v.float(), -FP8_MAX, FP8_MAX).to(FP8)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh-approximated GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return F.gelu(x, approximate="tanh")


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def _dequant_weight(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """weight.float() * s, with s one element or one per row."""
    s = scale.float()
    if s.numel() == 1:
        return weight.float() * s.reshape(())
    return weight.float() * s.reshape(-1, 1)


def _matmul_t(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """a @ w.T for fp32 operands, accumulated in fp64, returned as fp32."""
    return (a.double() @ w.double().T).float()


def _finish(out_rows: torch.Tensor, leading: torch.Size, out: torch.Tensor | None) -> torch.Tensor:
    result = out_rows.reshape(*leading, out_rows.shape[-1])
    if out is not None:
        out.copy_(result)
        return out
    return result


def channel_scale_quantize_fp8_static_bf16(
    input: torch.Tensor,
    channel_scale: torch.Tensor,
    scale: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """q(input * channel_scale / scale): one rounded multiply, one rounded division."""
    result = q(input.float() * channel_scale.float() / scale.float().reshape(()))
    if out is not None:
        out.copy_(result)
        return out
    return result


def gated_mlp(
    input: torch.Tensor,
    gate_up_weight: torch.Tensor,
    down_weight: torch.Tensor,
    input_scale: torch.Tensor,
    gate_up_weight_scale: torch.Tensor,
    hidden_scale: torch.Tensor,
    down_weight_scale: torch.Tensor,
    activation: str,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gated MLP with `activation` in {"silu", "gelu_tanh"} applied to the gate half."""
    act = {"silu": F.silu, "gelu_tanh": gelu_tanh}[activation]
    h_dim = gate_up_weight.shape[0] // 2
    a = _rows(input).float() * input_scale.float().reshape(())
    gu = _matmul_t(a, _dequant_weight(gate_up_weight, gate_up_weight_scale))
    g, u = gu[:, :h_dim], gu[:, h_dim:]
    h = act(g) * u
    hs = hidden_scale.float().reshape(())
    hq = q(h / hs)
    y = _matmul_t(hq.float() * hs, _dequant_weight(down_weight, down_weight_scale))
    return _finish(y.to(torch.bfloat16), input.shape[:-1], out)


def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                        hidden_scale, down_weight_scale, *, out=None):
    """SwiGLU: down(q(silu(gate) * up / hidden_scale))."""
    return gated_mlp(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                     hidden_scale, down_weight_scale, "silu", out=out)


def fp8_geglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                       hidden_scale, down_weight_scale, *, out=None):
    """GeGLU: down(q(gelu_tanh(gate) * up / hidden_scale))."""
    return gated_mlp(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                     hidden_scale, down_weight_scale, "gelu_tanh", out=out)


def fp8_gelu_mlp_bf16(input, up_weight, up_bias, down_weight, down_bias, input_scale,
                      up_weight_scale, hidden_scale, down_weight_scale, *, out=None):
    """Dense MLP: down(q(gelu_tanh(up(x) + up_bias) / hidden_scale)) + down_bias."""
    a = _rows(input).float() * input_scale.float().reshape(())
    h = gelu_tanh(_matmul_t(a, _dequant_weight(up_weight, up_weight_scale)) + up_bias.float())
    hs = hidden_scale.float().reshape(())
    hq = q(h / hs)
    y = _matmul_t(hq.float() * hs, _dequant_weight(down_weight, down_weight_scale))
    y = y + down_bias.float()
    return _finish(y.to(torch.bfloat16), input.shape[:-1], out)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in fp64 (the contract's accuracy measure)."""
    a = actual.double()
    e = expected.double()
    denom = torch.linalg.vector_norm(e).item()
    num = torch.linalg.vector_norm(a - e).item()
    if denom == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / denom
