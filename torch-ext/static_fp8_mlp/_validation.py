"""Argument checks for the endpoints.

Every message names the argument and says what was expected. The checks look only at
metadata (dtype, shape, device), never at values, so they cost nothing on the device,
need no host synchronisation and trace under torch.compile. Data alignment is checked
by the native code, which sees real pointers.
"""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
BF16 = torch.bfloat16
F32 = torch.float32


def fail(name: str, expected: str, got: object) -> None:
    raise ValueError(f"static_fp8_mlp: `{name}` must be {expected}, got {got}")


def tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        fail(name, "a torch.Tensor", type(t).__name__)
    return t


def dtype(t: torch.Tensor, name: str, want: torch.dtype) -> None:
    if t.dtype != want:
        fail(name, f"of dtype {want}", t.dtype)


def rows_input(t: object, want: torch.dtype, name: str = "input") -> torch.Tensor:
    t = tensor(t, name)
    dtype(t, name, want)
    if t.dim() < 1:
        fail(name, "at least 1-dimensional ([..., K])", f"shape {tuple(t.shape)}")
    return t


def on_cuda(t: torch.Tensor, name: str = "input") -> None:
    """Checked after dtypes and shapes, so those errors show on any device."""
    if t.device.type != "cuda":
        fail(name, "a CUDA tensor", f"device {t.device}")


def same_device(t: torch.Tensor, name: str, like: torch.Tensor) -> None:
    if t.device != like.device:
        fail(name, f"on the same device as `input` ({like.device})", f"device {t.device}")


def scalar_scale(t: object, name: str, like: torch.Tensor) -> None:
    t = tensor(t, name)
    dtype(t, name, F32)
    same_device(t, name, like)
    if t.numel() != 1 or t.dim() > 1:
        fail(name, "a one-element fp32 tensor (shape [] or [1])", f"shape {tuple(t.shape)}")


def weight_scale(t: object, name: str, rows: int, like: torch.Tensor) -> None:
    t = tensor(t, name)
    dtype(t, name, F32)
    same_device(t, name, like)
    if (t.numel() == 1 and t.dim() <= 1) or (t.dim() == 1 and t.shape[0] == rows):
        return
    fail(name, f"one element or shape [{rows}] (one per weight row)", f"shape {tuple(t.shape)}")


def weight(t: object, name: str, shape: tuple[int, int], what: str, like: torch.Tensor) -> None:
    t = tensor(t, name)
    dtype(t, name, FP8)
    same_device(t, name, like)
    if t.dim() != 2 or (shape[0] >= 0 and t.shape[0] != shape[0]) or t.shape[1] != shape[1]:
        fail(name, f"of shape {what} = {list(shape)}", f"shape {tuple(t.shape)}")
    if not t.is_contiguous():
        fail(name, "contiguous (row-major)", f"strides {t.stride()}")


def vector(t: object, name: str, length: int, what: str, like: torch.Tensor) -> None:
    t = tensor(t, name)
    dtype(t, name, BF16)
    same_device(t, name, like)
    if t.dim() != 1 or t.shape[0] != length:
        fail(name, f"of shape [{what}] = [{length}]", f"shape {tuple(t.shape)}")


def multiple_of_16(value: int, what: str) -> None:
    if value % 16 != 0:
        raise ValueError(
            f"static_fp8_mlp: {what} must be a multiple of 16 (16-byte FP8 rows), got {value}"
        )


def out_tensor(out: object, shape: tuple[int, ...], want: torch.dtype, like: torch.Tensor) -> None:
    out = tensor(out, "out")
    dtype(out, "out", want)
    same_device(out, "out", like)
    if tuple(out.shape) != tuple(shape):
        fail("out", f"of shape {list(shape)}", f"shape {tuple(out.shape)}")
    if not out.is_contiguous():
        fail("out", "contiguous", f"strides {out.stride()}")
