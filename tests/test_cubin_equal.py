"""scripts/cubin_equal.py's parts on the CPU (the compiles themselves take minutes and
are run by hand): build.toml's kernel units, the gencode flags, the masking of
anonymous-namespace hashes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import cubin_equal  # noqa: E402


def test_kernel_units_follow_build_toml():
    units = cubin_equal.kernel_units(REPO_ROOT / "build.toml", None)
    assert ("hopper_sm90a", "kernels-src/arch/hopper_sm90a.cu", "9.0a") in units
    assert {cap for name, _, cap in units if name == "portable_sm89_sm90"} == {"8.9", "9.0a"}
    assert all((REPO_ROOT / cu).is_file() for _, cu, _ in units)
    only = cubin_equal.kernel_units(REPO_ROOT / "build.toml", {"hopper_sm90a"})
    assert only == [("hopper_sm90a", "kernels-src/arch/hopper_sm90a.cu", "9.0a")]
    with pytest.raises(SystemExit, match="no such section"):
        cubin_equal.kernel_units(REPO_ROOT / "build.toml", {"nope"})


def test_gencode():
    assert cubin_equal.gencode("9.0a") == "-gencode=arch=compute_90a,code=sm_90a"
    assert cubin_equal.gencode("8.9") == "-gencode=arch=compute_89,code=sm_89"


def test_masking_hides_only_the_per_compilation_hashes():
    a = (b"\x00_ZN14static_fp8_mlp54_GLOBAL__N__ee05c977_15_hopper_sm90a_cu_aaaa3a3e_1805711"
         b"input_quant19quantize_vec_kernelImEEv\x00")
    b = a.replace(b"aaaa3a3e_18057", b"a287bbae_18070").replace(b"ee05c977", b"037a9046")
    assert a != b and cubin_equal.masked(a) == cubin_equal.masked(b)
    other_kernel = b.replace(b"quantize_vec", b"quantize_xyz")
    assert cubin_equal.masked(a) != cubin_equal.masked(other_kernel)
    code_change = a + b"\x01"
    assert cubin_equal.masked(a) != cubin_equal.masked(code_change)
