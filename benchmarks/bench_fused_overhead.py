#!/usr/bin/env python3
"""Host time a fused module adds per call, over calling the kernel functions directly.

A fused module's forward checks, on every call, that the fused path still applies (the
layers it skips are the ones fused and carry no hooks, the gate/up tensors are the ones
its [gate; up] buffer was built from, input dtype/device/shape, eval mode, no grad) and
then calls the input-quant and MLP endpoints. This script times that Python work: each
MLP layout is fused with kernel functions that do nothing (they return a preallocated
output), and `module(x)` is timed against the same two endpoint calls made directly with
the same tensors. The difference is what the registry costs per call on this host, with
no kernel launch in either (`--build DIR` times the real kernels instead: then both
columns include the launches, timed without synchronising inside a batch of calls
short enough for the launch queue, i.e. the host's issue time).

    python3 benchmarks/bench_fused_overhead.py --out /tmp/overhead        # CPU, no-op kernels
    python3 benchmarks/bench_fused_overhead.py --device cuda --build .gpu-tune/head/<variant> --out $OUT/overhead

Writes `fused_overhead.json` and `fused_overhead.md` under --out and prints the table.
Not a test: nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for sub in ("registry", "tests"):
    if str(REPO / sub) not in sys.path:
        sys.path.insert(0, str(REPO / sub))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from static_fp8_mlp_registry import StaticFP8Linear, fuse_static_fp8_mlps  # noqa: E402
from static_fp8_mlp_registry.contract import ENDPOINTS  # noqa: E402

PROG = "bench_fused_overhead.py"
QUANT = "channel_scale_quantize_fp8_static_bf16"


class GatedMLP(nn.Module):
    """Llama's MLP layout: separate gate and up projections."""

    def __init__(self, K: int, H: int, act: nn.Module):
        super().__init__()
        self.gate_proj, self.up_proj = StaticFP8Linear(K, H), StaticFP8Linear(K, H)
        self.down_proj = StaticFP8Linear(H, K)
        self.act_fn = act

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class MergedGatedMLP(nn.Module):
    """Phi-3's layout: one gate_up_proj whose output is chunked into gate and up."""

    def __init__(self, K: int, H: int, act: nn.Module):
        super().__init__()
        self.gate_up_proj, self.down_proj = StaticFP8Linear(K, 2 * H), StaticFP8Linear(H, K)
        self.activation_fn = act

    def forward(self, x):
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(self.activation_fn(gate) * up)


class DenseMLP(nn.Module):
    """SigLIP's layout: fc1 -> tanh-GELU -> fc2, with biases."""

    def __init__(self, K: int, H: int, act: nn.Module):
        super().__init__()
        self.fc1, self.fc2 = StaticFP8Linear(K, H, bias=True), StaticFP8Linear(H, K, bias=True)
        self.activation_fn = act

    def forward(self, x):
        return self.fc2(self.activation_fn(self.fc1(x)))


# (name, module class, activation, endpoint, K, H). Host time does not depend on the
# shape; these are small enough that the real kernels (a few µs each) never hold the
# host back, so --build times the host and not the GPU.
CASES = (
    ("swiglu gate_proj+up_proj", GatedMLP, lambda: nn.SiLU(), "fp8_swiglu_mlp_bf16", 1024, 2048),
    ("swiglu gate_up_proj", MergedGatedMLP, lambda: nn.SiLU(), "fp8_swiglu_mlp_bf16", 1024, 2048),
    ("geglu gate_proj+up_proj", GatedMLP, lambda: nn.GELU(approximate="tanh"), "fp8_geglu_mlp_bf16", 1024, 2048),
    ("gelu fc1/fc2", DenseMLP, lambda: nn.GELU(approximate="tanh"), "fp8_gelu_mlp_bf16", 1152, 4304),
)


def noop_kernels(device: torch.device, max_rows: int, max_k: int) -> types.ModuleType:
    """A kernel module whose endpoints return preallocated outputs (no work, no launch)."""
    mod = types.ModuleType("_static_fp8_mlp_noop")
    xq = torch.empty(max_rows * max_k, dtype=torch.float8_e4m3fn, device=device)
    y = torch.empty(max_rows * max_k, dtype=torch.bfloat16, device=device)

    def quant(input, channel_scale, scale, *, out=None):
        return xq[: input.numel()].view(input.shape)

    def mlp(input, *args, out=None):
        return y[: input.numel()].view(input.shape)

    mod.__dict__[QUANT] = quant
    for name in ENDPOINTS:
        if name != QUANT:
            mod.__dict__[name] = mlp
    return mod


def real_kernels(build: str) -> types.ModuleType:
    from kernel_loader import load_kernel_module

    return load_kernel_module(Path(build))


def fill_random(mlp: nn.Module, seed: int) -> None:
    """Fresh random FP8 weights and positive scales, so no shape or value is special."""
    gen = torch.Generator().manual_seed(seed)
    for layer in mlp.modules():
        if isinstance(layer, StaticFP8Linear):
            w = torch.randn(layer.weight.shape, generator=gen) * 64
            layer.weight.data.copy_(w.clamp(-448, 448).to(torch.float8_e4m3fn))
            layer.weight_scale.data.fill_(0.01)
            layer.input_scale.data.fill_(0.02)
            if layer.bias is not None:
                layer.bias.data.copy_(torch.randn(layer.bias.shape, generator=gen).to(layer.bias.dtype))
    if isinstance(mlp, GatedMLP):  # gate and up share one static input scale, as the kernels require
        mlp.up_proj.input_scale.data.copy_(mlp.gate_proj.input_scale.data)


def direct_call(mlp: nn.Module, kernels: types.ModuleType, endpoint: str):
    """The two endpoint calls the fused module makes, with the tensors it passes."""
    quant, fn = getattr(kernels, QUANT), getattr(kernels, endpoint)
    if isinstance(mlp, DenseMLP):
        fc1, fc2 = mlp.fc1, mlp.fc2
        ones = torch.ones(fc1.in_features, dtype=torch.bfloat16, device=fc1.weight.device)
        b1, b2 = fc1.bias.bfloat16(), fc2.bias.bfloat16()

        def call(x):
            return fn(quant(x, ones, fc1.input_scale), fc1.weight, b1, fc2.weight, b2, fc1.input_scale,
                      fc1.weight_scale, fc2.input_scale, fc2.weight_scale)
        return call
    if isinstance(mlp, MergedGatedMLP):
        gu, down = mlp.gate_up_proj, mlp.down_proj
        w, s = gu.weight, gu.weight_scale
    else:
        gu, down = mlp.gate_proj, mlp.down_proj
        w = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        s = mlp.gate_proj.weight_scale.reshape(1)
    ones = torch.ones(gu.in_features, dtype=torch.bfloat16, device=w.device)

    def call(x):
        return fn(quant(x, ones, gu.input_scale), w, down.weight, gu.input_scale, s, down.input_scale,
                  down.weight_scale)
    return call


def time_us(fn, x, *, calls: int, batches: int) -> tuple[float, float]:
    """(best, median) over `batches` of the mean host time of `calls` back-to-back calls:
    the best is the headline (a busy host only ever adds time). On CUDA
    each batch starts on an idle device, and `calls` must leave the launch queue room
    (100 calls is 300 launches): a full queue would time the GPU instead of the host."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda *a: None)
    for _ in range(calls):
        fn(x)
    per_call = []
    for _ in range(batches):
        sync(x.device)
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn(x)
        per_call.append((time.perf_counter_ns() - t0) / calls / 1e3)
    return min(per_call), statistics.median(per_call)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Host time per call, µs: the best of {meta['batches']} batches of {meta['calls']} calls (median in brackets); "
        f"kernels: {meta['kernels']}; device: {meta['device']}; host: {meta['host']}; torch {meta['torch']}.",
        "",
        "| MLP layout | K x H | M | direct endpoint calls | fused module | registry overhead |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['K']} x {r['H']} | {r['M']} | {r['direct_us']:.2f} "
                     f"({r['direct_median_us']:.2f}) | {r['fused_us']:.2f} ({r['fused_median_us']:.2f}) | "
                     f"{r['overhead_us']:+.2f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="device of the modules and inputs (default cpu)")
    p.add_argument("--build", help="a built variant to time instead of no-op kernels (needs --device cuda)")
    p.add_argument("--checks-first", action="store_true",
                   help="run the endpoints' Python checks before every op call, as every call did "
                        "before the thirty-sixth session (default: the build's own rule)")
    p.add_argument("--m", default="1,128", help="comma-separated token counts (default 1,128)")
    p.add_argument("--calls", type=int, help="calls per timed batch (default 2000; 100 on CUDA, see time_us)")
    p.add_argument("--batches", type=int, default=15, help="timed batches (default 15)")
    p.add_argument("--out", required=True, help="directory for fused_overhead.json and .md")
    args = p.parse_args(argv)
    try:
        args.m = [int(v) for v in args.m.split(",")]
    except ValueError:
        p.error(f"--m: expected comma-separated integers, got {args.m!r}")
    if any(m < 1 for m in args.m):
        p.error(f"--m: token counts must be >= 1, got {args.m}")
    if args.calls is None:
        args.calls = 100 if args.device.startswith("cuda") else 2000
    if args.calls < 1 or args.batches < 1:
        p.error("--calls and --batches must be >= 1")
    if args.checks_first and not args.build:
        p.error("--checks-first applies to a real build: pass --build")
    if args.build and not args.device.startswith("cuda"):
        p.error("--build runs the real kernels: pass --device cuda")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"{PROG}: error: --device {args.device}: CUDA is not available", file=sys.stderr)
        return 2
    max_k = max(c[4] for c in CASES)
    kernels = real_kernels(args.build) if args.build else noop_kernels(device, max(args.m), max_k)
    if args.checks_first:
        if not hasattr(kernels, "_checks_deferred"):
            print(f"{PROG}: error: --checks-first: {args.build} predates deferred checks (it runs them first)",
                  file=sys.stderr)
            return 2
        kernels._checks_deferred = lambda input, out: False
    rows = []
    for i, (layout, cls, act, endpoint, K, H) in enumerate(CASES):
        mlp = cls(K, H, act())
        fill_random(mlp, seed=i)
        mlp = mlp.to(device).eval()
        family = "dense_gelu_mlp" if endpoint == "fp8_gelu_mlp_bf16" else "gated_mlp"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = fuse_static_fp8_mlps(
                mlp, {"static_quantized_mlp": {"input_quant": "local/noop", family: "local/noop"}},
                strict=True, smoke_test=False, check_arch=False, devices=(device.type,),
                kernel_modules={"input_quant": kernels, family: kernels})
        if len(report.fused) != 1:
            print(f"{PROG}: error: {layout} was not fused:\n{report}", file=sys.stderr)
            return 1
        direct = direct_call(mlp, kernels, endpoint)
        for M in args.m:
            x = torch.randn(M, K, device=device).bfloat16()
            with torch.inference_mode():
                d, d_med = time_us(direct, x, calls=args.calls, batches=args.batches)
                f, f_med = time_us(mlp, x, calls=args.calls, batches=args.batches)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            rows.append({"layout": layout, "endpoint": endpoint, "K": K, "H": H, "M": M,
                         "direct_us": d, "fused_us": f, "overhead_us": f - d,
                         "direct_median_us": d_med, "fused_median_us": f_med})
            print(f"{PROG}: {layout} M={M}: direct {d:.2f} µs, fused {f:.2f} µs", file=sys.stderr, flush=True)
    meta = {
        "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "host": f"{platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "torch": torch.__version__,
        "kernels": (args.build or "no-op (preallocated outputs)") + (", checks first" if args.checks_first else ""),
        "calls": args.calls,
        "batches": args.batches,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fused_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    table = markdown(rows, meta)
    (out / "fused_overhead.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
