"""static-fp8-mlp: fused static-FP8 MLP kernels (Hugging Face Kernel Hub, version 1).

Endpoints (CONTRACT.md; names and positional order are fixed by existing callers):

- channel_scale_quantize_fp8_static_bf16(input, channel_scale, scale, *, out=None)
- fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale,
                      gate_up_weight_scale, hidden_scale, down_weight_scale, *, out=None)
- fp8_geglu_mlp_bf16(same arguments as fp8_swiglu_mlp_bf16)
- fp8_gelu_mlp_bf16(input, up_weight, up_bias, down_weight, down_bias, input_scale,
                    up_weight_scale, hidden_scale, down_weight_scale, *, out=None)

`reference` holds the exact math in plain PyTorch. This layer validates arguments
(errors name the argument), flattens leading dimensions, allocates `out` and calls
the registered ops; the ops have fake implementations, so torch.compile(fullgraph=True)
traces through every endpoint.

The native ops check every argument again before launching anything. So an eager call
on CUDA tensors without `out` goes to the op first, and this layer's checks run only if
it refuses (they then raise the same ValueError as ever, naming the argument). On one
H100 machine's host one MLP's two endpoint calls took 76-93 µs with them up front and
60-70 µs without; a second H100 host showed no difference within its spread
(benchmarks/bench_fused_overhead.py --checks-first, README "Host time"). Everywhere else
(under torch.compile, where they are traced once; another device; empty inputs or
outputs; a caller's `out`) they run up front.
"""

from __future__ import annotations

import torch

from . import _validation as check
from . import reference
from ._fake import register_fake_impls
from ._ops import add_op_namespace_prefix, ops

__all__ = [
    "channel_scale_quantize_fp8_static_bf16",
    "fp8_swiglu_mlp_bf16",
    "fp8_geglu_mlp_bf16",
    "fp8_gelu_mlp_bf16",
    "covered_archs",
    "reference",
]

register_fake_impls(add_op_namespace_prefix)

# GEMM path selectors for the *_with_paths test hooks (must match GemmPath in C++).
GEMM_PATHS = {"auto": 0, "small_m": 1, "large_m": 2, "tensor_core_tma": 3, "weight_stream": 4,
              "tensor_core_split_k": 5, "tensor_core_tall_128": 6, "tensor_core_tall_192": 7,
              "warp_stream": 8, "tensor_core_stream": 9, "tensor_core_tall_64": 10,
              "tensor_core_split_k_cluster": 11, "tensor_core_swap_ab": 12,
              "tensor_core_swap_ab_cluster": 13}
_ACTIVATIONS = {"silu": 0, "gelu_tanh": 1}


def covered_archs() -> str:
    """Compute capabilities this build has kernels for, e.g. "8.9, 9.0, 10.0, 12.0"."""
    return ops.covered_archs()


def _rows(input: torch.Tensor) -> torch.Tensor:
    """[..., K] -> contiguous [M, K] (a view when possible)."""
    x = input.reshape(-1, input.shape[-1])
    return x if x.is_contiguous() else x.contiguous()


def _checks_deferred(input: object, out: torch.Tensor | None) -> bool:
    """Whether this call may go to the op before this layer's checks (module docstring)."""
    return (out is None and isinstance(input, torch.Tensor) and input.is_cuda
            and not torch.compiler.is_compiling())


def _run_deferred(run, validate, args):
    """`run()`; if it raises, `validate(*args)` and the device check name the bad
    argument, else the op's own error stands. Nothing runs up front: the op refuses
    before it launches."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - re-raised unless a check names the cause
        error = exc
    validate(*args)
    check.on_cuda(args[0])
    raise error


def channel_scale_quantize_fp8_static_bf16(
    input: torch.Tensor,
    channel_scale: torch.Tensor,
    scale: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """FP8 [..., K] = q(input * channel_scale / scale), byte-exact with the reference."""

    def launch(out):
        ops.channel_scale_quantize_fp8_static_bf16(out, input, channel_scale, scale)
        return out

    return _run_endpoint(_check_quant, (input, channel_scale, scale), lambda: input.shape[-1],
                         check.FP8, out, launch)


def _check_quant(input, channel_scale, scale):
    check.rows_input(input, check.BF16)
    k = input.shape[-1]
    check.vector(channel_scale, "channel_scale", k, "K", input)
    check.scalar_scale(scale, "scale", input)
    return k


def _check_gated(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                 hidden_scale, down_weight_scale):
    check.rows_input(input, check.FP8)
    k = input.shape[-1]
    check.tensor(gate_up_weight, "gate_up_weight")
    if gate_up_weight.dim() != 2 or gate_up_weight.shape[0] % 2 != 0:
        check.fail("gate_up_weight", "of shape [2H, K] (gate rows, then up rows)",
                   f"shape {tuple(gate_up_weight.shape)}")
    h = gate_up_weight.shape[0] // 2
    check.weight(gate_up_weight, "gate_up_weight", (2 * h, k), "[2H, K]", input)
    check.tensor(down_weight, "down_weight")
    check.weight(down_weight, "down_weight", (-1, h), "[N, H]", input)
    n = down_weight.shape[0]
    check.multiple_of_16(k, "K (input.shape[-1])")
    check.multiple_of_16(h, "H (gate_up_weight.shape[0] // 2)")
    check.multiple_of_16(n, "N (down_weight.shape[0])")
    check.scalar_scale(input_scale, "input_scale", input)
    check.weight_scale(gate_up_weight_scale, "gate_up_weight_scale", 2 * h, input)
    check.scalar_scale(hidden_scale, "hidden_scale", input)
    check.weight_scale(down_weight_scale, "down_weight_scale", n, input)
    return n


def _out_for(input: torch.Tensor, n: int, out: torch.Tensor | None,
             dtype: torch.dtype) -> torch.Tensor:
    shape = (*input.shape[:-1], n)
    if out is None:
        return torch.empty(shape, dtype=dtype, device=input.device)
    check.out_tensor(out, shape, dtype, input)
    return out


def _run_endpoint(validate, checked, out_cols, dtype, out, launch):
    """Every endpoint's flow: `validate(*checked)` (the checks; returns the output's last
    dimension: K for the quant, N for the MLPs), an output [..., that] of `dtype` (or the
    caller's `out`, checked), then `launch(out)`, which calls the op into `out` and
    returns it. Eager CUDA calls go to the op first (module docstring), with `out_cols()`
    read unchecked: a bad argument then fails there or in the op, and the checks name it."""
    input = checked[0]
    if _checks_deferred(input, out) and input.numel() != 0:
        def run():
            result = torch.empty((*input.shape[:-1], out_cols()), dtype=dtype, device=input.device)
            if result.numel() == 0:  # N = 0: nothing to launch, but the checks apply
                validate(*checked)
                return result
            return launch(result)
        return _run_deferred(run, validate, checked)
    n = validate(*checked)
    out = _out_for(input, n, out, dtype)
    check.on_cuda(input)
    if out.numel() == 0:
        return out
    return launch(out)


def _gated(op_name, activation, input, gate_up_weight, down_weight, input_scale,
           gate_up_weight_scale, hidden_scale, down_weight_scale, out, paths):
    checked = (input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
               hidden_scale, down_weight_scale)

    def launch(out):
        args = (out, _rows(input), gate_up_weight, down_weight, input_scale,
                gate_up_weight_scale, hidden_scale, down_weight_scale)
        if paths is None:
            getattr(ops, op_name)(*args)
        else:
            ops.gated_mlp_with_paths(*args, _ACTIVATIONS[activation], GEMM_PATHS[paths[0]],
                                     GEMM_PATHS[paths[1]])
        return out

    return _run_endpoint(_check_gated, checked, lambda: down_weight.shape[0], check.BF16, out,
                         launch)


def fp8_swiglu_mlp_bf16(
    input: torch.Tensor,
    gate_up_weight: torch.Tensor,
    down_weight: torch.Tensor,
    input_scale: torch.Tensor,
    gate_up_weight_scale: torch.Tensor,
    hidden_scale: torch.Tensor,
    down_weight_scale: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """bf16 [..., N] = down(q(silu(gate(x)) * up(x) / hidden_scale)); see reference."""
    return _gated("fp8_swiglu_mlp_bf16", "silu", input, gate_up_weight, down_weight,
                  input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, out, None)


def fp8_geglu_mlp_bf16(
    input: torch.Tensor,
    gate_up_weight: torch.Tensor,
    down_weight: torch.Tensor,
    input_scale: torch.Tensor,
    gate_up_weight_scale: torch.Tensor,
    hidden_scale: torch.Tensor,
    down_weight_scale: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """bf16 [..., N] = down(q(gelu_tanh(gate(x)) * up(x) / hidden_scale)); see reference."""
    return _gated("fp8_geglu_mlp_bf16", "gelu_tanh", input, gate_up_weight, down_weight,
                  input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, out, None)


def _check_gelu(input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale,
                hidden_scale, down_weight_scale):
    check.rows_input(input, check.FP8)
    k = input.shape[-1]
    check.tensor(up_weight, "up_weight")
    check.weight(up_weight, "up_weight", (-1, k), "[H, K]", input)
    h = up_weight.shape[0]
    check.tensor(down_weight, "down_weight")
    check.weight(down_weight, "down_weight", (-1, h), "[N, H]", input)
    n = down_weight.shape[0]
    check.multiple_of_16(k, "K (input.shape[-1])")
    check.multiple_of_16(h, "H (up_weight.shape[0])")
    check.multiple_of_16(n, "N (down_weight.shape[0])")
    check.vector(up_bias, "up_bias", h, "H", input)
    check.vector(down_bias, "down_bias", n, "N", input)
    check.scalar_scale(input_scale, "input_scale", input)
    check.weight_scale(up_weight_scale, "up_weight_scale", h, input)
    check.scalar_scale(hidden_scale, "hidden_scale", input)
    check.weight_scale(down_weight_scale, "down_weight_scale", n, input)
    return n


def _gelu(input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale,
          hidden_scale, down_weight_scale, out, paths):
    checked = (input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale,
               hidden_scale, down_weight_scale)

    def launch(out):
        args = (out, _rows(input), up_weight, up_bias.contiguous(), down_weight,
                down_bias.contiguous(), input_scale, up_weight_scale, hidden_scale,
                down_weight_scale)
        if paths is None:
            ops.fp8_gelu_mlp_bf16(*args)
        else:
            ops.gelu_mlp_with_paths(*args, GEMM_PATHS[paths[0]], GEMM_PATHS[paths[1]])
        return out

    return _run_endpoint(_check_gelu, checked, lambda: down_weight.shape[0], check.BF16, out,
                         launch)


def fp8_gelu_mlp_bf16(
    input: torch.Tensor,
    up_weight: torch.Tensor,
    up_bias: torch.Tensor,
    down_weight: torch.Tensor,
    down_bias: torch.Tensor,
    input_scale: torch.Tensor,
    up_weight_scale: torch.Tensor,
    hidden_scale: torch.Tensor,
    down_weight_scale: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """bf16 [..., N] = down(q(gelu_tanh(up(x) + up_bias) / hidden_scale)) + down_bias."""
    return _gelu(input, up_weight, up_bias, down_weight, down_bias, input_scale,
                 up_weight_scale, hidden_scale, down_weight_scale, out, None)


def _gated_mlp_with_paths(activation, paths, *args, out=None):
    """Test hook: a gated MLP with both GEMM paths forced, e.g. ("small_m", "large_m")."""
    op_name = {"silu": "fp8_swiglu_mlp_bf16", "gelu_tanh": "fp8_geglu_mlp_bf16"}[activation]
    return _gated(op_name, activation, *args, out, paths)


def _gelu_mlp_with_paths(paths, *args, out=None):
    """Test hook: the dense GELU MLP with both GEMM paths forced."""
    return _gelu(*args, out, paths)
