"""Whether two builds give byte-identical MLP outputs: for a change that must not move
a bit (a different schedule, where shared memory holds what, a refactor), this is a
stronger check than the contract's 1e-2.

For every kind, M and forced path, both builds run the same problem (fresh random
inputs; per-row weight scales at odd M, per-tensor at even M), each into an output
poisoned with NaN, and the outputs are compared byte for byte; each is also checked
against the contract reference (rel err <= 1e-2), so two equally wrong builds fail too.
A path a shape does not support is skipped (both builds must refuse it). Prints one line
per call and exits 1 on any difference:

    python3 scripts/build_equal.py .gpu-tune/head .gpu-tune/eparam --kinds gelu,geglu \\
        --m 1,64,200,2049 --paths auto,tensor_core_tma,tensor_core_tall_128
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
from kernel_loader import load_kernel_module  # noqa: E402
from mlp_ab import rel_err  # noqa: E402
from perf_probe import SHAPES, probe_case, probe_mlp, refusal  # noqa: E402


def run(call, sfm, path: str, m: int, n: int):
    """The output of one call, or the first line of the error that refused the path."""
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
    refused = refusal(lambda: call(sfm, path, out))
    if refused is not None:
        return refused[:100]
    torch.cuda.synchronize()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs=2, help="build A and build B")
    ap.add_argument("--kinds", default="gelu,gelu2,geglu,swiglu")
    ap.add_argument("--m", default="1,16,50,64,65,128,200,513,1001,2049,8192")
    ap.add_argument("--paths", default="auto",
                    help='comma-separated forced paths ("a" or "gemm1/gemm2"), or "all"')
    args = ap.parse_args()
    a, b = (load_kernel_module(Path(p)) for p in args.builds)
    paths = list(a.GEMM_PATHS) if args.paths == "all" else args.paths.split(",")
    failures = calls = 0
    for kind in args.kinds.split(","):
        n = SHAPES[kind][2]
        for m in (int(v) for v in args.m.split(",")):
            gen = torch.Generator(device="cuda").manual_seed(m * 13 + n)
            case = probe_case(kind, m, per_row=m % 2 == 1, generator=gen)
            call, reference = probe_mlp(kind, m, case=case)
            ref = reference(a)
            for path in paths:
                got_a, got_b = run(call, a, path, m, n), run(call, b, path, m, n)
                if isinstance(got_a, str) or isinstance(got_b, str):
                    same = isinstance(got_a, str) and isinstance(got_b, str)
                    verdict = "skipped" if same else "FAIL: only one build refused"
                    print(f"{kind:7s} M={m:5d} {path:40s} {verdict}: {got_a if same else ''}",
                          flush=True)
                    failures += not same
                    continue
                calls += 1
                err_a, err_b = (rel_err(g, ref) if m else 0.0 for g in (got_a, got_b))
                differ = (got_a.view(torch.int16) != got_b.view(torch.int16)).sum().item()
                ok = differ == 0 and err_a <= 1e-2 and err_b <= 1e-2
                print(f"{kind:7s} M={m:5d} {path:40s} "
                      f"{'equal' if differ == 0 else f'{differ} elements differ'}  "
                      f"rel err {err_a:.3g} / {err_b:.3g}{'' if ok else '  FAIL'}", flush=True)
                failures += not ok
    print(f"{calls} calls compared, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
