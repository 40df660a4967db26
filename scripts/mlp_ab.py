"""A/B timing of MLP endpoint variants in one process: several builds and/or forced GEMM
paths, on the same tensors, their CUDA graphs replayed in alternation.

Each variant is BUILD[:PATH] (PATH: perf_probe's syntax, "auto" or "gemm1/gemm2"), or
`compile`: the benchmark's torch.compile baseline (bench_torch.split_*, M marked dynamic)
on the same problem, its bf16 input dequantised from the FP8 one. For
every (kind, M) a graph of --reps calls is captured per variant, then --rounds rounds
replay each graph once, the variants' order rotating per round; the median µs per call
is printed per variant with its spread (min-max) and its difference to the first
variant. Interleaving is the point: between processes, and between graphs timed one
after the other, the same path moved by 1-3 µs at small M (benchmarks/RESULTS.md).
Each variant's output is checked against the contract reference first (rel err <= 1e-2).

    python3 scripts/mlp_ab.py --kinds gelu,gelu2 --m 100,128 .gpu-tune/base .gpu-build \\
        .gpu-build:tensor_core_tall_128/auto [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
from ab_verdict import COMPILE, CONTRACT_TOL  # noqa: E402  (torch-free; its verdicts read our JSON)
from bench_torch import rel_err  # noqa: E402  (the benchmark's contract check)
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import SHAPES, activation_of, capture_graph, probe_case, probe_mlp  # noqa: E402


def replay_us(g: torch.cuda.CUDAGraph, reps: int) -> float:
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    g.replay()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) * 1000 / reps


def compiled_split(kind: str, case, compiled: dict):
    """fn(out) running torch.compile's static FP8 split path on case's problem (out unused:
    the compiled graph allocates its own). One compiled function per kind, reused for
    every M, as in the benchmark."""
    import bench_torch
    dense = kind.startswith("gelu")
    if kind not in compiled:
        bench_torch.configure_dynamo()
        compiled[kind] = bench_torch.compile_fn(
            bench_torch.split_dense if dense else bench_torch.split_gated, static=False)
    fn = compiled[kind]
    x = (case.input.float() * case.input_scale).to(torch.bfloat16)
    xc = bench_torch.input_for_compiled(x, dynamic_m=True)
    rest = case.args()[1:] + (() if dense else (activation_of(kind),))
    return lambda out: fn(xc, *rest)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="+", help="BUILD[:PATH]")
    ap.add_argument("--kinds", default="gelu,gelu2")
    ap.add_argument("--m", default="65,100,128")
    ap.add_argument("--reps", type=int, default=20, help="calls per graph")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--per-row", action="store_true",
                    help="per-row (channel-wise) weight scales instead of per-tensor ones")
    ap.add_argument("--json")
    args = ap.parse_args()
    modules: dict[str, object] = {}
    variants = []
    for spec in args.variants:
        if spec == COMPILE:
            variants.append((spec, None, None))
            continue
        build, _, path = spec.partition(":")
        if build not in modules:
            modules[build] = load_kernel_module(Path(build))
        variants.append((spec, modules[build], path or "auto"))
    rows = []
    compiled: dict = {}
    for kind in args.kinds.split(","):
        k, h, n = SHAPES[kind]
        for m in (int(v) for v in args.m.split(",")):
            gen = torch.Generator(device="cuda").manual_seed(m * 7 + k)
            case = probe_case(kind, m, per_row=args.per_row, generator=gen)
            call, reference = probe_mlp(kind, m, case=case)
            ref = reference(next(mod for _, mod, _ in variants if mod is not None))
            # A replayed graph writes into `out`: keep every variant's `out` alive as long as
            # its graph. Capturing the next graph runs torch.cuda.empty_cache(), which would
            # unmap a freed `out` and turn the earlier graph's next replay into an illegal
            # memory access (benchmarks/RESULTS.md, 2026-12-03).
            graphs, outs, errs = [], [], []
            for _, mod, path in variants:
                out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
                run = (compiled_split(kind, case, compiled) if mod is None
                       else lambda out, mod=mod, path=path: call(mod, path, out))
                errs.append(rel_err(run(out), ref) if m else 0.0)
                outs.append(out)
                graphs.append(capture_graph(lambda run=run, out=out: run(out), args.reps))
            times: list[list[float]] = [[] for _ in variants]
            for r in range(args.rounds):
                for j in range(len(variants)):
                    i = (j + r) % len(variants)
                    try:
                        times[i].append(replay_us(graphs[i], args.reps))
                    except RuntimeError:
                        print(f"{kind} M={m}: replay of {variants[i][0]} failed", flush=True)
                        raise
            med = [statistics.median(t) for t in times]
            for (spec, _, _), t, md, err in zip(variants, times, med, errs):
                # The contract's tolerance is for our kernels; the compiled split path
                # (bf16 gate/up, its own input quantisation) only reports its error.
                ok = (f"rel err {err:.3g}" if spec == COMPILE
                      else "ok" if err <= CONTRACT_TOL else f"FAIL rel err {err:.3g}")
                print(f"{kind:7s} M={m:5d}  {md:8.2f} us  [{min(t):7.2f}-{max(t):7.2f}]  "
                      f"{md - med[0]:+6.2f}  {ok:4s}  {spec}", flush=True)
                rows.append({"kind": kind, "m": m, "variant": spec, "median_us": md,
                             "times_us": t, "rel_err": err, "per_row": args.per_row})
            del graphs, outs
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
