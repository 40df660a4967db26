"""SM clock and power next to each timed graph replay: ours and torch.compile's split path,
one after the other (in both orders, after an idle pause) and then alternated, as the
benchmark's --sequential and default interleaved timing do. Shows whether a path's
timing depends on what ran before it (benchmarks/README.md, "Interleaved timing").

    python3 scripts/clock_trace.py BUILD [--kinds swiglu,geglu] [--m 2048,8192] [--json OUT]

Needs NVML (`pip install nvidia-ml-py`; the GPU machine has no internet: carry its wheel
in .whl/ and install it with pip --target). Reads device 0's NVML handle: run it with one
visible GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
from kernel_loader import load_kernel_module  # noqa: E402
from mlp_ab import compiled_split, replay_us  # noqa: E402
from perf_probe import SHAPES, capture_graph, probe_case, probe_mlp  # noqa: E402

TARGET_MS = 10.0  # per replay, as bench_mlp's default --target-ms


def gpu_state(nvml, handle) -> dict:
    return {"sm_mhz": nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
            "power_w": round(nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 1),
            "reasons": hex(nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))}


def trace(graphs: dict, plan: list[str], reps: dict, nvml, handle) -> list[dict]:
    rows = []
    for name in plan:
        us = replay_us(graphs[name], reps[name])
        rows.append({"path": name, "us": round(us, 2), **gpu_state(nvml, handle)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--kinds", default="swiglu,geglu")
    ap.add_argument("--m", default="2048")
    ap.add_argument("--batches", type=int, default=7)
    ap.add_argument("--pause-s", type=float, default=1.0, help="idle time before each phase")
    ap.add_argument("--json")
    args = ap.parse_args()
    import pynvml as nvml

    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    mod = load_kernel_module(Path(args.build))
    compiled: dict = {}
    results = []
    for kind in args.kinds.split(","):
        for m in (int(v) for v in args.m.split(",")):
            case = probe_case(kind, m, generator=torch.Generator(device="cuda").manual_seed(m))
            call, _ = probe_mlp(kind, m, case=case)
            n = SHAPES[kind][2]
            outs = {p: torch.empty(m, n, dtype=torch.bfloat16, device="cuda") for p in ("ours", "compile")}
            runs = {"ours": lambda out: call(mod, "auto", out),
                    "compile": compiled_split(kind, case, compiled)}
            graphs, reps = {}, {}
            for name, run in runs.items():
                one = capture_graph(lambda run=run, name=name: run(outs[name]), 1)
                us = min(replay_us(one, 1) for _ in range(3))
                reps[name] = max(1, min(200, int(TARGET_MS * 1000 / max(us, 1.0))))
                graphs[name] = capture_graph(lambda run=run, name=name: run(outs[name]), reps[name])
            b = args.batches
            phases = {"compile then ours": ["compile"] * b + ["ours"] * b,
                      "ours then compile": ["ours"] * b + ["compile"] * b,
                      "alternated": ["compile", "ours"] * b}
            for phase, plan in phases.items():
                time.sleep(args.pause_s)
                rows = trace(graphs, plan, reps, nvml, handle)
                results.append({"kind": kind, "m": m, "phase": phase, "rows": rows})
                print(f"\n{kind} M={m}: {phase} (after {args.pause_s:.1f} s idle)")
                print("| # | path | us/call | SM MHz | W | clock-event reasons |")
                print("|---:|---|---:|---:|---:|---|")
                for i, r in enumerate(rows):
                    print(f"| {i} | {r['path']} | {r['us']} | {r['sm_mhz']} | {r['power_w']} | {r['reasons']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
