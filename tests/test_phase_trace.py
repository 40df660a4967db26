"""The phase-trace probe (kernels-src/phase_trace.cuh, scripts/phase_trace.py) on the CPU:
the script's record layout matches the header's, its parsing and per-call summary on
synthetic records, and the hooks compile with and without SFM_PHASE_TRACE (skips
without nvcc)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import phase_trace  # noqa: E402

HEADER = (REPO_ROOT / "kernels-src" / "phase_trace.cuh").read_text()


def header_constant(name: str) -> int:
    return int(re.search(rf"constexpr int {name} = (\d+);", HEADER).group(1))


def test_record_layout_matches_the_header():
    points = header_constant("kTracePoints")
    assert phase_trace.POINTS == points
    assert phase_trace.WORDS == 2 + 2 * points
    assert all(len(names) == points for names in phase_trace.POINT_NAMES.values())


def record(tag: int, bx: int, sm: int, t0: int, step: int = 100) -> list[int]:
    ns = [t0 + step * i for i in range(phase_trace.POINTS)]
    words = [tag, (sm << 48) | bx]
    for i, t in enumerate(ns):
        words += [t, 2 * t + i]  # clock64: any increasing value
    return words


def buffer_of(records: list[list[int]]) -> torch.Tensor:
    buf = torch.zeros(phase_trace.WORDS * (len(records) + 1), dtype=torch.int64)
    buf[0] = len(records)
    for i, r in enumerate(records):
        buf[phase_trace.WORDS * (i + 1): phase_trace.WORDS * (i + 2)] = torch.tensor(r)
    return buf


def test_parse_split_and_summarize_synthetic_calls():
    """Two kernels of 3 CTAs each, 4 calls, period 10 us; the second kernel's CTAs enter
    2 us after the first's. Records arrive out of order, as the atomic counter gives them."""
    reps, period = 4, 10_000
    recs = []
    for c in range(reps):
        for b in range(3):
            recs.append(record(101, b, sm=b, t0=c * period + 10 * b))
            recs.append(record(102, b, sm=10 + b, t0=c * period + 2_000 + 10 * b))
    recs.reverse()
    parsed = phase_trace.read_records(buffer_of(recs))
    assert len(parsed) == 2 * 3 * reps
    assert {r["tag"] for r in parsed} == {101, 102}
    assert {r["sm"] for r in parsed if r["tag"] == 102} == {10, 11, 12}
    calls = phase_trace.split_calls(parsed, reps)
    assert all(len(launch) == 3 for launches in calls.values() for launch in launches)
    s = phase_trace.summarize(calls, reps)
    assert s["period_ns"] == period
    gemm2 = s["gemm2"]
    assert gemm2["ctas"] == 3 and gemm2["distinct_sms"] == 3
    entry = gemm2["points"][0]
    assert (entry["first"], entry["median"], entry["last"]) == (2_000, 2_010, 2_020)
    assert gemm2["points"][-1]["last"] == 2_020 + 100 * (phase_trace.POINTS - 1)
    assert phase_trace.timer_resolution(parsed) == 100


def span_record(tag: int, bx: int, t0: int, spans: dict[int, tuple[int, int]],
                total_cycles: int) -> list[int]:
    """A span record: entry and exit stamps (ns = cycles here), pair i = spans[i]."""
    words = [tag, bx]
    for i in range(phase_trace.POINTS):
        if i == 0:
            words += [t0, t0]
        elif i == phase_trace.POINTS - 1:
            words += [t0 + total_cycles, t0 + total_cycles]
        else:
            words += list(spans.get(i, (0, 0)))
    return words


def test_wgmma_span_records_summarize_as_shares():
    """The persistent wgmma kernel's consumer (302: down GEMM) and producer (312) records:
    span pairs read as cycles summed and count, reported as the CTA's share; the stamps
    around them still give the period and the timer step."""
    reps, period = 4, 50_000
    recs = []
    for c in range(reps):
        for b in range(2):
            t0 = c * period + 10 * b
            recs.append(span_record(302, b, t0, {1: (4_000, 10), 3: (1_000, 50),
                                                 5: (9_000, 10)}, total_cycles=10_000))
            recs.append(span_record(312, b, t0, {1: (2_500, 100)}, total_cycles=10_000))
    calls = phase_trace.split_calls(phase_trace.read_records(buffer_of(recs)), reps)
    s = phase_trace.summarize(calls, reps)
    consumer = {sp["span"]: sp for sp in s["gemm2 (wgmma, consumer)"]["spans"]}
    assert set(consumer) == {"epilogues", "stage waits", "tiles"}  # zero counts left out
    assert consumer["epilogues"] == {"span": "epilogues", "share": 0.4, "count": 10,
                                     "cycles_each": 400}
    assert consumer["stage waits"]["cycles_each"] == 20
    producer = s["gemm2 (wgmma, producer)"]["spans"]
    assert producer == [{"span": "free-stage waits", "share": 0.25, "count": 100,
                         "cycles_each": 25}]
    # only entry and exit are stamps: nothing is reported for the span pairs as points
    assert [pt["point"] for pt in s["gemm2 (wgmma, consumer)"]["points"]] == ["entry", "exit"]
    assert s["period_ns"] == period
    assert phase_trace.timer_resolution(phase_trace.read_records(buffer_of(recs))) == 10_000


def test_split_refuses_records_that_are_not_whole_launches():
    recs = phase_trace.read_records(buffer_of([record(101, b, 0, 10 * b) for b in range(5)]))
    with pytest.raises(SystemExit, match="do not split"):
        phase_trace.split_calls(recs, 2)


KERNEL = r"""
#include "common.cuh"
#include "phase_trace.cuh"
__global__ void traced(int* out) {
  SFM_TRACE_DECLARE;
  SFM_TRACE_SPANS_DECLARE;
  SFM_TRACE_POINT(0);
  for (int i = 0; i < 3; ++i) {
    SFM_TRACE_SPAN_BEGIN_BY(0, 2);
    out[threadIdx.x] = threadIdx.x + i;
    SFM_TRACE_SPAN_END_BY(0, 2);
  }
  SFM_TRACE_POINT(1, static_cast<uint32_t>(out[0]));
  SFM_TRACE_COMMIT(7);
}
void launch(int* out) {
  SFM_TRACE_BIND();
  traced<<<1, 32>>>(out);
}
"""


@pytest.mark.parametrize("traced", (False, True))
def test_hooks_compile(tmp_path, traced):
    from static_fp8_mlp_cli import nvcc
    from static_fp8_mlp_cli.errors import CliError

    try:
        compiler = nvcc.find_nvcc()
    except CliError as exc:
        pytest.skip(f"no nvcc: {exc}")
    src = tmp_path / "traced.cu"
    src.write_text(KERNEL)
    cmd = [str(compiler), "-std=c++17", "-arch=sm_90a", "-I", str(REPO_ROOT / "kernels-src"),
           "-c", str(src), "-o", str(tmp_path / "traced.o")]
    if traced:
        cmd.insert(1, "-DSFM_PHASE_TRACE=1")
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)


def test_swap_consumer_records_mix_stamps_and_spans():
    """The swap-AB consumer (200: gated gate/up GEMM): pairs 2, 5 and 6 are spans, the
    others stamps; each is reported as its kind, and the timer step ignores the spans."""
    reps, period = 4, 20_000
    recs = []
    for c in range(reps):
        t0 = c * period
        words = [200, 0]
        for i in range(phase_trace.POINTS):
            if i in (2, 5, 6):
                words += {2: [3_000, 3], 5: [1_000, 40], 6: [500, 40]}[i]
            else:  # stamps 1 us apart; clock64 = ns
                words += [t0 + 1_000 * i, t0 + 1_000 * i]
        recs.append(words)
    s = phase_trace.summarize(phase_trace.split_calls(
        phase_trace.read_records(buffer_of(recs)), reps), reps)
    consumer = s["gated gemm1 (swap, consumer)"]
    assert [pt["point"] for pt in consumer["points"]] == [
        "entry", "registers set", "mainloop", "epilogue", "exit"]
    assert consumer["points"][2]["median"] == 3_000
    spans = {sp["span"]: sp for sp in consumer["spans"]}
    assert spans["epilogues but the last"]["cycles_each"] == 1_000
    assert spans["stage waits"]["share"] == 1_000 / 7_000
    assert spans["wgmma waits"]["count"] == 40
    assert phase_trace.timer_resolution(phase_trace.read_records(buffer_of(recs))) == 1_000
