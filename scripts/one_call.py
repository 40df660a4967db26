"""Runs one MLP endpoint call (after a warm-up) for profiling with ncu:
    ncu --clock-control none python3 scripts/one_call.py --build .gpu-build geglu 16
--path takes one GEMM path for both GEMMs, or "gemm1/gemm2" (perf_probe's syntax).
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import SHAPES, probe_mlp  # noqa: E402  (the probe's shape table)

ap = argparse.ArgumentParser()
ap.add_argument("--build", required=True)
ap.add_argument("--path", default="auto")
ap.add_argument("kind", choices=SHAPES)
ap.add_argument("m", type=int)
a = ap.parse_args()
sfm = load_kernel_module(Path(a.build))
run, _ = probe_mlp(a.kind, a.m)
call = lambda: run(sfm, a.path)
call()
torch.cuda.synchronize()
call()
torch.cuda.synchronize()
