"""Input quant times around one shape, to tell a shape effect from a data or context
effect: for K = 1536 and 2048 and M = 64-192, the time of
channel_scale_quantize_fp8_static_bf16 (CUDA-graph replays, 200 calls per graph) with
the benchmark's data (x = 3 randn, channel scale in [0.25, 1.75), scale calibrated on
the batch) and with scale = 1. Written when the benchmark's K = 1536, M = 128 point read
1.58 us against 1.0-1.1 us for its neighbours (benchmarks/RESULTS.md, nineteenth session).

    python3 scripts/quant_shape_probe.py BUILD
"""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
from bench_torch import quant_batch, quant_inputs  # noqa: E402
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import graph_time_us  # noqa: E402


def main() -> None:
    sfm = load_kernel_module(Path(sys.argv[1]))
    dev = "cuda"
    for k in (1536, 2048):
        gen, cs = quant_inputs(k, 0, dev)
        for m in (64, 96, 112, 120, 128, 136, 160, 192):
            times, scales = [], []
            for calibrated in (True, False):
                x, s = quant_batch(gen, cs, m)
                if not calibrated:
                    s = torch.tensor(1.0, device=dev)
                out = torch.empty(m, k, dtype=torch.float8_e4m3fn, device=dev)
                times.append(graph_time_us(
                    lambda: sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=out), reps=200))
                scales.append(s.item())
            print(f"K={k} M={m}: calibrated {times[0]:.2f} us (s={scales[0]:.4g})  "
                  f"s=1: {times[1]:.2f} us", flush=True)


if __name__ == "__main__":
    main()
