"""Input quant of two builds and torch.compile, timed in one process (CUDA-graph replays).

Loads build A, then build B, and for each (K, M) checks B byte-exact against the
reference and times A, B and torch.compile's quant (static shapes) with
`perf_probe.graph_time_us`, 100 calls per graph, two rounds. Run it twice with the builds
swapped: the order in which the libraries are loaded moves small-M times by itself
(benchmarks/RESULTS.md, eighth session).

    python3 scripts/quant_build_ab.py BUILD_A BUILD_B
"""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
import bench_torch as bt  # noqa: E402
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import graph_time_us  # noqa: E402


def main() -> None:
    a = load_kernel_module(Path(sys.argv[1]))
    b = load_kernel_module(Path(sys.argv[2]))
    print("A", a.__variant_dir__, "\nB", b.__variant_dir__)
    # One compiled graph per shape (the run recorded in results/quant_order_*_eighth.txt
    # lacked this line and stopped at Dynamo's default limit of 8).
    bt.configure_dynamo()
    comp = bt.compile_fn(bt.torch_quant, static=True)
    torch.manual_seed(0)
    for rnd in range(2):
        for k in (1152, 1536, 2048, 4096):
            for m in (1, 16, 50, 128, 512, 2048, 8192):
                cs = (torch.rand(k, device="cuda") * 1.5 + 0.25).bfloat16()
                x = (torch.randn(m, k, device="cuda") * 3).bfloat16()
                s = ((x.float() * cs.float()).abs().amax() / 448.0).reshape(())
                oa = torch.empty(m, k, dtype=torch.float8_e4m3fn, device="cuda")
                ob = torch.empty_like(oa)
                ref = a.reference.channel_scale_quantize_fp8_static_bf16(x, cs, s).view(torch.uint8)
                ob.view(torch.uint8).fill_(0x7F)  # poison
                b.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=ob)
                ok = torch.equal(ob.view(torch.uint8), ref)
                ta = graph_time_us(lambda: a.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=oa), reps=100)
                tb = graph_time_us(lambda: b.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=ob), reps=100)
                tc = graph_time_us(lambda: comp(x, cs, s), reps=100)
                print(f"round {rnd} K={k:5d} M={m:4d}  A {ta:5.2f}  B {tb:5.2f}  compile {tc:5.2f}  "
                      f"B exact={ok}", flush=True)


if __name__ == "__main__":
    main()
