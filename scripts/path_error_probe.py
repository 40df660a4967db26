"""Accuracy of forced GEMM paths against the contract reference on many random problems:
whether a path is systematically further from the fp32 reference than another, or a
single test's miss is one unlucky draw. For each (shape, M, path) it draws --seeds
problems the way the GPU tests do (tests/mlp_cases.py: per-row scales on even seeds,
hidden_scale calibrated on the batch), calls the gated endpoint on both activations (or
with --dense the GELU MLP) and prints the mean, the 90th percentile and the worst
relative error (||out - ref|| / ||ref||), with how many draws exceed the contract's 1e-2.

    python3 scripts/path_error_probe.py --build .gpu-build --shapes 896x4864x896 --m 4,16 \\
        --paths auto,warp_stream/warp_stream,tensor_core_swap_ab/tensor_core_swap_ab [--json OUT]

Not a test: it asserts nothing; it prints and saves numbers.
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
from ab_verdict import CONTRACT_TOL  # noqa: E402
from bench_torch import rel_err  # noqa: E402  (the benchmark's contract check)
from kernel_loader import load_kernel_module  # noqa: E402
from mlp_cases import dense_case, gated_case  # noqa: E402
from perf_probe import refusal  # noqa: E402


def run_path(sfm, path: str, activation: str, case) -> torch.Tensor:
    """One call on `path` ("auto" or "gemm1/gemm2"); activation "dense": the GELU MLP."""
    paths = tuple(path.split("/"))
    if activation == "dense":
        if path == "auto":
            return sfm.fp8_gelu_mlp_bf16(*case.args())
        return sfm._gelu_mlp_with_paths(paths, *case.args())
    if path == "auto":
        fn = sfm.fp8_swiglu_mlp_bf16 if activation == "silu" else sfm.fp8_geglu_mlp_bf16
        return fn(*case.args())
    return sfm._gated_mlp_with_paths(activation, paths, *case.args())


def draws(m: int, k: int, h: int, n: int, dense: bool, seed: int):
    """(activation, case) of one seed: both activations of a gated MLP, drawn from one
    generator as the GPU tests draw them, or one dense GELU MLP ("dense")."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    if dense:
        case = dense_case(m, k, h, n, seed % 2 == 0, generator=gen)
        yield "dense", case
        return
    for activation in ("silu", "gelu_tanh"):
        yield activation, gated_case(m, k, h, n, activation, seed % 2 == 0, generator=gen)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--shapes", default="896x4864x896", help="KxHxN,...")
    ap.add_argument("--m", default="4,16")
    ap.add_argument("--paths", default="auto")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--seed0", type=int, default=0, help="first seed (a GPU test's: 9300 + M + K, ...)")
    ap.add_argument("--dense", action="store_true", help="the dense GELU MLP (else the gated ones)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    sfm = load_kernel_module(Path(a.build))
    rows = []
    for shape in a.shapes.split(","):
        k, h, n = (int(v) for v in shape.split("x"))
        for m in (int(v) for v in a.m.split(",")):
            errs: dict[str, list[float] | None] = {p: [] for p in a.paths.split(",")}
            for seed in range(a.seed0, a.seed0 + a.seeds):
                for activation, case in draws(m, k, h, n, a.dense, seed):
                    ref = (sfm.reference.fp8_gelu_mlp_bf16(*case.args()) if a.dense
                           else sfm.reference.gated_mlp(*case.args(), activation))
                    for path in [p for p, e in errs.items() if e is not None]:
                        got = []
                        why = refusal(lambda: got.append(run_path(sfm, path, activation, case)))
                        if why is not None:  # a forced path the shape is refused on
                            print(f"{shape} M={m} {path}: refused ({why})")
                            errs[path] = None
                        else:
                            errs[path].append(rel_err(got[0], ref))
            errs = {p: e for p, e in errs.items() if e}
            for path, e in errs.items():
                e.sort()
                row = {"shape": shape, "dense": a.dense, "m": m, "path": path, "draws": len(e),
                       "mean": statistics.fmean(e), "p90": e[int(0.9 * (len(e) - 1))],
                       "max": e[-1], "over_tol": sum(v > CONTRACT_TOL for v in e)}
                rows.append(row)
                print(f"{shape:>16} M={m:<4} {path:<44} mean {row['mean']:.2e}  p90 {row['p90']:.2e}"
                      f"  max {row['max']:.2e}  over 1e-2: {row['over_tol']}/{len(e)}", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
