"""Calls the MLP endpoints eagerly over shapes, batch sizes and forced GEMM paths, one
synchronised call at a time, for compute-sanitizer. Without torch's caching allocator
every tensor is its own cudaMalloc, so memcheck sees an access past any tensor's end
(inside the allocator's segments it cannot):

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck \\
        python3 scripts/memcheck_sweep.py --build .gpu-build --kinds gelu,swiglu --m 1,65

Each call is announced before it runs, so the first error report follows the call that
caused it. A forced path a shape does not support is skipped (its error names it).
`--quant` also runs the input-quant endpoint on each kind's K at each M (the small-M
kernel up to one wave of chunks, the vector kernel above).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import SHAPES, add_sweep_args, probe_mlp, refusal  # noqa: E402


def quant_call(sfm, k: int, m: int) -> None:
    x = (torch.randn(m, k, device="cuda") * 3).bfloat16()
    cs = (torch.rand(k, device="cuda") + 0.5).bfloat16()
    sfm.channel_scale_quantize_fp8_static_bf16(x, cs, torch.tensor(0.37, device="cuda"))


def main() -> None:
    ap = argparse.ArgumentParser()
    add_sweep_args(ap, m="1,17,64,65,128,200,384")
    ap.add_argument("--quant", action="store_true", help="also the input quant at each K and M")
    args = ap.parse_args()
    sfm = load_kernel_module(Path(args.build))
    paths = list(sfm.GEMM_PATHS) if args.paths == "all" else args.paths.split(",")
    for kind in args.kinds.split(","):
        for m in (int(v) for v in args.m.split(",")):
            if args.quant:
                print(f"call quant K={SHAPES[kind][0]} M={m}", flush=True)
                quant_call(sfm, SHAPES[kind][0], m)
                torch.cuda.synchronize()
            call, _ = probe_mlp(kind, m, per_row=m % 2 == 1)
            for path in paths:
                print(f"call {kind} M={m} path={path}", flush=True)
                refused = refusal(lambda: call(sfm, path))
                if refused is not None:
                    print(f"  skipped: {refused[:120]}", flush=True)
                torch.cuda.synchronize()
    print("sweep done", flush=True)


if __name__ == "__main__":
    main()
