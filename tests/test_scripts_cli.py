"""The GPU-side tools (scripts/, benchmarks/) import and answer --help on the CPU.

They run only on the lent GPU machine, where a broken import or a typo costs a device
call; here each argparse script is run as __main__ with --help, which imports everything
it imports and builds its parser, then exits before touching a GPU.
"""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def argparse_scripts() -> list[Path]:
    found = []
    for folder in ("scripts", "benchmarks"):
        for path in sorted((REPO_ROOT / folder).glob("*.py")):
            text = path.read_text()
            if "ArgumentParser(" in text and 'if __name__ == "__main__"' in text:
                found.append(path)
    return found


def test_the_tools_are_found():
    names = {p.name for p in argparse_scripts()}
    assert {"build_equal.py", "mlp_ab.py", "kernel_grids.py", "bench_mlp.py"} <= names


@pytest.mark.parametrize("script", argparse_scripts(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_answers_help(script: Path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    monkeypatch.setattr(sys, "path", sys.path[:])  # the scripts prepend their folders
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code == 0
    assert out.getvalue().startswith("usage:")


def test_refusal_separates_refused_problems_from_cuda_errors():
    """perf_probe.refusal, which the sweeps use to skip a forced path a shape does not
    support: an endpoint's RuntimeError gives its first line, a CUDA error propagates."""
    import torch

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        from perf_probe import refusal
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))

    def refuse():
        raise RuntimeError("static_fp8_mlp: path not supported\nmore detail")

    def crash():
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")

    assert refusal(lambda: None) is None
    assert refusal(refuse) == "static_fp8_mlp: path not supported"
    with pytest.raises(torch.AcceleratorError):
        refusal(crash)


def test_fused_overhead_benchmark_runs_on_cpu(tmp_path, monkeypatch):
    """The registry's host-overhead benchmark fuses all four layouts with no-op kernels
    and writes one row per layout and M (its numbers are not asserted)."""
    import json

    monkeypatch.setattr(sys, "path", sys.path[:])
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import bench_fused_overhead

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = bench_fused_overhead.main(["--m", "1,3", "--calls", "3", "--batches", "1", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads((tmp_path / "fused_overhead.json").read_text())["rows"]
    assert [(r["layout"].split()[0], r["M"]) for r in rows] == [
        (kind, m) for kind in ("swiglu", "swiglu", "geglu", "gelu") for m in (1, 3)
    ]
    assert all(r["fused_us"] > 0 and r["direct_us"] > 0 for r in rows)
    assert (tmp_path / "fused_overhead.md").read_text().count("\n| ") == 2 + len(rows)
