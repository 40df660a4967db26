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
a = ap.parse_args()
k, h, n = SHAPES[a.kind]
rows1 = h if a.kind == "gelu" else 2 * h
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
