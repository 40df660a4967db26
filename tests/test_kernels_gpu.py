"""GPU tests of the four endpoints against the fp32 reference (CONTRACT.md).

Input quant must match byte for byte; the MLPs must have relative error <= 1e-2 and
no NaN/inf where the reference is finite. Outputs are poisoned before each call.
Skipped without CUDA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from capture_cases import CAPTURE_CASES, GEGLU_DECODE
from mlp_cases import FP8, dense_case, gated_case, q

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

TOL = 1e-2
M_GRID = (0, 1, 7, 50, 512, 4096)
GATED_SHAPES = ((256, 512, 384), (1024, 1536, 768))  # (K, H, N)
DENSE_SHAPES = ((1152, 4304, 1152), (256, 512, 128))


@pytest.fixture(scope="module")
def sfm(kernel_module):
    return kernel_module


def ref_module(sfm):
    return sfm.reference


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    d = torch.linalg.vector_norm(b).item()
    return torch.linalg.vector_norm(a - b).item() / (d if d else 1.0)


def assert_close_to_reference(out: torch.Tensor, ref: torch.Tensor):
    assert out.shape == ref.shape and out.dtype == torch.bfloat16
    if ref.numel() == 0:
        return
    finite = torch.isfinite(ref.float())
    assert torch.isfinite(out.float())[finite].all(), "NaN/inf where the reference is finite"
    err = rel_err(out, ref)
    assert err <= TOL, f"relative error {err:.3e} > {TOL}"


def poisoned_bf16(shape, device="cuda"):
    return torch.full(shape, float("nan"), dtype=torch.bfloat16, device=device)


# --------------------------------------------------------------------------- input quant


def fp8_tie_values() -> torch.Tensor:
    """Every finite FP8 value, every midpoint between neighbours (exact in bf16), +- both."""
    codes = torch.arange(0, 0x7F, dtype=torch.uint8).view(FP8).float()  # 0 .. 448
    mids = (codes[1:] + codes[:-1]) / 2
    vals = torch.cat([codes, mids, codes * 1.0001, mids * 0.9999])
    return torch.cat([vals, -vals]).to(torch.bfloat16)


def special_values() -> torch.Tensor:
    f = torch.tensor(
        [float("nan"), -float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 448.0, 449.0,
         464.0, 480.0, -464.0, 1e30, -1e30, 2.0**-9, 2.0**-10, 3 * 2.0**-10, 2.0**-130],
        dtype=torch.float32,
    )
    denormals = torch.tensor([1, 2, 3, 0x7F, -32767, -32641], dtype=torch.int16).view(torch.bfloat16)  # bf16 denormals
    return torch.cat([f.to(torch.bfloat16), denormals, fp8_tie_values()])


def quant_inputs(m: int, k: int, gen: torch.Generator) -> torch.Tensor:
    x = (torch.randn(m, k, generator=gen) * 30).to(torch.bfloat16)
    if m * k:
        sv = special_values()
        idx = torch.randint(0, m * k, (min(m * k, 4 * sv.numel()),), generator=gen)
        x.view(-1)[idx] = sv.repeat(4)[: idx.numel()]
    return x


def ref_quant(x, cs, s):
    """The contract formula evaluated by torch on the GPU, as bytes (on the CPU).

    NaN signs are the one thing that depends on where the formula runs: CUDA arithmetic
    returns the canonical (positive) NaN, x86 keeps the input's sign. The kernel follows
    torch on the device it runs on; `assert_matches_cpu_up_to_nan_sign` checks the rest
    against the CPU evaluation too.
    """
    dev = "cuda"
    return q(x.to(dev).float() * cs.to(dev).float() / s.to(dev).float()).view(torch.uint8).cpu()


def assert_matches_cpu_up_to_nan_sign(got_bytes: torch.Tensor, x, cs, s):
    cpu = q(x.cpu().float() * cs.cpu().float() / s.cpu().float()).view(torch.uint8)
    nan_got = (got_bytes & 0x7F) == 0x7F
    nan_cpu = (cpu & 0x7F) == 0x7F
    assert torch.equal(nan_got, nan_cpu)
    assert torch.equal(got_bytes[~nan_got], cpu[~nan_cpu])


@pytest.mark.parametrize("m", M_GRID)
@pytest.mark.parametrize("k", (16, 1003, 2048))
@pytest.mark.parametrize("scale_value", (1.0, 0.37, 3.3, 1 / 448))
def test_input_quant_byte_exact(sfm, m, k, scale_value):
    gen = torch.Generator().manual_seed(m * 7919 + k)
    x = quant_inputs(m, k, gen)
    cs = (torch.rand(k, generator=gen) * 2 + 0.05).to(torch.bfloat16)
    s = torch.tensor([scale_value], dtype=torch.float32)
    expected = ref_quant(x, cs, s)
    out = torch.full((m, k), 0x55, dtype=torch.uint8, device="cuda").view(FP8)
    got = sfm.channel_scale_quantize_fp8_static_bf16(x.cuda(), cs.cuda(), s.cuda(), out=out)
    assert got.data_ptr() == out.data_ptr()
    mismatch = (got.view(torch.uint8).cpu() != expected).nonzero()
    assert mismatch.numel() == 0, (
        f"{mismatch.shape[0]} bytes differ, first at {mismatch[0].tolist()}: "
        f"x={x[tuple(mismatch[0])]!r}"
    )
    assert_matches_cpu_up_to_nan_sign(got.view(torch.uint8).cpu(), x, cs, s)


@pytest.mark.parametrize("m,k", ((70000, 8), (65535, 8), (3, 8)))
def test_input_quant_many_short_rows(sfm, m, k):
    """Small inputs run one grid row per input row, up to 65535 rows; more rows fall
    back to the flat kernel."""
    gen = torch.Generator().manual_seed(m)
    x = quant_inputs(m, k, gen)
    cs = (torch.rand(k, generator=gen) + 0.5).to(torch.bfloat16)
    s = torch.tensor([0.37], dtype=torch.float32)
    got = sfm.channel_scale_quantize_fp8_static_bf16(x.cuda(), cs.cuda(), s.cuda())
    assert torch.equal(got.view(torch.uint8).cpu(), ref_quant(x, cs, s))


def test_input_quant_every_bf16_value(sfm):
    """All 65536 bf16 bit patterns, with non-power-of-two channel and tensor scales."""
    x = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    x = x.reshape(-1, 256)
    for cs_val, s_val in ((1.0, 1.0), (1.5, 0.3), (0.7, 7.1), (3.0, 1 / 448)):
        cs = torch.full((256,), cs_val, dtype=torch.bfloat16)
        s = torch.tensor(s_val, dtype=torch.float32)
        got = sfm.channel_scale_quantize_fp8_static_bf16(x.cuda(), cs.cuda(), s.cuda())
        assert torch.equal(got.view(torch.uint8).cpu(), ref_quant(x, cs, s))
        assert_matches_cpu_up_to_nan_sign(got.view(torch.uint8).cpu(), x, cs, s)


def bracket_straddles_fp8_boundary(x, cs, s) -> torch.Tensor:
    """Elements whose bracket [rn(v * y_lo), rn(v * y_hi)] (input_quant.cuh: v = x * cs,
    y = 1 / s scaled by 1 -+ 2^-20) holds an FP8 rounding boundary: there the kernel
    must take the IEEE division."""
    v = x.float() * cs.float()
    y = (1.0 / s.double()).float()
    lo = q(v * (y * (1 - 2.0**-20))).view(torch.uint8)
    hi = q(v * (y * (1 + 2.0**-20))).view(torch.uint8)
    return lo != hi


def near_midpoint_inputs(scale_value: float, m: int, k: int):
    """x, cs, s whose products x * cs / s spread over the FP8 normal range, so that many
    lie near an FP8 rounding boundary."""
    gen = torch.Generator().manual_seed(int(scale_value * 1e4))
    x = (torch.randn(m, k, generator=gen) * 0.6 * scale_value
         * torch.exp2(torch.randint(-6, 8, (m, 1), generator=gen).float())).to(torch.bfloat16)
    cs = (torch.rand(k, generator=gen) * 1.5 + 0.5).to(torch.bfloat16)
    return x, cs, torch.tensor(scale_value, dtype=torch.float32)


@pytest.mark.parametrize("scale_value", (0.37, 0.3, 7.1))  # scales with many straddles
def test_input_quant_near_fp8_midpoints(sfm, scale_value):
    """Random products near every FP8 rounding boundary, where the kernel's bracketing
    multiplies cannot decide and it takes the IEEE division: bytes must still match."""
    x, cs, s = near_midpoint_inputs(scale_value, 2048, 4096)
    near = bracket_straddles_fp8_boundary(x, cs, s)
    assert near.sum() >= 20, "the inputs no longer exercise the fallback"
    got = sfm.channel_scale_quantize_fp8_static_bf16(x.cuda(), cs.cuda(), s.cuda())
    expected = ref_quant(x, cs, s)
    bad = got.view(torch.uint8).cpu() != expected
    assert not bad.any(), f"{int(bad.sum())} bytes differ ({int((bad & near).sum())} near a midpoint)"


@pytest.mark.parametrize("scale_value", (0.37, 0.3, 7.1))
def test_input_quant_near_fp8_midpoints_small_calls(sfm, scale_value):
    """The same near-boundary inputs in calls of 16 rows, which run the small-M kernel
    (one chunk per thread on a row grid; the large calls above run the vector kernel):
    bytes must match on every row, straddling elements included."""
    x, cs, s = near_midpoint_inputs(scale_value, 2048, 4096)
    near = bracket_straddles_fp8_boundary(x, cs, s)
    assert near.sum() >= 20, "the inputs no longer exercise the boundaries"
    xd, csd, sd = x.cuda(), cs.cuda(), s.cuda()
    got = torch.cat([sfm.channel_scale_quantize_fp8_static_bf16(xd[i:i + 16], csd, sd)
                     for i in range(0, x.shape[0], 16)])
    bad = got.view(torch.uint8).cpu() != ref_quant(x, cs, s)
    assert not bad.any(), f"{int(bad.sum())} bytes differ ({int((bad & near).sum())} near a midpoint)"


def edge_and_random_scales() -> list[float]:
    """Scales at the edges of the bracket's range [2^-126, 2^126] and of [2^-80, 2^80]
    (beyond which the small-M kernel's exact-quotient fallback hands over to the IEEE
    division), significands of all ones, powers of two, and random ones."""
    gen = torch.Generator().manual_seed(77)
    edges = [2.0**-80, 2.0**80, 2.0**-80 * (1 - 2.0**-24), 2.0**80 * (1 + 2.0**-23),
             2.0**-100, 2.0**100, 2.0**-126, 2.0**126]
    all_ones = [(2 - 2.0**-23) * 2.0**e for e in (-60, -7, 0, 3, 41)]
    random = (torch.exp2(torch.rand(16, generator=gen) * 40 - 20)).tolist()
    return edges + all_ones + [0.5, 1.0, 448.0, -0.37] + random


def test_input_quant_every_bf16_value_many_scales(sfm):
    """All 65536 bf16 bit patterns (one small-M call per scale) against every scale of
    edge_and_random_scales, with a random bf16 channel scale per column."""
    x = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    x = x.reshape(-1, 256)
    gen = torch.Generator().manual_seed(78)
    cs = (torch.rand(256, generator=gen) * 3 + 0.01).to(torch.bfloat16)
    xd, csd = x.cuda(), cs.cuda()
    for s_val in edge_and_random_scales():
        s = torch.tensor(s_val, dtype=torch.float32)
        got = sfm.channel_scale_quantize_fp8_static_bf16(xd, csd, s.cuda()).view(torch.uint8).cpu()
        expected = ref_quant(x, cs, s)
        bad = (got != expected).nonzero()
        assert bad.numel() == 0, (f"scale {s_val!r}: {bad.shape[0]} bytes differ, first at "
                                  f"{bad[0].tolist()}: x={x[tuple(bad[0])]!r}")


@pytest.mark.parametrize("layout", ("column_slice", "transposed", "3d", "offset"))
def test_input_quant_strided_inputs(sfm, layout):
    gen = torch.Generator().manual_seed(3)
    base = quant_inputs(64, 512, gen).cuda()
    if layout == "column_slice":
        x = base[:, 128:384]
    elif layout == "transposed":
        x = base[:, :64].t()
    elif layout == "3d":
        x = base.reshape(4, 16, 512)[:, ::2]
    else:  # starts 2 bytes into its storage: scalar path
        x = base.view(-1)[1:1 + 63 * 512].reshape(63, 512)
    k = x.shape[-1]
    cs = (torch.rand(k, generator=gen) + 0.5).to(torch.bfloat16).cuda()
    s = torch.tensor(0.61, device="cuda")
    got = sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s)
    assert got.shape == x.shape
    assert torch.equal(got.view(torch.uint8).cpu(), ref_quant(x.cpu(), cs.cpu(), s.cpu()))


def run_layers(layers, fp8_outputs, in_graph: bool):
    """Runs `layers()` eagerly, or captures it in a CUDA graph (after a warm-up on a side
    stream), poisons its FP8 outputs and replays the graph once."""
    if not in_graph:
        layers()
        return
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        layers()  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        layers()
    for o in fp8_outputs:
        o.view(torch.uint8).fill_(0x7F)
    graph.replay()


@pytest.mark.parametrize("m", (1, 16, 50))
@pytest.mark.parametrize("in_graph", (False, True))
def test_gated_layers_hand_off_through_input_quant(sfm, m, in_graph):
    """The decode hand-offs (twenty-third session): a down GEMM whose weights stream from
    DRAM, and its reduce kernel, let the next kernel launch as they start, and the next
    gated gate/up GEMM loads its weights before its wait. Four GeGLU layers at the
    benchmark's decode shape (K = N = 2048, H = 16384: the swap-AB path, workspace at
    M = 1, clusters at 16 and 50) chained through the input quant, each layer's FP8 input
    the quantised output of the layer before, the bf16 output in one reused buffer
    poisoned before each layer, no synchronisation: a kernel that read its activations
    before the one it waits for completed would see poison or another layer's data."""
    gen = torch.Generator(device="cuda").manual_seed(23 + m)
    k, h, n = GEGLU_DECODE
    cases = [gated_case(m, k, h, n, "gelu_tanh", False, generator=gen) for _ in range(4)]
    cs = (torch.rand(n, device="cuda", generator=gen) + 0.5).to(torch.bfloat16)
    s = torch.tensor(1 / 64, device="cuda")
    y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
    xs = [cases[0].input.clone()] + [torch.empty(m, k, dtype=FP8, device="cuda") for _ in cases]

    def layer_args(i):  # a layer's input scale is the quant scale of the layer before
        c = cases[i]
        return (xs[i], c.gate_up_weight, c.down_weight, c.input_scale if i == 0 else s,
                c.gate_up_weight_scale, c.hidden_scale, c.down_weight_scale)

    def layers():
        for i in range(len(cases)):
            y.fill_(float("nan"))
            sfm.fp8_geglu_mlp_bf16(*layer_args(i), out=y)
            sfm.channel_scale_quantize_fp8_static_bf16(y, cs, s, out=xs[i + 1])

    run_layers(layers, xs[1:], in_graph)
    torch.cuda.synchronize()
    for i in range(len(cases)):
        args = layer_args(i)
        got_y = sfm.fp8_geglu_mlp_bf16(*args)  # deterministic: the bytes layers() produced
        assert_close_to_reference(got_y, sfm.reference.gated_mlp(*args, "gelu_tanh"))
        expected_q = ref_quant(got_y.cpu(), cs.cpu(), s.cpu())
        assert torch.equal(xs[i + 1].view(torch.uint8).cpu(), expected_q), i


def cuda_kernel_names(fn) -> list[str]:
    """The names of the kernels one eager call of fn launches (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [e.key for e in prof.key_averages()]


# The input quant kernel each M of the hand-off test takes (input_quant::launch) on a
# 132-SM H100 / H200: one chunk per thread while M x K / 8 chunks fit one wave of
# 132 x 1024, the scalar kernel for y[:, 1:] (2 bytes off alignment), else the vector one.
QUANT_KERNEL_AT = {1: "quantize_rows_kernel", 50: "quantize_scalar_kernel", 600: "quantize_vec_kernel"}


@pytest.mark.parametrize("m", tuple(QUANT_KERNEL_AT))
@pytest.mark.parametrize("in_graph", (False, True))
def test_input_quant_reads_the_previous_kernels_output(sfm, m, in_graph):
    """Input quant is a programmatic dependent launch: it may be scheduled while the
    kernel before it runs, and must wait for it before reading. Here that kernel is a
    GeGLU MLP's down GEMM with its weights from DRAM (K = N = 2048, H = 16384), which
    lets the next kernel launch as it starts (swap_gemm::triggers_next: the swap-AB down
    GEMM over a workspace and its reduce kernel at M = 1, in clusters at 50 and 600;
    tests/test_dispatch_rules.py), and it writes the very bytes input quant reads (a
    layer's output into the next layer's quant). Five layers back to back into one
    reused buffer, no synchronisation in between; a quant that read early would see
    poison or the previous layer's output. Each M takes another quant kernel
    (QUANT_KERNEL_AT, checked by name on 132-SM GPUs). Until the thirty-third session
    this test ran a dense 512x1536 MLP, whose L2-resident down GEMM no longer lets the
    next kernel launch early at 50 and 700 tokens, and its M = 50 took the one-chunk
    kernel, not the vector one."""
    gen = torch.Generator(device="cuda").manual_seed(5 + m)
    k, h, n = GEGLU_DECODE
    cases = [gated_case(m, k, h, n, "gelu_tanh", m == 50, generator=gen) for _ in range(5)]
    y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
    quant_in = (lambda t: t[:, 1:]) if QUANT_KERNEL_AT[m] == "quantize_scalar_kernel" else (lambda t: t)
    kq = quant_in(y).shape[1]
    cs = (torch.rand(kq, device="cuda", generator=gen) + 0.5).to(torch.bfloat16)
    s = torch.tensor(0.37, device="cuda")
    outs = [torch.empty(m, kq, dtype=FP8, device="cuda") for _ in cases]

    def layers():
        for c, o in zip(cases, outs):
            y.fill_(float("nan"))
            sfm.fp8_geglu_mlp_bf16(*c.args(), out=y)
            sfm.channel_scale_quantize_fp8_static_bf16(quant_in(y), cs, s, out=o)

    run_layers(layers, outs, in_graph)
    for c, o in zip(cases, outs):
        got_y = sfm.fp8_geglu_mlp_bf16(*c.args())  # deterministic: the same bytes as in layers()
        assert_close_to_reference(got_y, sfm.reference.gated_mlp(*c.args(), "gelu_tanh"))
        expected_q = ref_quant(quant_in(got_y).cpu(), cs.cpu(), s.cpu())
        assert torch.equal(o.view(torch.uint8).cpu(), expected_q)
    if not in_graph and torch.cuda.get_device_properties(0).multi_processor_count == 132:
        names = cuda_kernel_names(lambda: sfm.channel_scale_quantize_fp8_static_bf16(quant_in(y), cs, s))
        assert any(QUANT_KERNEL_AT[m] in name for name in names), names


# --------------------------------------------------------------------------- MLPs


@pytest.mark.parametrize("m", M_GRID)
@pytest.mark.parametrize("shape", GATED_SHAPES)
@pytest.mark.parametrize("activation", ("silu", "gelu_tanh"))
@pytest.mark.parametrize("per_row", (False, True))
def test_gated_mlp_matches_reference(sfm, m, shape, activation, per_row):
    k, h, n = shape
    gen = torch.Generator(device="cuda").manual_seed(m + k + per_row)
    case = gated_case(m, k, h, n, activation, per_row, generator=gen)
    fn = sfm.fp8_swiglu_mlp_bf16 if activation == "silu" else sfm.fp8_geglu_mlp_bf16
    ref_fn = getattr(sfm.reference, fn.__name__)
    out = poisoned_bf16((m, n))
    got = fn(*case.args(), out=out)
    assert got.data_ptr() == out.data_ptr()
    assert_close_to_reference(got, ref_fn(*case.args()))


@pytest.mark.parametrize("m", M_GRID)
@pytest.mark.parametrize("shape", DENSE_SHAPES)
@pytest.mark.parametrize("per_row", (False, True))
def test_gelu_mlp_matches_reference(sfm, m, shape, per_row):
    k, h, n = shape
    gen = torch.Generator(device="cuda").manual_seed(m + k + 17 * per_row)
    case = dense_case(m, k, h, n, per_row, generator=gen)
    got = sfm.fp8_gelu_mlp_bf16(*case.args(), out=poisoned_bf16((m, n)))
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*case.args()))


@pytest.mark.parametrize("paths", [("small_m", "small_m"), ("large_m", "large_m"),
                                   ("small_m", "large_m"), ("large_m", "small_m")])
@pytest.mark.parametrize("m", (1, 33, 300))
def test_every_gemm_path(sfm, paths, m):
    gen = torch.Generator(device="cuda").manual_seed(m)
    for activation in ("silu", "gelu_tanh"):
        case = gated_case(m, 512, 1024, 256, activation, True, generator=gen)
        got = sfm._gated_mlp_with_paths(activation, paths, *case.args(), out=poisoned_bf16((m, 256)))
        assert_close_to_reference(got, sfm.reference.gated_mlp(*case.args(), activation))
    dcase = dense_case(m, 512, 1024, 256, False, generator=gen)
    got = sfm._gelu_mlp_with_paths(paths, *dcase.args(), out=poisoned_bf16((m, 256)))
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


def is_hopper() -> bool:
    return torch.cuda.get_device_capability() == (9, 0)


@pytest.mark.parametrize("m", (1, 50, 64, 65, 127, 128, 129, 191, 300, 1000, 1300))
@pytest.mark.parametrize("per_row", (False, True))
@pytest.mark.parametrize("path", ("tensor_core_tma", "tensor_core_tall_64", "tensor_core_tall_128",
                                  "tensor_core_tall_192"))
def test_tensor_core_tma_path(sfm, m, per_row, path):
    """The Hopper wgmma/TMA GEMMs, forced for every GEMM, also where auto would not pick them
    (the wide 64-token CTA shape for small M and, gate/up GEMMs, M = 129-192; the tall
    128-token one elsewhere, whose weight
    rows, 64, 128 or 192, are picked by tile count or forced). The CTAs are persistent: at
    M = 1000 and 1300 each loops over several output tiles, partial ones included
    (H = 4304 is a multiple of neither 96 nor 192: partial weight tiles)."""
    paths = (path, path)
    gen = torch.Generator(device="cuda").manual_seed(1000 + m)
    # K = 1152 and H = 4304 leave partial 128-byte K tiles and partial N tiles
    for activation in ("silu", "gelu_tanh"):
        case = gated_case(m, 1152, 4304, 1152, activation, per_row, generator=gen)
        run = lambda: sfm._gated_mlp_with_paths(activation, paths, *case.args(),
                                                out=poisoned_bf16((m, 1152)))
        if not is_hopper():
            with pytest.raises(RuntimeError, match="launching"):
                run()
            return
        assert_close_to_reference(run(), sfm.reference.gated_mlp(*case.args(), activation))
    dcase = dense_case(m, 1152, 4304, 1152, per_row, generator=gen)
    got = sfm._gelu_mlp_with_paths(paths, *dcase.args(), out=poisoned_bf16((m, 1152)))
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


@pytest.mark.parametrize("m", (769, 897, 1001, 2049))
def test_padded_hidden_rows_on_auto(sfm, m):
    """H = 4304 is not a whole number of 128-byte K tiles: where the wgmma kernel runs both
    GEMMs (auto, here from 769 or 897 tokens), the hidden state's rows are padded to 4352
    bytes (hopper::padded_hidden_pitch; which M, tests/test_dispatch_rules.py). Dense MLPs
    of two widths and a gated one against the reference; odd M leaves a partial last
    token tile, and the padding (never written) must never be read: a freed block of FP8
    NaN bytes of the padded hidden's size goes back to torch's caching allocator before
    each call, for the hidden to be allocated from."""
    gen = torch.Generator(device="cuda").manual_seed(5000 + m)

    def free_nan_block():
        torch.full((m, 4352), 0x7F, dtype=torch.uint8, device="cuda")  # freed at once

    for k, n in ((1152, 1152), (1536, 1536)):
        dcase = dense_case(m, k, 4304, n, m % 2 == 1, generator=gen)
        out = poisoned_bf16((m, n))
        free_nan_block()
        got = sfm.fp8_gelu_mlp_bf16(*dcase.args(), out=out)
        assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))
    check_gated_auto(sfm, m, (1152, 4304, 1152), gen, m % 2 == 0, before_call=free_nan_block)


@pytest.mark.parametrize("m", (1, 65, 100, 128))
@pytest.mark.parametrize("path", ("tensor_core_tall_128", "tensor_core_tall_192"))
@pytest.mark.parametrize("h", (4288, 4304))
def test_gate_up_pairs_sharing_the_token_tile(sfm, m, path, h):
    """K >= 4096 and one token tile: the gated gate/up GEMM's tall CTAs run in pairs that
    multicast their token tile (wgmma_gemm::share_x). H = 4288 / 4304 give an odd number
    of 64- or 96-column tiles (4288 / 64, 4304 / 96), so the last pair's second tile lies
    past H (zero-filled loads, masked stores), and partial tiles otherwise."""
    if not is_hopper():
        pytest.skip("wgmma kernels: sm_90 only")
    gen = torch.Generator(device="cuda").manual_seed(3000 + m + h)
    for activation in ("silu", "gelu_tanh"):
        case = gated_case(m, 4096, h, 512, activation, m % 2 == 1, generator=gen)
        got = sfm._gated_mlp_with_paths(activation, (path, "auto"), *case.args(),
                                        out=poisoned_bf16((m, 512)))
        assert_close_to_reference(got, sfm.reference.gated_mlp(*case.args(), activation))


def check_gated_auto(sfm, m, shape, gen, per_row_scales, before_call=None):
    """A gated MLP of `shape` (K, H, N) on the auto paths, SwiGLU and GeGLU, inputs from
    `gen`, against the reference; before_call (if any) runs after the inputs and the
    poisoned output are allocated, just before each call."""
    k, h, n = shape
    for activation in ("silu", "gelu_tanh"):
        case = gated_case(m, k, h, n, activation, per_row_scales, generator=gen)
        fn = sfm.fp8_swiglu_mlp_bf16 if activation == "silu" else sfm.fp8_geglu_mlp_bf16
        out = poisoned_bf16((m, n))
        if before_call is not None:
            before_call()
        got = fn(*case.args(), out=out)
        assert_close_to_reference(got, sfm.reference.gated_mlp(*case.args(), activation))


def check_dense_auto(sfm, m, shape, gen, per_row_scales):
    """A dense GELU MLP of `shape` (K, H, N) on the auto paths, inputs from `gen`, into a
    poisoned output, against the reference."""
    k, h, n = shape
    dcase = dense_case(m, k, h, n, per_row_scales, generator=gen)
    got = sfm.fp8_gelu_mlp_bf16(*dcase.args(), out=poisoned_bf16((m, n)))
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


@pytest.mark.parametrize("m", (1, 5, 8, 16, 17, 40, 64, 65, 100, 128, 129, 150, 192, 193, 224, 240))
def test_auto_paths_at_mid_m(sfm, m):
    """The auto GEMMs at M = 1-240 where the weights stream from DRAM: H = 8464 gives the
    gated gate/up GEMM 133 tiles of 128 weight rows (the last one partial), enough to take
    the swap-AB kernel on a 132-SM GPU (at M <= 64 only with K = 1152; two token tiles
    above 192), and the down GEMMs (N x H = 17 MB, N = 2048) the swap-AB split-K one up to
    M = 192. The dense up GEMM (67 tiles) never takes it at K = 4096 (the streaming kernel
    to M = 16, the wgmma tiles above); at K = 1152 its 9.7 MB of weights count as
    L2-resident, so up to M = 64 it runs the L2 kernels, the swap-AB one from M = 8
    (from 40 before the thirtieth session; M = 5 and 8 are both sides of the edge).
    K = 4096 and 1152 (a K tail)."""
    h, n = 8464, 2048
    gen = torch.Generator(device="cuda").manual_seed(5000 + m)
    for k in (4096, 1152):
        check_gated_auto(sfm, m, (k, h, n), gen, m % 2 == 1)
        check_dense_auto(sfm, m, (k, h, n), gen, m % 2 == 0)


@pytest.mark.parametrize("m", (3, 4, 7, 8, 9, 16, 17, 32, 33, 39, 40))
@pytest.mark.parametrize("shape", ((1152, 4304, 1152), (768, 3072, 768), (1536, 6144, 1536)))
def test_auto_l2_resident_dense_decode(sfm, m, shape):
    """Vision-tower MLPs (weights L2-resident) at 3-40 tokens on auto: the warp kernel to
    7 tokens (8 for the aligned towers' down GEMMs), the up GEMM on the swap-AB kernel from 8
    where K <= 1152 (1536x6144's from 33, thirty-sixth session), SigLIP's 1152x4304 down
    GEMM too (K = 4304 not a whole K tile), the aligned towers' down GEMMs from 33
    (thirtieth and thirty-first sessions; before, both from 40): both sides of each edge,
    per-tensor and per-row weight scales."""
    gen = torch.Generator(device="cuda").manual_seed(9100 + m + shape[0])
    check_dense_auto(sfm, m, shape, gen, m % 2 == 1)


@pytest.mark.parametrize("m", (3, 4, 8, 9, 16, 33, 64, 65, 128, 129, 257))
@pytest.mark.parametrize("shape", ((896, 4864, 896), (1152, 6912, 1152), (576, 1536, 576)))
def test_auto_l2_resident_gated_decode(sfm, m, shape):
    """Small LLMs' gated MLPs (Qwen2.5-0.5B 896x4864, Gemma-3-1B 1152x6912, SmolLM2-135M
    576x1536 with a K tail; weights L2-resident) on auto: both GEMMs on the swap-AB kernel
    (the down GEMM over a workspace) from 9 tokens to 64, the warp kernel below
    (thirty-eighth session); the gate/up GEMM on it to 128 tokens, and 1152x6912's (its
    tiles nearly fill the GPU) to 512, the wgmma tiles otherwise (thirty-ninth session):
    both activations, both sides of each edge."""
    gen = torch.Generator(device="cuda").manual_seed(9300 + m + shape[0])
    check_gated_auto(sfm, m, shape, gen, m % 2 == 0)


@pytest.mark.parametrize(("shape", "m"), (((2048, 8192, 2048), 65), ((2048, 8192, 2048), 200),
                                          ((2048, 8192, 2048), 511),
                                          ((2048, 16384, 2048), 400), ((2048, 16384, 2048), 512),
                                          ((2048, 16384, 2048), 768), ((4096, 14336, 4096), 257),
                                          ((4096, 14336, 4096), 384), ((4096, 14336, 4096), 521),
                                          ((2048, 16384, 2048), 1041)))
def test_auto_swap_ab_above_192(sfm, shape, m):
    """Above 192 tokens auto runs the gated gate/up GEMM on the swap-AB kernel to 384
    tokens (K <= 2048: to 512; two or three even token tiles), and the down GEMM on it
    with its K splits in clusters where that fills the GPU and the wgmma tiles would not
    split K: GeGLU (N = 2048) at M = 577-768, SwiGLU (N = 4096) at 257-384 (each token
    tile's splits one cluster). Above 512 the gate/up GEMM where the swap-AB tiles pad
    less (M = 521: 3 x 176; 1041: 6 x 176), the down GEMM on the wgmma tiles. The
    benchmark's gated shapes, both activations; and Llama-3.2-1B's 2048x8192, whose
    gate/up tiles (128) nearly fill the GPU, from 65 to 512 (thirty-ninth session)."""
    gen = torch.Generator(device="cuda").manual_seed(7000 + m)
    check_gated_auto(sfm, m, shape, gen, m % 2 == 0)


SWIGLU_SHAPE = (4096, 14336, 4096)  # the benchmark's SwiGLU MLP (K, H, N)


@pytest.mark.parametrize("m", (1, 16, 33, 48, 49, 64, 65))
def test_auto_swap_ab_gate_up_k4096(sfm, m):
    """Up to 64 tokens the gated gate/up GEMM with K = 4096 (SwiGLU's) takes the swap-AB
    kernel's small token tiles (8-64 rows, deep ring) and its down GEMM the swap-AB kernel
    over a workspace (in clusters from 40); from 65 the larger tiles: both sides of the
    edges (to 48 tokens before the twenty-fifth session)."""
    gen = torch.Generator(device="cuda").manual_seed(8200 + m)
    check_gated_auto(sfm, m, SWIGLU_SHAPE, gen, m % 2 == 0)


@pytest.mark.parametrize("m", (1, 2, 39, 41, 64))
def test_auto_swap_ab_down_n4096(sfm, m):
    """The down GEMM with N = 4096 (SwiGLU's) takes the swap-AB kernel with its K splits in
    clusters from 2 tokens (from 40 before the twenty-fifth session; before the
    twenty-fourth, the split-K wgmma tiles), at 1 over a workspace and a reduce kernel:
    both sides of the edges."""
    gen = torch.Generator(device="cuda").manual_seed(8100 + m)
    check_gated_auto(sfm, m, SWIGLU_SHAPE, gen, m % 2 == 1)


@pytest.mark.parametrize("m", (1, 8, 16, 17, 32, 33, 47, 48, 49, 56, 63, 64, 65, 100, 129, 191, 192,
                               193, 250, 400))
@pytest.mark.parametrize("shape", ((4096, 2048, 512), (1152, 4304, 1152), (1040, 1536, 768)))
@pytest.mark.parametrize("down_path", ("tensor_core_swap_ab", "tensor_core_swap_ab_cluster"))
def test_swap_ab_path(sfm, m, shape, down_path):
    """The swap-AB wgmma GEMMs (weights x every token, the down GEMM split over K),
    forced for both GEMMs; the down GEMM's splits reduced over a workspace and a reduce
    kernel, or in clusters over distributed shared memory. Token tiles of M rounded up to
    8 below 64 (8-56 rows: each of wgmma N = 8, 16, 24, 32, 40, 48, 56 taken, full or
    with padding), 64-192 (M = 64-192), two of 112 and
    128 at M = 193 and 250, three
    of 144 at M = 400 (one cluster per token tile and weight tile); H = 4304 and 1536
    leave partial weight tiles (4304: also a down-GEMM K tail inside a K tile), K = 1152
    and 1040 end inside a K tile."""
    check_forced_paths(sfm, ("tensor_core_swap_ab", down_path), m, shape, 2600,
                       hopper_only=True)


def check_forced_paths(sfm, paths, m, shape, seed, hopper_only):
    """Both MLP families (SwiGLU/GeGLU, dense GELU with per-tensor and per-row weight
    scales) with both GEMMs forced onto `paths`, against the reference. A Hopper-only
    path must refuse elsewhere."""
    k, h, n = shape
    gen = torch.Generator(device="cuda").manual_seed(seed + m + k + n)
    for activation in ("silu", "gelu_tanh"):
        case = gated_case(m, k, h, n, activation, m % 2 == 1, generator=gen)
        run = lambda: sfm._gated_mlp_with_paths(activation, paths, *case.args(),
                                                out=poisoned_bf16((m, n)))
        if hopper_only and not is_hopper():
            with pytest.raises(RuntimeError, match="launching"):
                run()
            return
        assert_close_to_reference(run(), sfm.reference.gated_mlp(*case.args(), activation))
    for per_row in (False, True):
        dcase = dense_case(m, k, h, n, per_row, generator=gen)
        got = sfm._gelu_mlp_with_paths(paths, *dcase.args(), out=poisoned_bf16((m, n)))
        assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


@pytest.mark.parametrize("m", (1, 5, 16, 17, 40, 100))
@pytest.mark.parametrize("shape", ((1152, 4304, 1152), (1152, 4304, 256), (4096, 2048, 512),
                                   (1024, 8192, 2048)))
def test_weight_stream_path(sfm, m, shape):
    """The Hopper persistent weight-streaming GEMMs, forced for every GEMM. The shapes
    cover a K tail inside a stage (1152 = 2.25 stages), a K tail inside a 128-byte block
    (4304: one TMA box per block), several tiles per CTA (H = 4304), cluster split-K
    (N = 256 and 512: fewer tiles than half the SMs), 16- and 32-token tiles and several
    token tiles (M = 40, 100). The 64-row tiles multiply with wgmma, narrower ones with
    mma.sync: the down GEMM of (1024, 8192, 2048) plans 32-row tiles (the GeGLU decode
    down GEMM's choice), the others 64-row ones."""
    check_forced_paths(sfm, ("weight_stream", "weight_stream"), m, shape, 2000, hopper_only=True)


@pytest.mark.parametrize("m", (1, 5, 16, 17, 32, 50, 100))
@pytest.mark.parametrize("shape", ((1152, 4304, 1152), (1040, 1536, 768), (4096, 2048, 512)))
def test_warp_stream_path(sfm, m, shape):
    """The register-streaming warp GEMMs (sm_89+), forced for both GEMMs. K = 1040 and the
    down GEMM's K = 4304 end inside a 64-byte step; H = 4304 leaves the last CTA partly
    empty (538 row groups); M = 5, 16 and 32 fill 8-, 16- and 32-token CTAs partly or
    wholly, M = 50 and 100 take several token tiles (grid.y) with a partial last one;
    K = 4096 gives a K slice several chunks of steps."""
    check_forced_paths(sfm, ("warp_stream", "warp_stream"), m, shape, 4000, hopper_only=False)


def test_warp_stream_path_refuses_x_too_long_for_shared_memory(sfm):
    """32 tokens x K = 8192 do not fit in shared memory: a forced warp path must fail
    loudly (auto never picks it then)."""
    dcase = dense_case(32, 8192, 256, 128, False)
    with pytest.raises(RuntimeError, match="launching the up GEMM"):
        sfm._gelu_mlp_with_paths(("warp_stream", "auto"), *dcase.args())
    got = sfm.fp8_gelu_mlp_bf16(*dcase.args())
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


@pytest.mark.parametrize("m", (1, 17, 33, 50, 64, 100, 128, 129, 300))
@pytest.mark.parametrize("shape", ((1152, 4304, 1152), (1040, 1536, 768), (4096, 2048, 512),
                                   (1024, 7168, 256)))
def test_tensor_core_stream_path(sfm, m, shape):
    """The Hopper register-sourced wgmma GEMMs (weights in registers, x in shared memory,
    K split over a cluster), forced for both GEMMs. 32-, 64- and 128-token CTAs, partly
    filled (M = 17, 33, 100) or full (64, 128), several token tiles (129, 300); K = 1040
    and the down GEMM's K = 4304 end inside a 64-byte step; H = 4304 leaves the last row
    block partly empty; K = 4096 / 2048 gives 8-CTA clusters; the down GEMM of H = 7168
    gives K slices of two register chunks and several promotion groups."""
    check_forced_paths(sfm, ("tensor_core_stream", "tensor_core_stream"), m, shape, 5000,
                       hopper_only=True)


def test_tensor_core_stream_path_refuses_x_slice_too_long_for_shared_memory(sfm):
    """128 tokens x K = 16384 need 32 K steps per CTA even in 8-CTA clusters (256 KB of x):
    a forced path must fail loudly (auto never picks it then)."""
    if not is_hopper():
        pytest.skip("Hopper-only path")
    dcase = dense_case(128, 16384, 256, 128, False)
    with pytest.raises(RuntimeError, match="launching the up GEMM"):
        sfm._gelu_mlp_with_paths(("tensor_core_stream", "auto"), *dcase.args())
    got = sfm.fp8_gelu_mlp_bf16(*dcase.args())
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


@pytest.mark.parametrize("m", (1, 33, 50, 64, 100, 256, 300))
@pytest.mark.parametrize("shape", ((1152, 4304, 1152), (1024, 4096, 256), (2048, 16384, 2048)))
@pytest.mark.parametrize("split_path", ("tensor_core_split_k", "tensor_core_split_k_cluster",
                                        "tensor_core_swap_ab", "tensor_core_swap_ab_cluster"))
def test_tensor_core_split_k_down_gemm(sfm, m, shape, split_path):
    """The Hopper split-K wgmma down GEMM, forced: fp32 partials in a workspace and a
    reduce kernel with scales and bias, or the splits of a tile in one cluster reducing
    over distributed shared memory; auto picks one of them when the down GEMM has few
    output tiles. The same two reductions for the swap-AB down GEMM. K = 4304 ends in a partial K tile; N = 1152 in a partial 256-row tile;
    M = 100 and 300 in partial token tiles. On a 132-SM H200 the workspace path runs 3,
    5, 6, 8 and 16 splits here (not only multiples of the reduce's batch of 4), the
    cluster path 1 to 8."""
    k, h, n = shape
    paths = ("auto", split_path)
    gen = torch.Generator(device="cuda").manual_seed(3000 + m + n)
    case = gated_case(m, k, h, n, "silu", m % 2 == 0, generator=gen)
    run = lambda: sfm._gated_mlp_with_paths("silu", paths, *case.args(), out=poisoned_bf16((m, n)))
    if not is_hopper():
        with pytest.raises(RuntimeError, match="launching"):
            run()
        return
    assert_close_to_reference(run(), sfm.reference.gated_mlp(*case.args(), "silu"))
    dcase = dense_case(m, k, h, n, True, generator=gen)
    got = sfm._gelu_mlp_with_paths(paths, *dcase.args(), out=poisoned_bf16((m, n)))
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


@pytest.mark.parametrize("m", (1, 16, 50, 300))
def test_back_to_back_calls_read_their_own_hidden(sfm, m):
    """GEMM2 may start before GEMM1 ends (programmatic dependent launch) and each call's
    hidden buffer reuses the previous call's memory: a GEMM2 that read x too early would
    reproduce the previous call's MLP. Five calls, no synchronisation in between."""
    gen = torch.Generator(device="cuda").manual_seed(31 + m)
    cases = [gated_case(m, 2048, 8192, 1024, "silu", False, generator=gen) for _ in range(5)]
    outs = [sfm.fp8_swiglu_mlp_bf16(*c.args(), out=poisoned_bf16((m, 1024))) for c in cases]
    dcases = [dense_case(m, 2048, 8192, 1024, True, generator=gen) for _ in range(5)]
    douts = [sfm.fp8_gelu_mlp_bf16(*c.args(), out=poisoned_bf16((m, 1024))) for c in dcases]
    for c, o in zip(cases, outs):
        assert_close_to_reference(o, sfm.reference.gated_mlp(*c.args(), "silu"))
    for c, o in zip(dcases, douts):
        assert_close_to_reference(o, sfm.reference.fp8_gelu_mlp_bf16(*c.args()))


@pytest.mark.parametrize("m", (16, 100, 150, 300, 700))
@pytest.mark.parametrize("activation", ("silu", "gelu_tanh"))
def test_long_k_accuracy(sfm, m, activation):
    """Real model sizes: K = 4096 and H = 14336 (the down projection's K). Long
    reductions are where limited accumulator precision shows (Hopper's FP8 wgmma
    accumulates with fewer bits than fp32), so check them on every path auto picks."""
    gen = torch.Generator(device="cuda").manual_seed(77 + m)
    case = gated_case(m, 4096, 14336, 512, activation, False, generator=gen)
    fn = sfm.fp8_swiglu_mlp_bf16 if activation == "silu" else sfm.fp8_geglu_mlp_bf16
    got = fn(*case.args(), out=poisoned_bf16((m, 512)))
    assert_close_to_reference(got, sfm.reference.gated_mlp(*case.args(), activation))
    dcase = dense_case(m, 2048, 16384, 512, True, generator=gen)
    got = sfm.fp8_gelu_mlp_bf16(*dcase.args(), out=poisoned_bf16((m, 512)))
    assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*dcase.args()))


def test_leading_dims_and_noncontiguous_input(sfm):
    gen = torch.Generator(device="cuda").manual_seed(5)
    case = gated_case(24, 256, 512, 256, "silu", False, generator=gen)
    x3 = case.input.reshape(2, 12, 256)
    got = sfm.fp8_swiglu_mlp_bf16(x3, *case.args()[1:])
    assert got.shape == (2, 12, 256)
    ref = sfm.reference.fp8_swiglu_mlp_bf16(case.input, *case.args()[1:])
    assert_close_to_reference(got.reshape(24, 256), ref)
    wide = torch.empty(24, 512, dtype=torch.uint8, device="cuda").view(FP8)
    wide[:, 256:] = case.input
    strided = wide[:, 256:]
    assert not strided.is_contiguous()
    got = sfm.fp8_swiglu_mlp_bf16(strided, *case.args()[1:])
    assert_close_to_reference(got, ref)


def test_different_gate_and_up_scales_via_per_row(sfm):
    """Gate and up projections quantised separately: a [2H] scale fuses them exactly."""
    gen = torch.Generator(device="cuda").manual_seed(11)
    case = gated_case(40, 256, 512, 256, "silu", False, generator=gen)
    h = 512
    scales = torch.cat([torch.full((h,), 0.002, device="cuda"), torch.full((h,), 0.0007, device="cuda")])
    args = list(case.args())
    args[4] = scales
    got = sfm.fp8_swiglu_mlp_bf16(*args)
    assert_close_to_reference(got, sfm.reference.fp8_swiglu_mlp_bf16(*args))


def test_bad_arguments_on_gpu(sfm):
    case = gated_case(8, 256, 512, 256, "silu", False)
    args = list(case.args())
    with pytest.raises(ValueError, match="gate_up_weight_scale"):
        sfm.fp8_swiglu_mlp_bf16(*args[:4], torch.ones(3, device="cuda"), *args[5:])
    with pytest.raises(ValueError, match="hidden_scale"):
        sfm.fp8_swiglu_mlp_bf16(*args[:5], torch.ones(2, device="cuda"), args[6])
    with pytest.raises(ValueError, match="down_weight"):
        sfm.fp8_swiglu_mlp_bf16(args[0], args[1], args[2][:, :256], *args[3:])
    misaligned = torch.empty(8 * 256 + 1, dtype=torch.uint8, device="cuda")[1:].view(FP8).reshape(8, 256)
    misaligned.copy_(case.input)
    with pytest.raises(RuntimeError, match="`input` data must be 16-byte aligned"):
        sfm.fp8_swiglu_mlp_bf16(misaligned, *args[1:])
    with pytest.raises(ValueError, match="`out`"):
        sfm.fp8_swiglu_mlp_bf16(*args, out=torch.empty(8, 255, dtype=torch.bfloat16, device="cuda"))


def _on_cuda(args):
    return [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]


def test_argument_errors_on_cuda_name_the_argument(sfm):
    """Eager CUDA calls go to the native op before the Python checks (they run only once
    it refuses): every bad argument of the CPU error tables still gets the same
    ValueError naming it, and a valid call still runs."""
    from test_endpoint_errors import DENSE_ERRORS, GATED_ERRORS, dense_args, gated_args

    for index, bad, message in GATED_ERRORS:
        args = _on_cuda(gated_args())
        args[index] = bad.cuda() if isinstance(bad, torch.Tensor) else bad
        for fn in (sfm.fp8_swiglu_mlp_bf16, sfm.fp8_geglu_mlp_bf16):
            with pytest.raises(ValueError, match=message):
                fn(*args)
    for index, bad, message in DENSE_ERRORS:
        args = _on_cuda(dense_args())
        args[index] = bad.cuda()
        with pytest.raises(ValueError, match=message):
            sfm.fp8_gelu_mlp_bf16(*args)
    with pytest.raises(ValueError, match=r"N \(down_weight.shape\[0\]\) must be a multiple of 16"):
        sfm.fp8_gelu_mlp_bf16(*_on_cuda(dense_args(n=20)))
    args = _on_cuda(dense_args())
    args[5] = torch.tensor(1.0)  # input_scale on the CPU
    with pytest.raises(ValueError, match=r"`input_scale` must be on the same device as `input`"):
        sfm.fp8_gelu_mlp_bf16(*args)
    x = torch.randn(4, 16, device="cuda").bfloat16()
    with pytest.raises(ValueError, match=r"`channel_scale` must be of shape \[K\] = \[16\]"):
        sfm.channel_scale_quantize_fp8_static_bf16(x, torch.ones(8, dtype=torch.bfloat16, device="cuda"),
                                                   torch.tensor(1.0, device="cuda"))
    for args in (gated_args(), dense_args()):  # valid: runs (N = 16, finite output)
        fn = sfm.fp8_swiglu_mlp_bf16 if len(args) == 7 else sfm.fp8_gelu_mlp_bf16
        assert torch.isfinite(fn(*_on_cuda(args)).float()).all()


# --------------------------------------------------------------------------- capture / compile


FIRST_CALL_IN_GRAPH = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {tests!r})
    from kernel_loader import load_kernel_module
    from mlp_cases import gated_case, dense_case
    sfm = load_kernel_module({variant!r})
    torch.manual_seed(0)
    m, (k, h, n), paths = {m}, {shape}, {paths!r}
    dev = torch.device({device!r})
    torch.cuda.set_device(dev)   # the process's CUDA work all on this device
    g = gated_case(m, k, h, n, "silu", True, device=dev)
    d = dense_case(m, k, h, n, False, device=dev)
    xb = torch.randn(m, k, device=dev).bfloat16()
    cs = torch.ones(k, device=dev, dtype=torch.bfloat16)
    s = torch.tensor(0.02, device=dev)

    def gated(name, activation):   # auto (the public endpoint) or both GEMMs forced
        if paths is None:
            return getattr(sfm, "fp8_%s_mlp_bf16" % name)(*g.args())
        return sfm._gated_mlp_with_paths(activation, paths, *g.args())

    def dense():
        if paths is None:
            return sfm.fp8_gelu_mlp_bf16(*d.args())
        return sfm._gelu_mlp_with_paths(paths, *d.args())

    outs = {{}}
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph):   # the very first call of every endpoint
            outs["q"] = sfm.channel_scale_quantize_fp8_static_bf16(xb, cs, s)
            outs["swiglu"] = gated("swiglu", "silu")
            outs["geglu"] = gated("geglu", "gelu_tanh")
            outs["gelu"] = dense()
    for o in outs.values():
        o.view(torch.uint8).fill_(0x7F)   # poison, then replay must rewrite everything
    graph.replay()
    torch.cuda.synchronize()
    r = sfm.reference
    assert torch.equal(outs["q"].view(torch.uint8), r.channel_scale_quantize_fp8_static_bf16(xb, cs, s).view(torch.uint8))
    for name, case in (("swiglu", g), ("geglu", g), ("gelu", d)):
        ref = getattr(r, "fp8_%s_mlp_bf16" % name)(*case.args())
        assert outs[name].device == dev, (name, outs[name].device)
        err = r.relative_error(outs[name], ref)
        assert err < 1e-2, (name, err)
    print("GRAPH-OK")
    """
)


def run_first_call_in_graph(variant_dir, case, device):
    script = FIRST_CALL_IN_GRAPH.format(tests=str(Path(__file__).parent), variant=str(variant_dir),
                                        m=case.m, shape=case.shape, paths=case.paths, device=device)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "GRAPH-OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", CAPTURE_CASES, ids=[c.id for c in CAPTURE_CASES])
def test_cuda_graph_capture_of_first_call(kernel_variant_dir, case):
    """Each kernel family's very first call inside a CUDA-graph capture (tests/capture_cases.py
    says which case reaches which kernel); poisoned outputs, then one replay against the
    reference."""
    if case.paths is not None and not is_hopper():
        pytest.skip("forced Hopper kernels")
    run_first_call_in_graph(kernel_variant_dir, case, "cuda:0")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second CUDA device")
@pytest.mark.parametrize("case_id", ("auto-rs", "auto-swap-cluster", "auto-wgmma-pairs",
                                     "auto-split-k-cluster"))
def test_cuda_graph_capture_of_first_call_on_second_device(kernel_variant_dir, case_id):
    """A process whose only CUDA work is on device 1: every per-device cache (attributes,
    cluster occupancy, multiprocessor count) is filled for device 1 inside the capture."""
    case = next(c for c in CAPTURE_CASES if c.id == case_id)
    run_first_call_in_graph(kernel_variant_dir, case, "cuda:1")


def test_torch_compile_fullgraph(sfm):
    torch._dynamo.reset()
    g = gated_case(33, 256, 512, 256, "gelu_tanh", False)
    d = dense_case(33, 256, 512, 256, True)
    xb = torch.randn(33, 256, device="cuda").bfloat16()
    cs = torch.ones(256, device="cuda", dtype=torch.bfloat16)
    s = torch.tensor(0.03, device="cuda")

    def pipeline(xb, cs, s, g_args, d_args):
        xq = sfm.channel_scale_quantize_fp8_static_bf16(xb, cs, s)
        y1 = sfm.fp8_geglu_mlp_bf16(*g_args)
        y2 = sfm.fp8_gelu_mlp_bf16(*d_args)
        return xq, y1, y2

    compiled = torch.compile(pipeline, fullgraph=True)
    eager = pipeline(xb, cs, s, g.args(), d.args())
    got = compiled(xb, cs, s, g.args(), d.args())
    assert torch.equal(got[0].view(torch.uint8), eager[0].view(torch.uint8))
    assert torch.equal(got[1], eager[1]) and torch.equal(got[2], eager[2])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second CUDA device")
def test_second_device(sfm):
    with torch.cuda.device(0):  # current device 0, tensors on device 1
        # gated 256x512: warp, register-sourced wgmma (and the swap-AB down GEMM at 50),
        # persistent wgmma; dense 1152x4304: warp, swap-AB (L2-resident), wgmma up GEMM
        # with the swap-AB down GEMM to 896 tokens, then the down GEMM's CTA pairs (1300)
        for m in (1, 17, 50, 300, 600, 1300):
            g = gated_case(m, 256, 512, 256, "silu", True, device="cuda:1")
            got = sfm.fp8_swiglu_mlp_bf16(*g.args())
            assert got.device == torch.device("cuda:1")
            assert_close_to_reference(got, sfm.reference.fp8_swiglu_mlp_bf16(*g.args()))
            d = dense_case(m, 1152, 4304, 1152, False, device="cuda:1")
            got = sfm.fp8_gelu_mlp_bf16(*d.args())
            assert got.device == torch.device("cuda:1")
            assert_close_to_reference(got, sfm.reference.fp8_gelu_mlp_bf16(*d.args()))
        for m in (1, 16, 50):  # swap-AB from DRAM: workspace at 1, clusters from 2
            k, h, n = GEGLU_DECODE
            g = gated_case(m, k, h, n, "gelu_tanh", m == 16, device="cuda:1")
            got = sfm.fp8_geglu_mlp_bf16(*g.args())
            assert got.device == torch.device("cuda:1")
            assert_close_to_reference(got, sfm.reference.fp8_geglu_mlp_bf16(*g.args()))
        for paths, m in ((("weight_stream", "weight_stream"), 9), (("warp_stream", "warp_stream"), 9),
                         (("tensor_core_stream", "tensor_core_stream"), 50)):
            g = gated_case(m, 256, 512, 256, "silu", False, device="cuda:1")
            got = sfm._gated_mlp_with_paths("silu", paths, *g.args())
            assert_close_to_reference(got, sfm.reference.fp8_swiglu_mlp_bf16(*g.args()))
        xb = torch.randn(5, 64, device="cuda:1").bfloat16()
        cs = torch.ones(64, device="cuda:1", dtype=torch.bfloat16)
        s = torch.tensor(0.5, device="cuda:1")
        assert torch.equal(
            sfm.channel_scale_quantize_fp8_static_bf16(xb, cs, s).view(torch.uint8).cpu(),
            ref_quant(xb.cpu(), cs.cpu(), s.cpu()),
        )


def test_covered_archs_includes_this_device(sfm):
    major, minor = torch.cuda.get_device_capability()
    assert f"{major}." in sfm.covered_archs()
