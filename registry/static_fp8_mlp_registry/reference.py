"""The contract math as the registry uses it.

One file defines the math: the kernel package's `reference.py`, linked here as
`kernel_reference.py` (the kernel package itself is a Hub artifact, not an installed
module, so the registry cannot import it). This module only adds the names and the
error measure the registry's smoke test and `StaticFP8Linear` use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .kernel_reference import (
    FP8,
    FP8_MAX,
    channel_scale_quantize_fp8_static_bf16,
    gelu_tanh,
    relative_error,
)
from .kernel_reference import fp8_gelu_mlp_bf16 as dense_gelu_mlp
from .kernel_reference import gated_mlp as _gated_mlp
from .kernel_reference import q as q_fp8

ACTIVATIONS = {"silu": F.silu, "gelu_tanh": gelu_tanh}
CONTRACT_REL_TOL = 1e-2

__all__ = [
    "FP8", "FP8_MAX", "ACTIVATIONS", "CONTRACT_REL_TOL", "q_fp8", "gelu_tanh", "input_quant",
    "gated_mlp", "dense_gelu_mlp", "rel_frobenius_error",
]


def input_quant(x: torch.Tensor, channel_scale: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Section 1: `q(input.float() * channel_scale.float() / scale.float())`."""
    return channel_scale_quantize_fp8_static_bf16(x, channel_scale, scale)


def gated_mlp(xq, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale,
              down_weight_scale, activation: str = "silu") -> torch.Tensor:
    """Section 2 (SwiGLU for activation='silu', GeGLU for 'gelu_tanh'), bf16 result."""
    return _gated_mlp(xq, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                      hidden_scale, down_weight_scale, activation)


def rel_frobenius_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """`||out - ref|| / ||ref||` in fp64; inf when the output has NaN/inf."""
    if not torch.isfinite(out.detach().float()).all():
        return math.inf
    return relative_error(out.detach(), ref.detach())
