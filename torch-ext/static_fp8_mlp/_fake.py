"""Fake (meta) implementations of the registered ops.

Every op writes into a caller-provided `out` and returns nothing, so its fake only has
to exist: torch.compile then knows the op's outputs without running it and traces
through the endpoints without a graph break. Registered through
`add_op_namespace_prefix`, because each build has its own op namespace.
"""

from __future__ import annotations

from typing import Callable

import torch

OPS_WRITING_OUT = (
    "channel_scale_quantize_fp8_static_bf16",
    "fp8_swiglu_mlp_bf16",
    "fp8_geglu_mlp_bf16",
    "fp8_gelu_mlp_bf16",
    "gated_mlp_with_paths",
    "gelu_mlp_with_paths",
)


def _writes_out_only(*args, **kwargs) -> None:
    return None


def register_fake_impls(add_op_namespace_prefix: Callable[[str], str]) -> None:
    for name in OPS_WRITING_OUT:
        torch.library.register_fake(add_op_namespace_prefix(name))(_writes_out_only)
