"""Which SM ran each CTA of the small-M input-quant kernel, eagerly and after CUDA-graph
replays of 200 calls. Needs a probe build whose small-M kernel writes %smid and
blockIdx.x into each chunk's output bytes instead of the quantised ones:
benchmarks/results/quant_fallback_variants_h200_2026-12-04_twentysecond.patch applied to
c3f0026, built with '#define SFM_QUANT_SMID_PROBE 1' (scripts/variant_build.sh).

    python3 scripts/quant_smid_probe.py BUILD
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import graph_time_us  # noqa: E402

ROW_THREADS = 128  # input_quant.cuh: kRowThreads, chunks per CTA along a row


def main() -> None:
    sfm = load_kernel_module(Path(sys.argv[1]))
    for k in (1536, 2048):
        for m in (1, 16, 50, 128, 512):
            cs = (torch.rand(k, device="cuda") + 0.5).bfloat16()
            x = torch.randn(m, k, device="cuda").bfloat16()
            s = torch.tensor(0.02, device="cuda")
            for mode in ("eager", "graph"):
                out = torch.zeros(m, k, dtype=torch.float8_e4m3fn, device="cuda")
                call = lambda: sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=out)
                if mode == "eager":
                    call()
                else:
                    graph_time_us(call, reps=200)
                torch.cuda.synchronize()
                words = out.view(torch.uint8).view(m, k // 8, 8).view(torch.int32).cpu()
                ctas = {}  # (row, blockIdx.x) -> SM of its first chunk
                for r in range(m):
                    for c in range(0, k // 8, ROW_THREADS):
                        ctas[(r, int(words[r, c, 1]))] = int(words[r, c, 0])
                per_sm = collections.Counter(ctas.values())
                print(f"K={k} M={m} {mode}: {len(ctas)} CTAs on {len(per_sm)} SMs, "
                      f"max {max(per_sm.values())} per SM, "
                      f"hist {sorted(collections.Counter(per_sm.values()).items())}", flush=True)


if __name__ == "__main__":
    main()
