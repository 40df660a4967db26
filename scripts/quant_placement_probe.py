"""Does the input-quant time at small M depend on where its tensors live?

The benchmark's small-M input-quant rows land at either 1.2-1.3 or 1.5-1.6 us per call
(benchmarks/RESULTS.md, seventh session). This probe times one shape (CUDA-graph replays)
while re-allocating one tensor at a time (x, channel scale, scale, output; a random-sized
allocation in between moves each to a new address), then torch.compile's kernel with all
of them re-allocated.

    python3 scripts/quant_placement_probe.py BUILD_DIR [--k 2048] [--m 1] [--tries 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
import bench_torch as bt  # noqa: E402
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import graph_time_us  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--m", type=int, default=1)
    ap.add_argument("--tries", type=int, default=12)
    args = ap.parse_args()
    sfm = load_kernel_module(Path(args.build))
    compiled = bt.compile_fn(bt.torch_quant, static=True)
    k, m = args.k, args.m
    cs0 = (torch.rand(k, device="cuda") * 1.5 + 0.25).bfloat16()
    x0 = (torch.randn(m, k, device="cuda") * 3).bfloat16()
    s0 = ((x0.float() * cs0.float()).abs().amax() / 448.0).reshape(())
    o0 = torch.empty(m, k, dtype=torch.float8_e4m3fn, device="cuda")
    spacers = []  # kept alive so that each re-allocation gets a new address

    def spacer() -> None:
        n = int(torch.randint(1, 5000, ()).item()) * 512
        spacers.append(torch.empty(n, dtype=torch.uint8, device="cuda"))

    for what in ("all", "x", "cs", "s", "out"):
        times = []
        for _ in range(args.tries):
            spacer()
            x = x0.clone() if what in ("all", "x") else x0
            cs = cs0.clone() if what in ("all", "cs") else cs0
            s = s0.clone() if what in ("all", "s") else s0
            o = torch.empty_like(o0) if what in ("all", "out") else o0
            times.append(graph_time_us(
                lambda: sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=o), reps=100))
        print(f"vary {what:4s}: ours " + " ".join(f"{t:.2f}" for t in times), flush=True)
    times = []
    for _ in range(args.tries):
        spacer()
        x, cs, s = x0.clone(), cs0.clone(), s0.clone()
        times.append(graph_time_us(lambda: compiled(x, cs, s), reps=100))
    print("vary all : compile " + " ".join(f"{t:.2f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
