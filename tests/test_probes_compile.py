"""The standalone CUDA probes in benchmarks/ (tma_stream_probe.cu, handoff_probe.cu,
decode_handoff_probe.cu, split_h_probe.cu; wgmma_plan_probe.cu, host code) are run by
hand, so nothing else would notice if one stopped compiling: build each with the command
its header gives (sm_90a, no GPU needed). Skips without nvcc."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBES = sorted((REPO_ROOT / "benchmarks").glob("*.cu"))


def test_probes_found():
    assert {p.name for p in PROBES} >= {"tma_stream_probe.cu", "handoff_probe.cu",
                                         "decode_handoff_probe.cu", "split_h_probe.cu"}


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_probe_compiles(probe, tmp_path):
    from static_fp8_mlp_cli import nvcc
    from static_fp8_mlp_cli.errors import CliError

    try:
        compiler = nvcc.find_nvcc()
    except CliError as exc:
        pytest.skip(f"no nvcc: {exc}")
    # The header's build line, e.g. "nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/x benchmarks/x.cu".
    assert f"nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/{probe.stem} benchmarks/{probe.name}" in \
        " ".join(probe.read_text().split())
    result = subprocess.run([str(compiler), "-std=c++17", "-O3", "-arch=sm_90a", "-o",
                             str(tmp_path / probe.stem), str(probe)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / probe.stem).stat().st_size > 0
