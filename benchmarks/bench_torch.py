"""Torch side of the benchmark: timers, ceilings, problem generation, the baseline paths.

Baselines (what users run without this kernel, BASELINES.md):
- `bf16_*`: BF16 `F.linear` MLP (cuBLAS) on the dequantized weights;
- `split_*`: the static FP8 split path in torch ops: quantize x with the static scale,
  `torch._scaled_mm` to bf16 with the scalar scales, activation and re-quantize in torch
  ops, `torch._scaled_mm` for the down projection (with the biases for the dense MLP);
  with per-row (channel-wise) weight scales, `torch._scaled_mm`'s row-wise mode (the
  activation scale repeated per token, the weight scales per output column);
- the same `split_*` functions under `torch.compile(fullgraph=True)`, where Inductor fuses
  activation + quantize into one Triton kernel between the two `_scaled_mm`s.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
BF16 = torch.bfloat16


# ------------------------------------------------------------------ timing


@dataclass
class Timing:
    us: float  # median µs per call
    batches_us: list[float]  # µs per call of each timed replay
    calls: int  # calls captured per graph (or per timed batch on the CPU)


def rotations(names: list[str], batches: int) -> list[list[str]]:
    """The replay order of each timed batch when several paths are timed together: the
    names rotated by one per batch, so that no path always runs first (clock and power
    state drift within a run: timed one after the other, the same path moved by a few
    percent between neighbouring rows, benchmarks/RESULTS.md)."""
    return [names[b % len(names):] + names[:b % len(names)] for b in range(batches)] if names else []


def _only(results: dict) -> Timing:
    """The one path's Timing from time_interleaved, or the exception it returned, raised."""
    (result,) = results.values()
    if isinstance(result, BaseException):
        raise result
    return result


@dataclass
class GraphTimer:
    """Capture `calls` invocations of step(i) in one CUDA graph, replay it `warmup`
    times, then time `batches` replays with CUDA events; µs per call = median / calls.
    `calls` is chosen so one replay takes about `target_ms` (within [min_calls, max_calls]).
    time_interleaved() captures several steps first and alternates their timed replays."""

    batches: int = 5
    warmup: int = 2
    target_ms: float = 10.0
    min_calls: int = 3
    max_calls: int = 200
    eager_calls: int = 3  # eager warm-up calls, and again eager calls timed for the estimate

    def _capture(self, step) -> tuple[torch.cuda.CUDAGraph, int]:
        """Eager warm-up, a timed eager estimate, then `calls` calls captured in one graph
        and replayed `warmup` times."""
        cur = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(cur)
        with torch.cuda.stream(side):  # eager warm-up off the default stream, as capture wants
            for i in range(self.eager_calls):
                step(i)
        cur.wait_stream(side)
        torch.cuda.synchronize()
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        for i in range(self.eager_calls):
            step(i)
        e1.record()
        e1.synchronize()
        est_ms = max(e0.elapsed_time(e1) / self.eager_calls, 1e-3)
        calls = int(min(self.max_calls, max(self.min_calls, math.ceil(self.target_ms / est_ms))))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(calls):
                step(i)
        for _ in range(self.warmup):
            graph.replay()
        torch.cuda.synchronize()
        return graph, calls

    @staticmethod
    def _replay_us(graph: torch.cuda.CUDAGraph, calls: int) -> float:
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        graph.replay()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) * 1000.0 / calls

    def time(self, step) -> Timing:
        return _only(self.time_interleaved({"step": step}))

    def time_interleaved(self, steps: dict) -> dict:
        """Times several steps together: each is captured in its own graph, then every
        timed batch replays each graph once, in the order of rotations(). Returns name ->
        Timing, or name -> the exception its capture raised (the others still run)."""
        graphs, out = {}, {}
        try:
            for name, step in steps.items():
                try:
                    graphs[name] = self._capture(step)
                except Exception as exc:  # noqa: BLE001 - reported per path by the caller
                    out[name] = exc
            times = {name: [] for name in graphs}
            for order in rotations(list(graphs), self.batches):
                for name in order:
                    times[name].append(self._replay_us(*graphs[name]))
            for name, ts in times.items():
                out[name] = Timing(statistics.median(ts), ts, graphs[name][1])
        finally:
            graphs.clear()
        return out

    def for_slow_calls(self) -> "GraphTimer":
        """A lighter timer for calls that take a long time (a forced path far from its
        M range): one eager warm-up, one call per graph, one untimed and 3 timed replays."""
        return dataclasses.replace(self, batches=min(self.batches, 3), warmup=1, min_calls=1,
                                   max_calls=1, eager_calls=1)


@dataclass
class WallTimer:
    """CPU stand-in for GraphTimer (used by the CPU self-test only)."""

    batches: int = 3
    warmup: int = 1
    calls: int = 2

    def time(self, step) -> Timing:
        return _only(self.time_interleaved({"step": step}))

    def time_interleaved(self, steps: dict) -> dict:
        """As GraphTimer.time_interleaved, timing eager calls on the wall clock."""
        out = {}
        for name, step in list(steps.items()):
            try:
                for i in range(self.warmup + 1):
                    step(i)
            except Exception as exc:  # noqa: BLE001 - reported per path by the caller
                out[name] = exc
        live = [name for name in steps if name not in out]
        times = {name: [] for name in live}
        for order in rotations(live, self.batches):
            for name in order:
                t0 = time.perf_counter()
                for i in range(self.calls):
                    steps[name](i)
                times[name].append((time.perf_counter() - t0) * 1e6 / self.calls)
        for name, ts in times.items():
            out[name] = Timing(statistics.median(ts), ts, self.calls)
        return out

    def for_slow_calls(self) -> "WallTimer":
        return dataclasses.replace(self, batches=1, warmup=0, calls=1)


def measure_ceilings(device: str, timer, copy_mib: int, gemm_n: int) -> dict:
    """Copy bandwidth (bytes read + written per second, device-to-device copy of a large
    buffer) and the FP8 GEMM rate (torch._scaled_mm gemm_n^3 to bf16, per-tensor scales)."""
    nbytes = copy_mib * 2**20
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    src.random_(0, 255)
    dst = torch.empty_like(src)
    t_copy = timer.time(lambda i: dst.copy_(src))
    del src, dst
    g = torch.Generator(device=device).manual_seed(1234)
    a = torch.randn(gemm_n, gemm_n, device=device, generator=g).to(FP8)
    b = torch.randn(gemm_n, gemm_n, device=device, generator=g).to(FP8)
    one = torch.ones((), device=device)
    bt = b.t()
    t_gemm = timer.time(lambda i: torch._scaled_mm(a, bt, scale_a=one, scale_b=one,
                                                    out_dtype=BF16))
    del a, b, bt
    return {
        "copy_bytes_per_s": 2 * nbytes / (t_copy.us * 1e-6),
        "copy_buffer_bytes": nbytes,
        "copy_us": t_copy.us,
        "copy_batches_us": t_copy.batches_us,
        "fp8_flops_per_s": 2 * gemm_n**3 / (t_gemm.us * 1e-6),
        "fp8_gemm_n": gemm_n,
        "fp8_gemm_us": t_gemm.us,
        "fp8_gemm_batches_us": t_gemm.batches_us,
    }


# ------------------------------------------------------------------ the torch paths


def quant_static(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q(x / scale) as a user writes it in torch ops (fp32 division, saturate, cast)."""
    return torch.clamp(x.float() / scale, -FP8_MAX, FP8_MAX).to(FP8)


def _act(g: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "silu":
        return F.silu(g)
    return F.gelu(g, approximate="tanh")


def scaled_mm(a: torch.Tensor, weight: torch.Tensor, a_scale: torch.Tensor,
              weight_scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """bf16(a * a_scale @ (weight * weight_scale)^T + bias) with `torch._scaled_mm`: a
    per-tensor weight scale as is; a per-row one [rows] in the row-wise mode, which wants
    [M, 1] and [1, rows] fp32 scales (contiguous), so the scalar activation scale is
    repeated per token. The CPU's `_scaled_mm` has no row-wise mode: there (the CPU
    self-test only) a unit-scale product in fp32 is scaled instead."""
    if weight_scale.numel() == 1:
        return torch._scaled_mm(a, weight.t(), scale_a=a_scale, scale_b=weight_scale,
                                bias=bias, out_dtype=BF16)
    if a.device.type != "cuda":
        one = torch.ones((), device=a.device)
        acc = torch._scaled_mm(a, weight.t(), scale_a=one, scale_b=one, out_dtype=torch.float32)
        acc = acc * a_scale * weight_scale.reshape(1, -1)
        return (acc if bias is None else acc + bias.float()).to(BF16)
    sa, sb = rowwise_scales(a_scale, weight_scale, a.shape[0])
    return torch._scaled_mm(a, weight.t(), scale_a=sa, scale_b=sb, bias=bias, out_dtype=BF16)


def rowwise_scales(a_scale: torch.Tensor, weight_scale: torch.Tensor,
                   m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The row-wise `_scaled_mm` scales: [m, 1] (the scalar repeated) and [1, rows]."""
    return (a_scale.float().reshape(1, 1).expand(m, 1).contiguous(),
            weight_scale.float().reshape(1, -1).contiguous())


def split_gated(x, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
                hidden_scale, down_weight_scale, activation: str):
    """Static FP8 split path, gated: bf16 x [M, K] -> bf16 [M, N]."""
    h = down_weight.shape[1]
    xq = quant_static(x, input_scale)
    gu = scaled_mm(xq, gate_up_weight, input_scale, gate_up_weight_scale)
    hid = _act(gu[:, :h], activation) * gu[:, h:]
    hq = quant_static(hid, hidden_scale)
    return scaled_mm(hq, down_weight, hidden_scale, down_weight_scale)


def split_dense(x, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale,
                hidden_scale, down_weight_scale):
    """Static FP8 split path, dense GELU with biases: bf16 x [M, K] -> bf16 [M, N]."""
    xq = quant_static(x, input_scale)
    pre = scaled_mm(xq, up_weight, input_scale, up_weight_scale, up_bias)
    hq = quant_static(F.gelu(pre, approximate="tanh"), hidden_scale)
    return scaled_mm(hq, down_weight, hidden_scale, down_weight_scale, down_bias)


def bf16_gated(x, gate_up_weight, down_weight, activation: str):
    gu = F.linear(x, gate_up_weight)
    g, u = gu.chunk(2, dim=-1)
    return F.linear(_act(g, activation) * u, down_weight)


def bf16_dense(x, up_weight, up_bias, down_weight, down_bias):
    return F.linear(F.gelu(F.linear(x, up_weight, up_bias), approximate="tanh"),
                    down_weight, down_bias)


def torch_quant(x, channel_scale, scale):
    """The input-quant contract in torch ops: q(x * channel_scale / scale)."""
    return torch.clamp(x.float() * channel_scale.float() / scale, -FP8_MAX, FP8_MAX).to(FP8)


def configure_dynamo(recompile_limit: int = 64) -> None:
    """Only explicitly marked dims are dynamic (no automatic dynamic, no profile-guided
    state carried between runs), and enough cache entries for every shape and M."""
    cfg = torch._dynamo.config
    for name, value in (("automatic_dynamic_shapes", False),
                        ("automatic_dynamic_local_pgo", False),
                        ("automatic_dynamic_remote_pgo", False),
                        ("recompile_limit", recompile_limit),
                        ("cache_size_limit", recompile_limit),
                        ("accumulated_recompile_limit", 4096),
                        ("accumulated_cache_size_limit", 4096)):
        if hasattr(cfg, name):
            try:
                setattr(cfg, name, value)
            except (AttributeError, TypeError, ValueError):
                pass


def compile_fn(fn, static: bool):
    return torch.compile(fn, fullgraph=True, dynamic=False if static else None)


def input_for_compiled(x: torch.Tensor, dynamic_m: bool) -> torch.Tensor:
    """The compiled path's own copy of x. With dynamic_m, M (dim 0) is marked symbolic,
    so one compiled graph serves every M >= 2 (Dynamo always specialises M = 1, which
    gets its own graph). The marks live on the tensor object, hence the copy."""
    xc = x.clone()
    if dynamic_m and xc.shape[0] >= 2:
        torch._dynamo.mark_dynamic(xc, 0)
    return xc


# ------------------------------------------------------------------ problems


def _amax_scale(t: torch.Tensor) -> torch.Tensor:
    return (t.abs().amax().float().clamp_min(1e-6) / FP8_MAX).reshape(())


def _row_amax_scale(t: torch.Tensor) -> torch.Tensor:
    """Per-row (channel-wise) scales of a [rows, cols] weight: [rows] fp32."""
    return t.abs().amax(dim=1).float().clamp_min(1e-6) / FP8_MAX


def _per_row_view(scale: torch.Tensor) -> torch.Tensor:
    """A weight scale ([] or [rows]) shaped to multiply a [rows, cols] weight."""
    return scale if scale.numel() == 1 else scale.reshape(-1, 1)


def _q(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(v.float(), -FP8_MAX, FP8_MAX).to(FP8)


@dataclass
class WeightSet:
    """One copy of a shape's weights: FP8 + scales for the FP8 paths, dequantized bf16
    for the BF16 path. Copies share values but not memory (for weight rotation)."""

    w1: torch.Tensor  # fp8 [2H or H, K]
    w2: torch.Tensor  # fp8 [N, H]
    w1_bf16: torch.Tensor
    w2_bf16: torch.Tensor
    b1: torch.Tensor | None = None  # bf16 [H] (dense)
    b2: torch.Tensor | None = None  # bf16 [N] (dense)


@dataclass
class Weights:
    copies: list[WeightSet]
    w1_scale: torch.Tensor  # fp32 [] (per tensor) or [rows] (per row)
    w2_scale: torch.Tensor
    extra: dict = field(default_factory=dict)


def make_weights(shape, device: str, gen: torch.Generator, copies: int = 1,
                 per_row: bool = False) -> Weights:
    """Random weights quantized with per-tensor scales, or with per-row scales (each row
    its own amax: the scales differ between rows, so a path that ignored them is wrong)."""
    k, h, n = shape.k, shape.h, shape.n
    scale_of = _row_amax_scale if per_row else _amax_scale
    w1 = torch.randn(shape.gemm1_rows, k, device=device, generator=gen) / math.sqrt(k)
    s1 = scale_of(w1)
    w1q = _q(w1 / _per_row_view(s1))
    del w1
    w2 = torch.randn(n, h, device=device, generator=gen) / math.sqrt(h)
    s2 = scale_of(w2)
    w2q = _q(w2 / _per_row_view(s2))
    del w2
    b1 = b2 = None
    if not shape.gated:
        b1 = (0.1 * torch.randn(h, device=device, generator=gen)).to(BF16)
        b2 = (0.1 * torch.randn(n, device=device, generator=gen)).to(BF16)
    sets = []
    for c in range(copies):
        a1 = w1q if c == 0 else w1q.clone()
        a2 = w2q if c == 0 else w2q.clone()
        sets.append(WeightSet(
            a1, a2, (a1.float() * _per_row_view(s1)).to(BF16),
            (a2.float() * _per_row_view(s2)).to(BF16),
            None if b1 is None else (b1 if c == 0 else b1.clone()),
            None if b2 is None else (b2 if c == 0 else b2.clone())))
    return Weights(sets, s1, s2)


@dataclass
class Batch:
    x: torch.Tensor  # bf16 [M, K]
    xq: torch.Tensor  # fp8 [M, K] = reference quant of x with input_scale
    input_scale: torch.Tensor  # fp32 []
    hidden_scale: torch.Tensor  # fp32 []
    channel_scale: torch.Tensor  # bf16 ones [K]


def make_batch(shape, weights: Weights, m: int, device: str, gen: torch.Generator,
               reference) -> Batch:
    """bf16 activations, the input scale calibrated on them, their FP8 form from the
    reference quant, and the hidden scale calibrated on this batch's hidden values."""
    x = torch.randn(m, shape.k, device=device, generator=gen).to(BF16)
    xs = _amax_scale(x)
    ones = torch.ones(shape.k, dtype=BF16, device=device)
    xq = reference.channel_scale_quantize_fp8_static_bf16(x, ones, xs)
    w = weights.copies[0]
    a = xq.float() * xs
    pre = a @ (w.w1.float() * _per_row_view(weights.w1_scale)).T
    if shape.gated:
        hid = _act(pre[:, : shape.h], shape.activation) * pre[:, shape.h:]
    else:
        hid = F.gelu(pre + w.b1.float(), approximate="tanh")
    hs = _amax_scale(hid)
    del a, pre, hid
    return Batch(x, xq, xs, hs, ones)


def quant_inputs(k: int, seed: int, device: str) -> tuple[torch.Generator, torch.Tensor]:
    """The input-quant rows' data for one K: a generator seeded from (seed, K) and the
    bf16 channel scale drawn from it; quant_batch then draws each M's input from the same
    generator, M in the benchmark's order (scripts/quant_*_probe.py regenerate it so)."""
    gen = torch.Generator(device=device).manual_seed(seed * 1000003 + 7 * k + 1)
    cs = (torch.rand(k, device=device, generator=gen) * 1.5 + 0.25).to(BF16)
    return gen, cs


def quant_batch(gen: torch.Generator, cs: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An [m, K] bf16 input (3 x standard normal) from `gen` and the quant scale
    calibrated on it with the channel scale `cs`."""
    x = (torch.randn(m, cs.numel(), device=cs.device, generator=gen) * 3).to(BF16)
    return x, _amax_scale(x.float() * cs.float())


def ours_args(shape, weights: Weights, w: WeightSet, batch: Batch, xq=None) -> tuple:
    """Positional arguments of the endpoint (CONTRACT.md order)."""
    xq = batch.xq if xq is None else xq
    if shape.gated:
        return (xq, w.w1, w.w2, batch.input_scale, weights.w1_scale, batch.hidden_scale,
                weights.w2_scale)
    return (xq, w.w1, w.b1, w.w2, w.b2, batch.input_scale, weights.w1_scale,
            batch.hidden_scale, weights.w2_scale)


def split_call(shape, fn, weights: Weights, w: WeightSet, batch: Batch, x=None):
    x = batch.x if x is None else x
    if shape.gated:
        return fn(x, w.w1, w.w2, batch.input_scale, weights.w1_scale, batch.hidden_scale,
                  weights.w2_scale, shape.activation)
    return fn(x, w.w1, w.b1, w.w2, w.b2, batch.input_scale, weights.w1_scale,
              batch.hidden_scale, weights.w2_scale)


def bf16_call(shape, w: WeightSet, batch: Batch):
    if shape.gated:
        return bf16_gated(batch.x, w.w1_bf16, w.w2_bf16, shape.activation)
    return bf16_dense(batch.x, w.w1_bf16, w.b1, w.w2_bf16, w.b2)


def reference_mlp(shape, reference, weights: Weights, batch: Batch) -> torch.Tensor:
    args = ours_args(shape, weights, weights.copies[0], batch)
    return getattr(reference, shape.endpoint)(*args)


# ------------------------------------------------------------------ checks


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    den = torch.linalg.vector_norm(e).item()
    num = torch.linalg.vector_norm(a - e).item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def check_mlp(out: torch.Tensor, ref: torch.Tensor, tol: float) -> dict:
    """The contract's accuracy rule: shape/dtype, no NaN/inf where the reference is
    finite, ||out - ref|| / ||ref|| <= tol."""
    if tuple(out.shape) != tuple(ref.shape) or out.dtype != ref.dtype:
        return {"status": "FAIL", "rel_err": None,
                "message": f"got {out.dtype} {tuple(out.shape)}, expected {ref.dtype} {tuple(ref.shape)}"}
    finite = torch.isfinite(ref.float())
    bad = int((~torch.isfinite(out.float()) & finite).sum().item())
    err = rel_err(torch.where(finite, out.float(), 0.0), torch.where(finite, ref.float(), 0.0))
    if bad:
        return {"status": "FAIL", "rel_err": err,
                "message": f"{bad} NaN/inf where the reference is finite (rel err {err:.2e})"}
    if not err <= tol:
        return {"status": "FAIL", "rel_err": err, "message": f"rel err {err:.2e} > {tol:g}"}
    return {"status": "ok", "rel_err": err, "message": ""}


def check_bytes(out: torch.Tensor, ref: torch.Tensor) -> dict:
    if tuple(out.shape) != tuple(ref.shape) or out.dtype != ref.dtype:
        return {"status": "FAIL", "mismatches": None,
                "message": f"got {out.dtype} {tuple(out.shape)}, expected {ref.dtype} {tuple(ref.shape)}"}
    diff = int((out.view(torch.uint8) != ref.view(torch.uint8)).sum().item())
    if diff:
        return {"status": "FAIL", "mismatches": diff,
                "message": f"{diff} of {out.numel()} bytes differ from the reference"}
    return {"status": "ok", "mismatches": 0, "message": ""}


def poisoned(shape, dtype, device) -> torch.Tensor:
    if dtype == FP8:
        return torch.full(shape, 0x7F, dtype=torch.uint8, device=device).view(FP8)  # NaN
    return torch.full(shape, float("nan"), dtype=dtype, device=device)
