"""Quick tuning probe (not the benchmark suite): times our endpoints per forced GEMM path
as CUDA-graph replays and prints them next to the hardware floor and the
torch.compile numbers of ../shared/BASELINES.md (H200, 2026-11-21).

    python3 scripts/perf_probe.py --build .gpu-build [--m 1,16,...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kernel_loader import load_kernel_module  # noqa: E402
from mlp_cases import dense_case, gated_case  # noqa: E402

COPY_BW = 4.28e12  # bytes/s, BASELINES.md (H200)
FP8_RATE = 1464e12  # FLOP/s, BASELINES.md (H200)
COMPILE_US = {  # torch.compile static split path, BASELINES.md
    ("geglu", 16): 39.4, ("geglu", 512): 114.8, ("geglu", 8192): 1671.3,
    ("swiglu", 16): 55.8, ("swiglu", 512): 174.3, ("swiglu", 8192): 2620.2,
    ("gelu", 16): 13.5, ("gelu", 512): 26.8, ("gelu", 8192): 226.6,
}
SHAPES = {"geglu": (2048, 16384, 2048), "swiglu": (4096, 14336, 4096), "gelu": (1152, 4304, 1152),
          "gelu2": (1536, 6144, 1536),
          # off the benchmark grid: GEMM1 K rows not whole 128-byte lines, and its aligned twin
          "gelu_k4304": (4304, 1152, 4304), "gelu_k4352": (4352, 1152, 4352),
          # a ViT-B/SigLIP-base-sized tower: a narrower down GEMM (768 columns)
          "gelu_768": (768, 3072, 768),
          # SigLIP's unaligned H = 4304 under a wider (1536) tower: the down GEMM on the
          # wgmma tiles from 769 tokens
          "gelu_1536_4304": (1536, 4304, 1536),
          # a small gated MLP whose weights are L2-resident (Qwen2.5-0.5B's sizes; GELU
          # here, SwiGLU there: the kernels are the same)
          "geglu_896_4864": (896, 4864, 896),
          # ... Qwen3-0.6B's and Gemma-3-1B's (gate/up 6.3 and 15.9 MB, both L2-resident)
          "geglu_1024_3072": (1024, 3072, 1024), "geglu_1152_6912": (1152, 6912, 1152),
          # ... SmolLM2-135M's (K = 576: a K tail), and Llama-3.2-1B's (gate/up 32 MiB from
          # DRAM, down exactly 16 MiB: L2-resident by the dispatcher's bound)
          "geglu_576_1536": (576, 1536, 576), "geglu_2048_8192": (2048, 8192, 2048)}


def capture_graph(fn, reps=20) -> torch.cuda.CUDAGraph:
    """reps calls of fn in one CUDA graph (after 3 warm-up calls on a side stream),
    replayed once."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    g.replay()
    torch.cuda.synchronize()
    return g


def graph_time_us(fn, reps=20, batches=5) -> float:
    g = capture_graph(fn, reps)
    times = []
    for _ in range(batches):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1000 / reps)
    return sorted(times)[len(times) // 2]


def pair(path: str) -> tuple[str, str]:
    """"a/b" -> (a, b): GEMM1 and GEMM2 paths; "a" -> (a, a)."""
    a, _, b = path.partition("/")
    return a, b or a


def activation_of(kind: str) -> str:
    """The gated kinds' activation: swiglu -> silu, geglu -> gelu_tanh."""
    return "silu" if kind == "swiglu" else "gelu_tanh"


def probe_case(kind, m, per_row=False, generator=None):
    """The (kind, M) problem of SHAPES on fresh random inputs: a DenseCase or GatedCase."""
    k, h, n = SHAPES[kind]
    if kind.startswith("gelu"):
        return dense_case(m, k, h, n, per_row, generator=generator)
    return gated_case(m, k, h, n, activation_of(kind), per_row, generator=generator)


def probe_mlp(kind, m, per_row=False, generator=None, case=None):
    """The (kind, M) MLP of SHAPES on `case` (default: fresh random inputs, probe_case), as
    (call, reference): call(sfm, path, out=None) runs it with `path` forced ("a" or
    "gemm1/gemm2", see pair), reference(sfm) computes the contract's result with sfm's
    reference module."""
    case = case if case is not None else probe_case(kind, m, per_row, generator)
    if kind.startswith("gelu"):
        def call(sfm, path, out=None):
            return sfm._gelu_mlp_with_paths(pair(path), *case.args(), out=out)
        def reference(sfm):
            return sfm.reference.fp8_gelu_mlp_bf16(*case.args())
    else:
        act = activation_of(kind)
        def call(sfm, path, out=None):
            return sfm._gated_mlp_with_paths(act, pair(path), *case.args(), out=out)
        def reference(sfm):
            return sfm.reference.gated_mlp(*case.args(), act)
    return call, reference


def refusal(run) -> str | None:
    """Runs run(); the first line of the error if the endpoint refused the problem (a
    forced path a shape does not support), else None. A CUDA error is raised."""
    try:
        run()
    except RuntimeError as e:
        if isinstance(e, torch.AcceleratorError):
            raise
        return str(e).splitlines()[0]
    return None


def add_sweep_args(ap, m: str) -> None:
    """The arguments of the scripts that loop one build over kinds, batch sizes and paths."""
    ap.add_argument("--build", required=True)
    ap.add_argument("--kinds", default="gelu,gelu2,geglu,swiglu")
    ap.add_argument("--m", default=m)
    ap.add_argument("--paths", default="auto",
                    help='comma-separated, each "a" or "gemm1/gemm2" (memcheck_sweep: "all" too)')


def kernel_times_us(fn, reps=20) -> list[tuple[str, float]]:
    """Average device time per call of each kernel fn launches (torch.profiler, eager)."""
    import re
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    out = []
    for ev in prof.key_averages():
        if ev.device_type.name == "CUDA" and ev.count >= reps:
            name = re.sub(r"static_fp8_mlp::|\(anonymous namespace\)::|<unnamed>::", "", ev.key)
            out.append((name[:90], ev.device_time_total / reps))
    return out


def floor_us(kind, m):
    k, h, n = SHAPES[kind]
    rows1 = h if kind.startswith("gelu") else 2 * h
    wbytes = rows1 * k + n * h
    flops = 2 * m * (rows1 * k + n * h)
    return max(wbytes / COPY_BW, flops / FP8_RATE) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--m", default="1,16,50,128,512,2048,8192")
    ap.add_argument("--kinds", default="geglu,swiglu,gelu")
    ap.add_argument("--paths", default="auto,small_m,large_m,tensor_core_tma,weight_stream")
    ap.add_argument("--skip-quant", action="store_true")
    ap.add_argument("--kernels", action="store_true", help="also print per-kernel times (auto path)")
    ap.add_argument("--json")
    args = ap.parse_args()
    sfm = load_kernel_module(Path(args.build))
    ms = [int(x) for x in args.m.split(",")]
    paths = args.paths.split(",")
    rows = []
    for kind, (k, h, n) in SHAPES.items():
        if kind not in args.kinds.split(","):
            continue
        for m in ms:
            run, _ = probe_mlp(kind, m)
            out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
            call = lambda p: run(sfm, p, out)
            row = {"kind": kind, "m": m, "floor_us": floor_us(kind, m),
                   "compile_us": COMPILE_US.get((kind, m))}
            for p in paths:
                try:
                    row[p] = graph_time_us(lambda: call(p))
                except RuntimeError:
                    row[p] = None
                    torch.cuda.synchronize()
            if args.kernels:
                row["kernels"] = kernel_times_us(lambda: call(paths[0]))
                for name, us in row["kernels"]:
                    print(f"    {us:8.2f} us  {name}")
            rows.append(row)
            best = min(v for v in (row[p] for p in paths) if v)
            print(f"{kind:7s} M={m:5d} floor {row['floor_us']:8.1f}  " +
                  "  ".join(f"{p}={row[p]:8.1f}" if row[p] else f"{p}=   n/a  " for p in paths) +
                  f"  best%floor={100 * row['floor_us'] / best:5.1f}" +
                  (f"  compile={row['compile_us']}" if row['compile_us'] else ""), flush=True)
    # device-to-device copy ceiling by size (bytes read + written)
    for mib in (64, 256, 1024):
        src = torch.empty(mib << 20, dtype=torch.uint8, device="cuda").random_()
        dst = torch.empty_like(src)
        t = graph_time_us(lambda: dst.copy_(src), reps=10)
        bw = 2 * src.numel() / (t * 1e-6)
        rows.append({"kind": "copy", "mib": mib, "us": t, "bytes_per_s": bw})
        print(f"copy {mib:5d} MiB: {t:8.1f} us, {bw / 1e12:.2f} TB/s", flush=True)
        del src, dst
    for k in (() if args.skip_quant else (1152, 2048, 4096)):
        m = 16 * 1024 * 1024 // k * 2
        x = torch.randn(m, k, device="cuda").bfloat16()
        cs = torch.ones(k, device="cuda", dtype=torch.bfloat16)
        s = torch.tensor(0.01, device="cuda")
        o = torch.empty(m, k, dtype=torch.float8_e4m3fn, device="cuda")
        t = graph_time_us(lambda: sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=o), reps=10)
        bw = 3 * m * k / (t * 1e-6)
        rows.append({"kind": "quant", "m": m, "k": k, "us": t, "bytes_per_s": bw})
        print(f"quant  M={m} K={k}: {t:.1f} us, {bw / 1e12:.2f} TB/s = {100 * bw / COPY_BW:.0f}% of copy")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
