"""The small-M input-quant kernel's fallback quotient (kernels-src/input_quant.cuh:
quotient_rn, rn(1 / s) then two fma corrections) rounds exactly like the IEEE division
the contract's reference uses, checked in exact rational arithmetic on the CPU by
scripts/check_exact_quotient.py on values next to FP8 rounding boundaries, where a
1-ulp error would change the byte. The GPU tests check the kernel itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_exact_quotient.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_exact_quotient", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_corrections_round_exactly(check):
    cases, wrong = check.count_wrong(steps=2)
    assert cases > 20000
    assert wrong == 0


def test_uncorrected_quotient_is_caught(check):
    """Without the corrections rn(v * y) is off by an ulp often enough that the same
    cases flip FP8 bytes: the check can fail."""
    _, wrong = check.count_wrong(steps=0, n_scales=5, near=200, plain=0)
    assert wrong > 100
