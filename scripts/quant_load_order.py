"""Does the small-M input-quant time depend on when its kernels are loaded?

The benchmark's small-M input-quant rows land at 1.2-1.3 or 1.5-1.6 us per call, stable
within a process (benchmarks/RESULTS.md, seventh and eighth sessions); in the eighth
session's two-build run, the build whose quant kernels loaded first was the fast one.
The benchmark loads them last (after every MLP kernel). This runs the benchmark
(`benchmarks/bench_mlp.py`, any of its options) after first launching the input-quant
kernels once (`--first quant`: both vector kernels load before any GEMM), or as it is
(`--first none`). Run it in fresh processes, with and without CUDA_MODULE_LOADING=EAGER.

    python3 scripts/quant_load_order.py --first quant -- --build B --m 1,16,50,128 --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
import bench_mlp  # noqa: E402
from kernel_loader import load_kernel_module  # noqa: E402


def launch_quant_kernels(sfm) -> None:
    """One small (row-grid kernel) and one large (vector kernel) call."""
    for m in (1, 8192):
        x = torch.randn(m, 4096, device="cuda").bfloat16()
        cs = torch.ones(4096, device="cuda").bfloat16()
        sfm.channel_scale_quantize_fp8_static_bf16(x, cs, torch.ones((), device="cuda"))
    torch.cuda.synchronize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", choices=("quant", "none"), required=True)
    ap.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    rest = [a for a in args.bench_args if a != "--"]
    if args.first == "quant":
        build = rest[rest.index("--build") + 1]
        launch_quant_kernels(load_kernel_module(Path(build)))
    return bench_mlp.main(rest)


if __name__ == "__main__":
    sys.exit(main())
