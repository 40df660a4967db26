"""Prints the kernels one MLP call launches, their grids and durations (torch.profiler's
trace; one call, so only large kernels' durations mean much), to see which path and
split factor the dispatcher took: for the split-K down GEMM the grid's y is the number
of K splits.

    python3 scripts/kernel_grids.py --build .gpu-build --kinds gelu,swiglu --m 65,128 \\
        --paths auto,auto/tensor_core_split_k_cluster
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import add_sweep_args, probe_mlp  # noqa: E402


def short_name(name: str) -> str:
    """`ns::kernel<args>(params)` -> `kernel<args>` without the library's namespaces."""
    name = re.sub(r"static_fp8_mlp::|\(anonymous namespace\)::|<unnamed>::", "", name)
    return re.sub(r"^void ", "", name.split("(")[0])[:110]


def launched_kernels(fn) -> list[tuple[str, list[int], float]]:
    """(name, grid, duration in us) of each kernel one call of fn launches, in launch order."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    kernels = sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    return [(short_name(e["name"]), e.get("args", {}).get("grid", []), float(e.get("dur", 0.0)))
            for e in kernels]


def main() -> None:
    ap = argparse.ArgumentParser()
    add_sweep_args(ap, m="17,65,128,200,384")
    args = ap.parse_args()
    sfm = load_kernel_module(Path(args.build))
    for kind in args.kinds.split(","):
        for m in (int(v) for v in args.m.split(",")):
            call, _ = probe_mlp(kind, m)
            for path in args.paths.split(","):
                print(f"{kind} M={m} path={path}", flush=True)
                for name, grid, dur in launched_kernels(lambda: call(sfm, path)):
                    print(f"    grid {str(grid):>16}  {dur:8.1f} us  {name}", flush=True)


if __name__ == "__main__":
    main()
