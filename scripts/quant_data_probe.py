"""The benchmark's input-quant data, reproduced, against other data of the same shape:
is the benchmark's K = 1536, M = 128 point (1.58-1.60 us in every session's run, 1.13 us
in scripts/quant_shape_probe.py) slow because of its data or because of its context?

For K in 1536 and 2048, regenerates the benchmark's channel scale and inputs (the same
seeded generator, batch sizes in the benchmark's order, --seed 0) and, at each M of
--m, times channel_scale_quantize_fp8_static_bf16 (CUDA-graph replays, --reps calls per
graph) on: the benchmark's x and scale; the same x with the scale nudged by 2^-10; a
fresh x with its own calibrated scale. Also counts, per variant, the 8-element chunks
and the 32-chunk warps (the small-M kernel's: a warp = 32 consecutive chunks of a row)
whose bracket fails (kernels-src/input_quant.cuh: the two bracket products round to
different FP8 bytes, so the chunk takes the exact fallback). With several builds (e.g. a
variant from scripts/variant_build.sh), times each on the same data, in turn, and checks
each byte-exact against the reference.

    python3 scripts/quant_data_probe.py BUILD [BUILD ...] [--m 50,128] [--reps 200]

With --eager N, each kernel instead runs N times outside a graph, untimed, for a
profiler: ncu -k regex:quantize --section WarpStateStats python3 ... --eager 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
from bench_torch import quant_batch, quant_inputs  # noqa: E402
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import graph_time_us  # noqa: E402

BENCH_MS = (1, 16, 50, 128, 512, 2048, 8192)  # bench_mlp.py's order
FP8 = torch.float8_e4m3fn


def bracket_failures(x: torch.Tensor, cs: torch.Tensor, s: torch.Tensor) -> tuple[int, int, int]:
    """(chunks, failing chunks, warps with a failing chunk), emulating the kernel's bracket
    with y = rn(1 / s) (the kernel's reciprocal is within an ulp of it)."""
    v = x.float() * cs.float()  # exact: bf16 x bf16
    y = 1.0 / s.float()
    lo = (v * (y * (1 - 2.0 ** -20))).to(FP8).view(torch.uint8)
    hi = (v * (y * (1 + 2.0 ** -20))).to(FP8).view(torch.uint8)
    bad = (lo != hi).view(x.shape[0], -1, 8).any(-1)  # [M, K / 8]
    k8 = bad.shape[1]
    warps = bad[:, : k8 - k8 % 32].reshape(x.shape[0], -1, 32).any(-1).sum().item()
    if k8 % 32:
        warps += bad[:, k8 - k8 % 32:].any(-1).sum().item()
    return bad.numel(), int(bad.sum().item()), int(warps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--m", default="50,128")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--eager", type=int, default=0, help="run each call N times, untimed")
    a = ap.parse_args()
    mods = [load_kernel_module(Path(b)) for b in a.builds]
    for i, b in enumerate(a.builds):
        print(f"build {i}: {b}")
    dev = "cuda"
    want = {int(v) for v in a.m.split(",")}
    for k in (1536, 2048):
        gen, cs = quant_inputs(k, 0, dev)
        fresh = torch.Generator(device=dev).manual_seed(12345 + k)
        for m in BENCH_MS:
            x, s = quant_batch(gen, cs, m)
            if m not in want:
                continue
            x2, s2 = quant_batch(fresh, cs, m)
            variants = {"benchmark's": (x, s), "scale * (1 + 2^-10)": (x, s * (1 + 2.0 ** -10)),
                        "fresh x": (x2, s2)}
            for name, (xv, sv) in variants.items():
                ref = mods[0].reference.channel_scale_quantize_fp8_static_bf16(xv, cs, sv)
                times = []
                for sfm in mods:
                    out = torch.empty(m, k, dtype=FP8, device=dev)
                    out.view(torch.uint8).fill_(0x7F)  # poison
                    if a.eager:
                        for _ in range(a.eager):
                            sfm.channel_scale_quantize_fp8_static_bf16(xv, cs, sv, out=out)
                        torch.cuda.synchronize()
                        continue
                    t = graph_time_us(
                        lambda: sfm.channel_scale_quantize_fp8_static_bf16(xv, cs, sv, out=out),
                        reps=a.reps)
                    exact = torch.equal(out.view(torch.uint8), ref.view(torch.uint8))
                    times.append(f"{t:.2f} us{'' if exact else ' NOT EXACT'}")
                if a.eager:
                    print(f"K={k} M={m} {name}: ran {len(mods)} builds x {a.eager}", flush=True)
                    continue
                chunks, bad, warps = bracket_failures(xv, cs, sv)
                print(f"K={k} M={m} {name:>20}: {' | '.join(times)}, s={sv.item():.6g}, "
                      f"bracket fails in {bad} of {chunks} chunks, {warps} warps", flush=True)


if __name__ == "__main__":
    main()
