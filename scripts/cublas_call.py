"""Runs the torch._scaled_mm (cuBLAS FP8) GEMMs of one MLP shape once, after a warm-up,
for side-by-side profiling with our kernels:
    ncu --clock-control none python3 scripts/cublas_call.py geglu 16
"""
import argparse

import torch

from perf_probe import SHAPES  # the probe's shape table

ap = argparse.ArgumentParser()
ap.add_argument("kind", choices=SHAPES)
ap.add_argument("m", type=int)
ap.add_argument("--time", action="store_true", help="also print each GEMM's median time")
a = ap.parse_args()
k, h, n = SHAPES[a.kind]
rows1 = h if a.kind.startswith("gelu") else 2 * h
f8 = torch.float8_e4m3fn
x = torch.randn(a.m, k, device="cuda").to(f8)
w1 = torch.randn(rows1, k, device="cuda").to(f8)
hid = torch.randn(a.m, h, device="cuda").to(f8)
w2 = torch.randn(n, h, device="cuda").to(f8)
one = torch.ones((), device="cuda")
for _ in range(2):
    torch._scaled_mm(x, w1.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    torch._scaled_mm(hid, w2.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    torch.cuda.synchronize()

if a.time:
    # Per-GEMM time (CUDA events, median of 20 after the warm-up): cuBLAS's rate on the
    # same shapes and random data as our kernels, for docs/RESULTS.md comparisons.
    import statistics

    def median_us(fn, reps=20):
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
        return statistics.median(times)

    g1 = median_us(lambda: torch._scaled_mm(x, w1.t(), scale_a=one, scale_b=one,
                                            out_dtype=torch.bfloat16))
    g2 = median_us(lambda: torch._scaled_mm(hid, w2.t(), scale_a=one, scale_b=one,
                                            out_dtype=torch.bfloat16))
    print(f"cublas {a.kind} M={a.m}: gemm1 {g1:.1f} us, gemm2 {g2:.1f} us")
