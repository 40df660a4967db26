"""scripts/ab_verdict.py on synthetic mlp_ab.py JSON (CPU): paired rounds, the calls,
contract failures, the summary."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import ab_verdict  # noqa: E402


def row(variant, kind, m, times, err=1e-3):
    return {"kind": kind, "m": m, "variant": variant, "times_us": times,
            "median_us": sorted(times)[len(times) // 2], "rel_err": err, "per_row": False}


# Round drift (10 -> 14 us) larger than the variants' differences: only pairing sees them.
DRIFT = [10.0, 11.0, 12.0, 13.0, 14.0]


def test_paired_rounds_see_through_drift():
    rows = [row("A", "gelu", 8192, DRIFT),
            row("B", "gelu", 8192, [t - 0.5 for t in DRIFT]),          # faster every round
            row("C", "gelu", 8192, [t + 0.5 for t in DRIFT]),          # slower every round
            row("D", "gelu", 8192, [t + d for t, d in zip(DRIFT, (-.5, .5, -.5, .5, 0))])]
    base, out = ab_verdict.verdicts(rows, None, 0.8, 0.2, 1.0)
    assert base == "A"
    assert out["B"]["points"][0]["call"] == "faster"
    assert out["B"]["points"][0]["median_diff_us"] == pytest.approx(-0.5)
    assert out["B"]["points"][0]["rounds_faster"] == 5
    assert out["C"]["points"][0]["call"] == "slower"
    assert out["D"]["points"][0]["call"] == "even"  # signs disagree
    assert out["B"]["counts"] == {"faster": 1, "even": 0, "slower": 0, "FAIL": 0}
    assert out["B"]["geomean_ratio"] == pytest.approx(11.5 / 12.0)


def test_small_differences_are_even_and_failures_fail():
    rows = [row("A", "geglu", 50, DRIFT), row("A", "geglu", 2048, DRIFT),
            row("B", "geglu", 50, [t - 0.1 for t in DRIFT]),            # under --min-us
            row("B", "geglu", 2048, [t - 1.0 for t in DRIFT], err=0.5)]  # fast but wrong
    _, out = ab_verdict.verdicts(rows, "A", 0.8, 0.2, 1.0)
    calls = {p["m"]: p["call"] for p in out["B"]["points"]}
    assert calls == {50: "even", 2048: "FAIL"}
    assert out["B"]["counts"]["FAIL"] == 1
    text = ab_verdict.render("A", out)
    assert "B against A: 0 faster, 1 even, 0 slower, 1 FAIL" in text


def test_compile_is_not_held_to_the_contract_and_base_can_be_chosen():
    rows = [row("ours", "swiglu", 400, DRIFT),
            row("compile", "swiglu", 400, [t - 1 for t in DRIFT], err=0.03)]
    base, out = ab_verdict.verdicts(rows, "ours", 0.8, 0.2, 1.0)
    assert base == "ours" and out["compile"]["points"][0]["call"] == "faster"
    with pytest.raises(SystemExit, match="not among the variants"):
        ab_verdict.verdicts(rows, "nope", 0.8, 0.2, 1.0)


def test_cli_end_to_end(tmp_path, capsys):
    src = tmp_path / "ab.json"
    src.write_text(json.dumps([row("A", "gelu", 16, DRIFT),
                               row("B", "gelu", 16, [t + 1 for t in DRIFT])]))
    dst = tmp_path / "verdict.json"
    assert ab_verdict.main([str(src), "--json", str(dst)]) == 0
    assert "1 slower" in capsys.readouterr().out
    saved = json.loads(dst.read_text())
    assert saved["base"] == "A" and saved["variants"]["B"]["points"][0]["call"] == "slower"
    assert math.isclose(saved["variants"]["B"]["geomean_ratio"], 13.0 / 12.0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "rows"}))
    with pytest.raises(SystemExit, match="not an mlp_ab.py"):
        ab_verdict.main([str(bad)])
