"""Timeline of the phases inside an MLP's kernels, from a build compiled with
SFM_PHASE_TRACE defined (kernels-src/phase_trace.cuh):

    bash scripts/variant_build.sh trace '#define SFM_PHASE_TRACE 1'   # here
    python3 scripts/phase_trace.py .gpu-tune/trace/torch211-cxx11-cu130-x86_64-linux \
        --kind gelu --m 16,32 [--path auto] [--reps 20] [--json OUT]       # GPU machine

Three kernels have trace points: the register-sourced wgmma kernel
(fp8_gemm_wgmma_rs.cuh: dense MLPs at M = 9-39, or forced with --path tensor_core_stream),
the swap-AB kernel (fp8_gemm_swap.cuh: GeGLU from M = 1, dense from 40, most GEMMs at M =
65-192; its producer and first consumer thread each leave a record; the consumer's
"mainloop" and "epilogue" stamps are the last tile's in a persistent CTA, and three of its
pairs are spans over all its tiles: the other epilogues, waits for full stages, waits for
wgmmas; those spans were added in the twenty-ninth session and have not yet run on a
GPU), and the persistent wgmma
kernel (fp8_gemm_wgmma.cuh: large M), whose producer and first consumer thread each
leave a record of spans instead: how many clock cycles the thread spent in each kind of
phase over all its tiles (epilogues, waits for stages, waits for wgmmas, ...), printed as
each span kind's share of the CTA's cycles, its count and cycles per span. The wgmma
kernel's spans were added in the twenty-eighth session and have compiled, but not yet run
on a GPU: check the first trace against the kernel's time before trusting it. Other
kernels leave no records.

Captures REPS calls of the MLP in one CUDA graph, replays it with tracing on, and for the
calls in the middle (the steady state: the neighbours' kernels overlap as in the
benchmark) prints, per kernel of a call, when its CTAs reached each traced point,
relative to the first CTA entry of the call's first kernel (median over calls of the
earliest / median / latest CTA; ns, %globaltimer). Also prints the plain graph time of
the same calls and the timer's resolution seen in the records (32 ns on the lent H200).
The hooks cost time: each CTA's record (an atomic and 18 stores at its exit) made the
traced period about 1 us longer per MLP than the untraced build's, 2 us with the
twentieth session's kernel (its 168-register CTAs spill the stamps); and the stamp that
marks the weights in holds warp 0 until they are. Read the phases, not the total.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
from kernel_loader import load_kernel_module  # noqa: E402
from perf_probe import capture_graph, graph_time_us, probe_mlp  # noqa: E402

WORDS = 18  # kTraceWords in phase_trace.cuh
POINTS = 8
CAPACITY = 1 << 18  # records
# What each traced point means, per kernel tag: 100 + EpilogueKind the register-sourced
# wgmma kernel (thread 0); 200 + / 210 + EpilogueKind the swap-AB kernel's first consumer
# thread (128) / its producer thread (0), one record each per CTA. "-": not stamped.
POINT_NAMES = {
    "rs": ["entry", "weights in", "wait done", "x in", "mainloop", "tiles parked",
           "epilogue", "exit"],
    "swap consumer": ["entry", "registers set", "span epilogues but the last", "mainloop",
                      "epilogue", "span stage waits", "span wgmma waits", "exit"],
    "swap producer": ["entry", "early weights issued", "wait done", "loads issued",
                      "ring ready", "first weights issued", "x of early stages issued", "exit"],
    # spans (pairs of cycles summed and count), between the entry and exit stamps
    "wgmma consumer": ["entry", "span epilogues", "span epilogue math", "span stage waits",
                       "span wgmma waits", "span tiles", "-", "exit"],
    "wgmma producer": ["entry", "span free-stage waits", "-", "-", "-", "-", "-", "exit"],
}
SPAN = "span "
GEMMS = {0: "gated gemm1", 1: "dense gemm1", 2: "gemm2"}
TAG_NAMES = {**{100 + e: ("rs", g) for e, g in GEMMS.items()},
             **{200 + e: ("swap consumer", f"{g} (swap, consumer)") for e, g in GEMMS.items()},
             **{210 + e: ("swap producer", f"{g} (swap, producer)") for e, g in GEMMS.items()},
             **{300 + e: ("wgmma consumer", f"{g} (wgmma, consumer)") for e, g in GEMMS.items()},
             **{310 + e: ("wgmma producer", f"{g} (wgmma, producer)") for e, g in GEMMS.items()}}


def read_records(buf: torch.Tensor) -> list[dict]:
    n = min(int(buf[0].item()), CAPACITY)
    rows = buf[WORDS: WORDS * (n + 1)].view(n, WORDS).cpu().tolist()
    out = []
    for r in rows:
        meta = r[1]
        out.append({"tag": r[0], "bx": meta & 0xFFFFFF, "by": (meta >> 24) & 0xFFFFFF,
                    "sm": meta >> 48, "ns": r[2::2], "clk": r[3::2]})
    return out


def split_calls(recs: list[dict], reps: int) -> dict[int, list[list[dict]]]:
    """Per tag, its records cut into `reps` launches (each launch's CTAs all enter after
    the previous launch of the same kernel has ended: PDL chains them)."""
    by_tag: dict[int, list[dict]] = {}
    for r in recs:
        by_tag.setdefault(r["tag"], []).append(r)
    calls = {}
    for tag, rs in by_tag.items():
        rs.sort(key=lambda r: r["ns"][0])
        if len(rs) % reps:
            raise SystemExit(f"tag {tag}: {len(rs)} records do not split into {reps} launches")
        per = len(rs) // reps
        calls[tag] = [rs[i * per:(i + 1) * per] for i in range(reps)]
    return calls


def summarize(calls: dict[int, list[list[dict]]], reps: int) -> dict:
    tags = sorted(calls, key=lambda t: calls[t][0][0]["ns"][0])
    middle = range(reps // 4, reps - reps // 4)
    summary = {}
    for tag in tags:
        kind, name = TAG_NAMES.get(tag, ("rs", str(tag)))
        per_point, spans = [], []
        for p in range(POINTS):
            name_p = POINT_NAMES[kind][p]
            if name_p.startswith(SPAN):
                span = span_summary(calls[tag], middle, p)
                if span:
                    spans.append({"span": name_p[len(SPAN):], **span})
                continue
            lo, med, hi = [], [], []
            for c in middle:
                t0 = min(r["ns"][0] for t in tags for r in calls[t][c])
                vals = sorted(r["ns"][p] - t0 for r in calls[tag][c] if r["ns"][p])
                if not vals:
                    continue
                lo.append(vals[0])
                med.append(vals[len(vals) // 2])
                hi.append(vals[-1])
            if lo:
                per_point.append({"point": POINT_NAMES[kind][p], "first": statistics.median(lo),
                                  "median": statistics.median(med), "last": statistics.median(hi)})
        ctas = len(calls[tag][0])
        sms = len({r["sm"] for r in calls[tag][reps // 2]})
        clk = [r["clk"][7] - r["clk"][0] for c in middle for r in calls[tag][c]]
        ns = [r["ns"][7] - r["ns"][0] for c in middle for r in calls[tag][c]]
        summary[name] = {"tag": tag, "ctas": ctas, "distinct_sms": sms, "points": per_point,
                         "spans": spans,
                         "ghz": statistics.median(clk) / max(statistics.median(ns), 1)}
    # the period: first entry of call c+1 minus that of call c
    firsts = [min(r["ns"][0] for t in tags for r in calls[t][c]) for c in range(reps)]
    summary["period_ns"] = statistics.median(b - a for a, b in zip(firsts, firsts[1:]))
    return summary


def span_summary(launches: list[list[dict]], middle: range, p: int) -> dict | None:
    """Span pair p of a kernel's records (cycles summed, count) over the middle calls:
    the median CTA's share of its cycles (entry to exit), count and cycles per span."""
    share, count, each = [], [], []
    for c in middle:
        for r in launches[c]:
            cycles, n = r["ns"][p], r["clk"][p]
            total = r["clk"][7] - r["clk"][0]
            if n <= 0 or total <= 0:
                continue
            share.append(cycles / total)
            count.append(n)
            each.append(cycles / n)
    if not share:
        return None
    return {"share": statistics.median(share), "count": statistics.median(count),
            "cycles_each": statistics.median(each)}


def stamps(r: dict) -> list[int]:
    """A record's %globaltimer stamps (its span pairs left out)."""
    kind = TAG_NAMES.get(r["tag"], ("rs", ""))[0]
    return [t for t, name in zip(r["ns"], POINT_NAMES[kind]) if not name.startswith(SPAN)]


def timer_resolution(recs: list[dict]) -> int:
    deltas = {b - a for r in recs for s in (stamps(r),) for a, b in zip(s, s[1:]) if b > a}
    return min(deltas) if deltas else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--kind", default="gelu")
    ap.add_argument("--m", default="16")
    ap.add_argument("--path", default="auto")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()

    buf = torch.zeros(WORDS * (CAPACITY + 1), dtype=torch.int64, device="cuda")
    os.environ["SFM_PHASE_TRACE_PTR"] = str(buf.data_ptr())
    os.environ["SFM_PHASE_TRACE_RECORDS"] = str(CAPACITY)
    sfm = load_kernel_module(Path(a.build))
    report = {}
    for m in (int(v) for v in a.m.split(",")):
        run, _ = probe_mlp(a.kind, m)
        fn = lambda: run(sfm, a.path)  # noqa: E731
        fn()  # first launch: binds the trace buffer (not under capture)
        torch.cuda.synchronize()
        untraced = graph_time_us(fn, a.reps)
        g = capture_graph(fn, a.reps)
        buf.zero_()
        g.replay()
        torch.cuda.synchronize()
        recs = read_records(buf)
        s = summarize(split_calls(recs, a.reps), a.reps)
        s["graph_us"] = untraced
        s["timer_resolution_ns"] = timer_resolution(recs)
        report[f"{a.kind} M={m}"] = s
        print(f"\n{a.kind} M={m}: graph {untraced:.2f} us/call, traced period "
              f"{s['period_ns'] / 1000:.2f} us, timer step >= {s['timer_resolution_ns']} ns")
        for name, k in s.items():
            if not isinstance(k, dict):
                continue
            print(f"  {name}: {k['ctas']} CTAs on {k['distinct_sms']} SMs, {k['ghz']:.2f} GHz")
            for pt in k["points"]:
                print(f"    {pt['point']:>13}: first {pt['first']:7.0f}  median {pt['median']:7.0f}"
                      f"  last {pt['last']:7.0f} ns")
            for sp in k["spans"]:
                print(f"    {sp['span']:>18}: {100 * sp['share']:5.1f}% of the CTA's cycles, "
                      f"{sp['count']:.0f} x {sp['cycles_each']:.0f} cycles")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
