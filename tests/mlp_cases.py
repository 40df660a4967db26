"""Random but realistic static-FP8 MLP problems: activations and weights quantised with
amax-calibrated scales, the hidden scale calibrated on the batch itself, as a
calibration pass over real data would. Never zeros: zeros hide unwritten outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

FP8 = torch.float8_e4m3fn


def q(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(v.float(), -448.0, 448.0).to(FP8)


def quantize(t: torch.Tensor, per_row: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 tensor, fp32 dequant scale) with the scale from the absolute maximum."""
    if t.numel() == 0:
        return q(t), torch.ones(t.shape[0] if per_row else (), device=t.device)
    if per_row:
        amax = t.abs().amax(dim=1).clamp_min(1e-6)
        scale = (amax / 448.0).float()
        return q(t / scale[:, None]), scale
    scale = (t.abs().amax().clamp_min(1e-6) / 448.0).float().reshape(())
    return q(t / scale), scale


@dataclass
class GatedCase:
    input: torch.Tensor
    gate_up_weight: torch.Tensor
    down_weight: torch.Tensor
    input_scale: torch.Tensor
    gate_up_weight_scale: torch.Tensor
    hidden_scale: torch.Tensor
    down_weight_scale: torch.Tensor

    def args(self):
        return (self.input, self.gate_up_weight, self.down_weight, self.input_scale,
                self.gate_up_weight_scale, self.hidden_scale, self.down_weight_scale)


@dataclass
class DenseCase:
    input: torch.Tensor
    up_weight: torch.Tensor
    up_bias: torch.Tensor
    down_weight: torch.Tensor
    down_bias: torch.Tensor
    input_scale: torch.Tensor
    up_weight_scale: torch.Tensor
    hidden_scale: torch.Tensor
    down_weight_scale: torch.Tensor

    def args(self):
        return (self.input, self.up_weight, self.up_bias, self.down_weight, self.down_bias,
                self.input_scale, self.up_weight_scale, self.hidden_scale,
                self.down_weight_scale)


def _hidden_scale(h: torch.Tensor) -> torch.Tensor:
    if h.numel() == 0:
        return torch.ones((), device=h.device)
    return (h.abs().amax().clamp_min(1e-6) / 448.0).float().reshape(())


def gated_case(m: int, k: int, h: int, n: int, activation: str, per_row: bool,
               device="cuda", generator: torch.Generator | None = None,
               leading: tuple[int, ...] | None = None) -> GatedCase:
    g = generator
    x = torch.randn(m, k, device=device, generator=g)
    xq, xs = quantize(x)
    w1 = torch.randn(2 * h, k, device=device, generator=g) / k**0.5
    if per_row:  # make rows differ in magnitude so per-row scales matter
        w1 = w1 * torch.rand(2 * h, 1, device=device, generator=g).add(0.25)
    w1q, w1s = quantize(w1, per_row)
    w2 = torch.randn(n, h, device=device, generator=g) / h**0.5
    w2q, w2s = quantize(w2, per_row)
    # the hidden pre-quantisation values, for calibrating hidden_scale on this batch
    a = xq.float() * xs
    gu = a @ (w1q.float() * (w1s[:, None] if per_row else w1s)).T
    act = torch.nn.functional.silu if activation == "silu" else (
        lambda t: torch.nn.functional.gelu(t, approximate="tanh"))
    hid = act(gu[:, :h]) * gu[:, h:]
    if leading is not None:
        xq = xq.reshape(*leading, k)
    return GatedCase(xq, w1q, w2q, xs, w1s, _hidden_scale(hid), w2s)


def dense_case(m: int, k: int, h: int, n: int, per_row: bool, device="cuda",
               generator: torch.Generator | None = None) -> DenseCase:
    g = generator
    x = torch.randn(m, k, device=device, generator=g)
    xq, xs = quantize(x)
    w1 = torch.randn(h, k, device=device, generator=g) / k**0.5
    w1q, w1s = quantize(w1, per_row)
    b1 = (0.1 * torch.randn(h, device=device, generator=g)).bfloat16()
    w2 = torch.randn(n, h, device=device, generator=g) / h**0.5
    w2q, w2s = quantize(w2, per_row)
    b2 = (0.1 * torch.randn(n, device=device, generator=g)).bfloat16()
    a = xq.float() * xs
    pre = a @ (w1q.float() * (w1s[:, None] if per_row else w1s)).T + b1.float()
    hid = torch.nn.functional.gelu(pre, approximate="tanh")
    return DenseCase(xq, w1q, b1, w2q, b2, xs, w1s, _hidden_scale(hid), w2s)
