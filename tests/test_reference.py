"""The reference math (torch-ext/static_fp8_mlp/reference.py) against hand-checked
values and torch's own FP8 conversion. CPU only, no build needed."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

_REF = Path(__file__).resolve().parents[1] / "torch-ext" / "static_fp8_mlp" / "reference.py"
_spec = importlib.util.spec_from_file_location("static_fp8_mlp_reference_under_test", _REF)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

FP8 = torch.float8_e4m3fn


def byte(v: float) -> int:
    return int(ref.q(torch.tensor([v], dtype=torch.float32)).view(torch.uint8)[0])


# e4m3fn: bias 7, 3 mantissa bits, no infinities, 0x7f/0xff = NaN, max 448 = 0x7e.
@pytest.mark.parametrize(
    "value, expected",
    [
        (0.0, 0x00),
        (-0.0, 0x80),
        (1.0, 0x38),                 # 2^0 * 1.000
        (-1.0, 0xB8),
        (1.125, 0x39),               # 1.001b
        (1.0625, 0x38),              # halfway 1.0 / 1.125 -> even mantissa (1.0)
        (1.1875, 0x3A),              # halfway 1.125 / 1.25 -> even mantissa (1.25)
        (448.0, 0x7E),               # largest finite
        (449.0, 0x7E),               # clamp, not NaN
        (464.0, 0x7E),               # halfway 448 / (480): clamped first
        (1e30, 0x7E),
        (float("inf"), 0x7E),        # saturates
        (float("-inf"), 0xFE),
        (2.0 ** -6, 0x08),           # smallest normal
        (2.0 ** -9, 0x01),           # smallest subnormal
        (2.0 ** -10, 0x00),          # halfway 0 / 2^-9 -> even (0)
        (3 * 2.0 ** -10, 0x02),      # halfway 2^-9 / 2^-8 -> even (2^-8)
        (2.0 ** -130, 0x00),         # fp32 subnormal
    ],
)
def test_q_hand_checked_bytes(value, expected):
    assert byte(value) == expected


def test_q_nan_stays_nan():
    out = ref.q(torch.tensor([float("nan")])).view(torch.uint8)[0]
    assert int(out) & 0x7F == 0x7F


def test_q_matches_torch_conversion_on_every_fp8_value_and_midpoint():
    codes = torch.arange(0, 0x7F, dtype=torch.uint8).view(FP8).float()
    mids = (codes[1:] + codes[:-1]) / 2
    vals = torch.cat([codes, mids, mids.nextafter(torch.tensor(0.0)), mids.nextafter(torch.tensor(1e9))])
    vals = torch.cat([vals, -vals])
    expected = torch.clamp(vals, -448.0, 448.0).to(FP8).view(torch.uint8)
    assert torch.equal(ref.q(vals).view(torch.uint8), expected)
    # and the representable values themselves round-trip
    assert torch.equal(ref.q(codes).float(), codes)


def test_channel_scale_quantize_is_one_multiply_then_one_division():
    # 3 * 1.5 = 4.5 exactly; 4.5 / 0.3 in fp32 is 15.000000596..., -> fp8 16? no: 15 is
    # between 14 (0x56) and 16 (0x58); spacing 1 at 8..16 means 15 = 0x57 exactly.
    x = torch.tensor([[3.0, -100.0, 1000.0]], dtype=torch.bfloat16)
    cs = torch.tensor([1.5, 0.5, 1.0], dtype=torch.bfloat16)
    s = torch.tensor(0.3, dtype=torch.float32)
    got = ref.channel_scale_quantize_fp8_static_bf16(x, cs, s)
    assert got.dtype == FP8
    assert got.view(torch.uint8).tolist() == [[0x57, byte(-50.0 / 0.3), 0x7E]]
    # same as evaluating the formula step by step in fp32
    step = (x.float() * cs.float()) / s
    assert torch.equal(got.view(torch.uint8), torch.clamp(step, -448, 448).to(FP8).view(torch.uint8))


def test_non_power_of_two_scale_rounds_in_fp32_not_fp64():
    # Pick x/s that lands within one fp32 ulp of an FP8 midpoint: fp32 and fp64 division
    # round to different FP8 codes if the reference evaluated in fp64.
    s = torch.tensor(3.0, dtype=torch.float32)
    x = torch.tensor([[3.1875]], dtype=torch.bfloat16)  # 3.1875 / 3 = 1.0625 (a midpoint)
    cs = torch.ones(1, dtype=torch.bfloat16)
    q32 = torch.clamp(x.float() / s, -448, 448).to(FP8).view(torch.uint8)
    got = ref.channel_scale_quantize_fp8_static_bf16(x, cs, s).view(torch.uint8)
    assert torch.equal(got, q32)


def test_gated_mlp_matches_a_hand_computed_example():
    # K = 2, H = 1, N = 1, all scales 1: gate = 2*1 + 1*1 = 3, up = 1*1 + 1*(-1) = 0 ... use up = 2
    x = torch.tensor([[2.0, 1.0]]).to(FP8)
    w1 = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).to(FP8)  # gate row, up row
    w2 = torch.tensor([[0.5]]).to(FP8)
    one = torch.tensor(1.0)
    out = ref.fp8_swiglu_mlp_bf16(x, w1, w2, one, one, one, one)
    g, u = 3.0, 2.0
    h = g / (1 + math.exp(-g)) * u                       # 5.715...
    hq = float(torch.tensor(h).to(FP8).float())          # 5.5 (spacing 0.5 in [4, 8))
    assert hq == 5.5
    assert out.dtype == torch.bfloat16 and out.shape == (1, 1)
    assert out.item() == pytest.approx(hq * 0.5, rel=1e-2)


def test_per_row_scales_equal_scaling_the_rows():
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 32, generator=gen) * 10).to(FP8)
    w1 = (torch.randn(64, 32, generator=gen) * 10).to(FP8)
    w2 = (torch.randn(16, 32, generator=gen) * 10).to(FP8)
    s1 = torch.rand(64, generator=gen) * 0.01 + 0.001
    s2 = torch.tensor(0.004)
    xs, hs = torch.tensor(0.02), torch.tensor(0.05)
    per_row = ref.fp8_geglu_mlp_bf16(x, w1, w2, xs, s1, hs, s2)
    # the same with the row scales folded into a float "weight" and a unit scale
    h = ref.gelu_tanh((x.float() * xs) @ (w1.float() * s1[:, None]).T[:, :32]) * (
        (x.float() * xs) @ (w1.float() * s1[:, None]).T[:, 32:])
    expect = ((ref.q(h / hs).float() * hs) @ (w2.float() * s2).T).bfloat16()
    assert ref.relative_error(per_row, expect) < 1e-2


def test_leading_dims_and_out():
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 3, 16, generator=gen) * 20).to(FP8)
    w1 = (torch.randn(32, 16, generator=gen) * 20).to(FP8)
    b1 = torch.randn(32, generator=gen).bfloat16()
    w2 = (torch.randn(16, 32, generator=gen) * 20).to(FP8)
    b2 = torch.randn(16, generator=gen).bfloat16()
    sc = torch.tensor(0.01)
    out = torch.full((2, 3, 16), float("nan"), dtype=torch.bfloat16)
    got = ref.fp8_gelu_mlp_bf16(x, w1, b1, w2, b2, sc, sc, torch.tensor(0.5), sc, out=out)
    assert got is out and torch.isfinite(out.float()).all()
    flat = ref.fp8_gelu_mlp_bf16(x.reshape(6, 16), w1, b1, w2, b2, sc, sc, torch.tensor(0.5), sc)
    assert torch.equal(out.reshape(6, 16), flat)


def test_relative_error():
    a = torch.tensor([1.0, 2.0])
    assert ref.relative_error(a, a) == 0.0
    assert ref.relative_error(a * 1.01, a) == pytest.approx(0.01)
    assert ref.relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
