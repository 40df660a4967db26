"""Our input quant and torch.compile's, three calls each per shape, for ncu:

    ncu --clock-control none -k regex:"quant|triton" --section LaunchStats \
        --section SpeedOfLight python3 scripts/quant_ncu_driver.py BUILD_DIR
"""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
import bench_torch as bt  # noqa: E402
from kernel_loader import load_kernel_module  # noqa: E402

sfm = load_kernel_module(Path(sys.argv[1]))
comp = bt.compile_fn(bt.torch_quant, static=True)
for k in (2048, 4096):
    for m in (1, 16):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        cs = (torch.rand(k, device="cuda") + 0.5).to(torch.bfloat16)
        s = torch.tensor(0.02, device="cuda")
        out = torch.empty(m, k, device="cuda", dtype=torch.float8_e4m3fn)
        for _ in range(3):
            comp(x, cs, s)
            sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=out)
        torch.cuda.synchronize()
