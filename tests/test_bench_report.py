"""CPU tests of the benchmark suite (benchmarks/bench_mlp.py): argument parsing, the
derived numbers, the markdown tables and the plot from a synthetic JSON, `--replot`, the
clear failure without CUDA, and a dry run of the whole measurement loop on the CPU with
the reference math standing in for the kernel (a wrong "kernel" must show FAIL)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_mlp  # noqa: E402
import bench_report  # noqa: E402
import bench_shapes  # noqa: E402

GIB = 2**30


# ------------------------------------------------------------------ synthetic data


def _row(shape, m, times, check="ok", quant_check="ok", l2=50 * 2**20, copies=1, rel=3e-3,
         paths=None):
    s = bench_shapes.DEFAULT_SHAPES[shape]
    r = {**s.as_dict(), "M": m, "weight_bytes": s.weight_bytes(), "flops": s.flops(m),
         "weight_copies": copies, "l2_bytes": l2, "times_us": dict(times), "batches_us": {},
         "calls_per_graph": {}, "errors": {}, "baseline_rel_err": {},
         "check": {"status": check, "rel_err": rel if check == "ok" else 0.31,
                   "message": "" if check == "ok" else "rel err 3.10e-01 > 0.01"},
         "check_ours_quant": {"status": quant_check, "rel_err": rel, "message": ""}}
    if paths is not None:
        r["paths"] = paths
    return r


def synthetic() -> dict:
    return {
        "schema": 1,
        "meta": {"date": "2026-11-22 10:00 UTC", "command": "python3 benchmarks/bench_mlp.py",
                 "torch": "2.11.0+cu130", "cuda": "13.0", "triton": "3.6.0",
                 "device": {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0",
                            "sm_count": 132, "l2_bytes": 50 * 2**20},
                 "build": {"variant": ".gpu-build/torch211-cxx11-cu130-x86_64-linux",
                           "covered_archs": "8.9, 9.0, 10.0, 12.0"},
                 "settings": {"batches": 5, "warmup_replays": 2,
                              "compile": "compiled once per shape with M marked dynamic"}},
        "ceilings": {"copy_bytes_per_s": 4.28e12, "copy_buffer_bytes": GIB,
                     "fp8_flops_per_s": 1464e12, "fp8_gemm_n": 8192},
        "mlp": [
            _row("gemma2b-geglu", 1, {"bf16": 58.6, "split": 59.1, "compiled": 50.0,
                                      "ours": 25.0, "ours_quant": 27.5}),
            _row("gemma2b-geglu", 512, {"bf16": 206.9, "split": 236.3, "compiled": 114.8,
                                        "ours": 80.0, "ours_quant": 84.0}),
            # a fast but wrong kernel: must never look good
            _row("llama8b-swiglu", 16, {"bf16": 100.0, "split": 82.8, "compiled": 55.8,
                                        "ours": 1.0, "ours_quant": 2.0},
                 check="FAIL", quant_check="FAIL"),
            _row("siglip-gelu", 16, {"bf16": 13.1, "split": 30.8, "compiled": 13.5,
                                     "ours": 6.0, "ours_quant": 7.5},
                 paths={"auto/auto": {"status": "ok", "us": 6.0},
                        "small_m/small_m": {"status": "ok", "us": 5.0},
                        "large_m/large_m": {"status": "ok", "us": 9.0},
                        "tensor_core_tma/tensor_core_tma": {"status": "unsupported",
                                                            "message": "not supported"},
                        "small_m/large_m": {"status": "FAIL", "us": 4.0, "rel_err": 0.5}}),
        ],
        "quant": [
            {"K": 2048, "M": 8192, "bytes": 8192 * 2048 * 3 + 4096 + 4,
             "times_us": {"torch": 60.0, "compiled": 20.0, "ours": 15.0}, "errors": {},
             "check": {"status": "ok", "mismatches": 0, "message": ""}},
            {"K": 2048, "M": 1, "bytes": 2048 * 3 + 4096 + 4,
             "times_us": {"torch": 12.0, "compiled": 5.0, "ours": 2.0}, "errors": {},
             "check": {"status": "FAIL", "mismatches": 3, "message": "3 of 2048 bytes differ"}},
        ],
    }


def _table_rows(md: str, first_cell_prefix: str) -> list[list[str]]:
    rows = []
    for line in md.splitlines():
        if line.startswith("| ") and line[2:].startswith(first_cell_prefix):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


# ------------------------------------------------------------------ shapes and arguments


def test_default_shapes_and_grid():
    shapes = bench_shapes.parse_shapes(None)
    assert [(s.kind, s.k, s.h, s.n) for s in shapes] == [
        ("geglu", 2048, 16384, 2048), ("swiglu", 4096, 14336, 4096),
        ("gelu", 1152, 4304, 1152), ("gelu", 1536, 6144, 1536)]
    assert bench_shapes.DEFAULT_M == (1, 16, 50, 128, 512, 2048, 8192)
    g = bench_shapes.DEFAULT_SHAPES["gemma2b-geglu"]
    assert g.weight_bytes() == 2 * 16384 * 2048 + 2048 * 16384
    assert g.flops(2) == 2 * 2 * 2048 * 32768 + 2 * 2 * 16384 * 2048
    d = bench_shapes.DEFAULT_SHAPES["siglip-gelu"]
    assert d.weight_bytes() == 4304 * 1152 * 2 and not d.gated and d.activation == "gelu_tanh"


def test_parse_shapes_names_custom_and_errors():
    got = bench_shapes.parse_shapes("siglip-gelu, swiglu:1024x4096x512,siglip-gelu")
    assert [s.name for s in got] == ["siglip-gelu", "swiglu-1024x4096x512"]
    assert got[1].gated and got[1].activation == "silu" and got[1].endpoint == "fp8_swiglu_mlp_bf16"
    with pytest.raises(ValueError, match="unknown shape"):
        bench_shapes.parse_shapes("llama70b")
    with pytest.raises(ValueError, match="multiple of 16"):
        bench_shapes.parse_shapes("gelu:1000x4096x1024")


def test_parse_m_and_path_combos():
    assert bench_shapes.parse_ms("1, 16,16,8192") == [1, 16, 8192]
    assert bench_shapes.parse_ms(None, (2, 3)) == [2, 3]
    for bad in ("0", "x", ","):
        with pytest.raises(ValueError):
            bench_shapes.parse_ms(bad)
    combos = bench_shapes.parse_path_combos(None)
    assert combos[0] == ("auto", "auto") and len(combos) == 17
    assert ("tensor_core_tma", "small_m") in combos
    assert bench_shapes.parse_path_combos("small_m/large_m,auto") == [("small_m", "large_m"),
                                                                     ("auto", "auto")]
    with pytest.raises(ValueError, match="P1/P2"):
        bench_shapes.parse_path_combos("fast/slow")
    # the extra forced paths are accepted by name but stay out of the default product
    assert bench_shapes.parse_path_combos("tensor_core_tall_192/tensor_core_split_k") == [
        ("tensor_core_tall_192", "tensor_core_split_k")]
    assert not any("tall" in p for combo in combos for p in combo)


def test_options_defaults_quick_and_errors(tmp_path):
    o = bench_mlp.options_from_args(bench_mlp.parse_args(["--build", "b", "--out", str(tmp_path)]))
    assert o.ms == list(bench_shapes.DEFAULT_M) and len(o.shapes) == 4
    assert (o.batches, o.copy_mib, o.gemm_n, o.tol) == (5, 256, 8192, 1e-2)
    assert o.skip == set() and not o.compare_paths and o.out == tmp_path
    q = bench_mlp.options_from_args(bench_mlp.parse_args(
        ["--quick", "--shapes", "siglip-gelu", "--no-quant", "--skip", "bf16,split",
         "--compare-paths", "--path-combos", "small_m"]))
    assert q.ms == list(bench_shapes.QUICK_M) and q.batches == 3 and q.copy_mib == 256
    assert q.skip == {"bf16", "split", "quant"} and q.path_combos == [("small_m", "small_m")]
    assert bench_mlp.options_from_args(bench_mlp.parse_args(["--quick", "--m", "7"])).ms == [7]
    for argv in (["--skip", "ours"], ["--m", "0"], ["--shapes", "nope"], ["--batches", "0"]):
        with pytest.raises(bench_mlp.UsageError):
            bench_mlp.options_from_args(bench_mlp.parse_args(argv))


def test_bad_arguments_exit_2(capsys):
    assert bench_mlp.main(["--skip", "everything"]) == 2
    assert "--skip" in capsys.readouterr().err


# ------------------------------------------------------------------ derived numbers and tables


def test_floor_matches_baselines_md():
    """BASELINES.md: gemma2b-geglu floor 23.5 us at M=1 (bandwidth), 70.4 at M=512 (compute)."""
    data = synthetic()
    f1, b1 = bench_report.mlp_floor(data["mlp"][0], data)
    f512, b512 = bench_report.mlp_floor(data["mlp"][1], data)
    assert (round(f1, 1), b1) == (23.5, "memory")
    assert (round(f512, 1), b512) == (70.4, "compute")


def test_derived_speedups_and_fail_rows():
    data = synthetic()
    d = bench_report.derive_mlp(data["mlp"][1], data)
    assert d["speedup"]["compiled"] == pytest.approx(114.8 / 80.0)
    assert d["speedup"]["bf16"] == pytest.approx(206.9 / 80.0)
    assert d["speedup_quant"]["compiled"] == pytest.approx(114.8 / 84.0)
    assert d["pct_floor"] == pytest.approx(100 * d["floor_us"] / 80.0)
    bad = bench_report.derive_mlp(data["mlp"][2], data)
    assert not bad["ours_ok"] and bad["speedup"] == {} and bad["pct_floor"] is None
    assert bad["speedup_quant"] == {}


def test_mlp_table_content():
    data = synthetic()
    md = bench_report.render_markdown(data)
    header = next(line for line in md.splitlines() if line.startswith("| shape (K, H, N)"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    rows = {(r[0], r[1]): dict(zip(cols, r)) for r in _table_rows(md, "gemma2b")
            + _table_rows(md, "llama8b") + _table_rows(md, "siglip")}
    g = rows[("gemma2b-geglu (2048, 16384, 2048)", "512")]
    assert g["floor"] == "70.4" and g["ours"] == "80.0" and g["torch.compile"] == "114.8"
    assert g["vs compile"] == "1.44x" and g["vs bf16"] == "2.59x" and g["ours % floor"] == "88%"
    assert g["+quant vs compile"] == "1.37x" and g["check"] == "ok"
    bad = rows[("llama8b-swiglu (4096, 14336, 4096)", "16")]
    # the fake 1 us time never shows, nor any speedup
    assert bad["ours"] == "FAIL" and bad["ours+quant"] == "FAIL"
    for c in ("ours % floor", "vs bf16", "vs split", "vs compile", "+quant vs compile"):
        assert bad[c] == "FAIL"
    assert bad["check"].startswith("**FAIL**")
    assert "1.00" not in " ".join(bad.values())
    # L2 residency is reported for the small dense MLP, not for the big ones
    assert ("siglip-gelu (1152, 4304, 1152) †", "16") in rows
    assert "† weights fit in the 50 MiB L2: siglip-gelu (9.5 MiB)" in md
    assert "gemma2b-geglu (2048, 16384, 2048) †" not in md
    assert "**4 check(s) FAILED:**" in md  # ours, ours+quant, a forced path, the quant row


def test_markdown_order_mlp_table_last():
    md = bench_report.render_markdown(synthetic())
    assert md.index("## Input quant") < md.index("## Forced GEMM paths") < md.index("## MLP endpoints")
    last = md.rstrip("\n").splitlines()[-1]
    assert last.startswith("| siglip-gelu")
    assert "Ceilings measured in this run: copy 4.28 TB/s" in md and "1464 TFLOP/s" in md
    assert "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, L2 50 MiB)" in md


def test_gemm_ceiling_spread_reported():
    """With a start and an end measurement the report says how far the GEMM ceiling moved
    (the large-M floors depend on it); without them it says nothing."""
    data = synthetic()
    assert "FP8 GEMM ceiling within the run" not in bench_report.render_markdown(data)
    data["ceilings"]["measurements"] = {
        "start": {"fp8_flops_per_s": 1.445e15, "fp8_gemm_batches_us": [760.0, 761.0, 838.2, 870.7]},
        "end": {"fp8_flops_per_s": 1.339e15, "fp8_gemm_batches_us": [821.0, "nan"]},
    }
    md = bench_report.render_markdown(data)
    assert ("FP8 GEMM ceiling within the run: 1445 TFLOP/s at the start, 1339 at the end; "
            "its timed batches took 760-871 us") in md
    assert "moves by up to 13%" in md


def test_quant_table():
    data = synthetic()
    md = bench_report.render_markdown(data)
    rows = _table_rows(md, "2048 |")
    big = next(r for r in rows if r[1] == "8192")
    d = bench_report.derive_quant(data["quant"][0], data)
    gbps = data["quant"][0]["bytes"] / 15e-6 / 1e9
    assert d["gbps"]["ours"] == pytest.approx(gbps)
    assert big[7] == f"{gbps:.0f}" and big[8] == f"{100 * gbps * 1e9 / 4.28e12:.0f}%"
    assert big[9] == "4.00x" and big[10] == "1.33x" and big[11] == "ok"
    small = next(r for r in rows if r[1] == "1")
    assert small[6] == "FAIL" and small[9] == "FAIL" and "**FAIL**" in small[11]


def test_paths_table():
    md = bench_report.paths_table(synthetic())
    header = md.splitlines()[0]
    assert "auto/auto" in header and "tensor_core_tma/tensor_core_tma" in header
    row = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    assert row[:2] == ["siglip-gelu", "16"]
    assert "**5.00**" in row and "n/s" in row and "FAIL" in row  # FAIL never wins "best"
    assert row[-2] == "small_m/small_m" and row[-1] == "1.20x"


def test_missing_paths_and_errors_render():
    data = synthetic()
    r = data["mlp"][0]
    del r["times_us"]["compiled"]
    r["errors"]["split"] = "RuntimeError: boom"
    r["times_us"].pop("split")
    md = bench_report.mlp_table(data)
    row = _table_rows(md, "gemma2b-geglu (2048, 16384, 2048) | 1 |")[0]
    assert row[4] == "error" and row[5] == "-" and row[11] == "-"
    data["ceilings"] = {}
    assert bench_report.mlp_floor(r, data) == (None, "-")
    bench_report.render_markdown(data)  # no ceilings: still renders


def test_json_roundtrip_strict_and_replot(tmp_path, capsys):
    data = synthetic()
    data["mlp"][0]["baseline_rel_err"]["bf16"] = math.inf
    res = bench_report.write(data, tmp_path, "run")
    text = res["json"].read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    saved = json.loads(text)
    assert saved["mlp"][1]["derived"]["speedup"]["compiled"] == pytest.approx(114.8 / 80.0)
    loaded = bench_report.load(res["json"])
    assert bench_report.render_markdown(loaded) == res["markdown"]
    out = tmp_path / "again"
    assert bench_mlp.main(["--replot", str(res["json"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == res["markdown"]
    assert (out / "run.md").read_text() == res["markdown"]
    assert not (out / "run.json").exists()
    if res["png"] is not None:
        assert (out / "run.png").stat().st_size > 10_000


def test_replot_bad_json(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_text("{}")
    assert bench_mlp.main(["--replot", str(p)]) == 2
    assert "not a bench_mlp.py JSON" in capsys.readouterr().err


def test_plot_png(tmp_path):
    pytest.importorskip("matplotlib")
    note = bench_report.plot(synthetic(), tmp_path / "p.png")
    assert note is None
    head = (tmp_path / "p.png").read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n"
    data = synthetic()
    for r in data["mlp"]:
        r["times_us"].pop("compiled")
    assert bench_report.plot(data, tmp_path / "q.png") is None  # falls back to the split baseline


# ------------------------------------------------------------------ no GPU, CLI


def test_no_cuda_fails_clearly(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    r = subprocess.run([sys.executable, str(BENCH / "bench_mlp.py"), "--build", str(tmp_path),
                        "--out", str(tmp_path / "o"), "--quick"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 2
    assert "no CUDA device is available" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_subcommand_shares_the_arguments(tmp_path, capsys):
    from static_fp8_mlp_cli import __main__ as cli

    res = bench_report.write(synthetic(), tmp_path, "cli")
    assert cli.main(["bench", "--replot", str(res["json"]), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out == res["markdown"]
    args = cli._parser().parse_args(["bench", "--quick", "--shapes", "siglip-gelu", "--compare-paths"])
    assert args.quick and args.compare_paths and args.shapes == "siglip-gelu"


# ------------------------------------------------------------------ CPU dry run of the loop


def _reference_module():
    spec = importlib.util.spec_from_file_location(
        "sfm_reference_for_bench_test", REPO / "torch-ext" / "static_fp8_mlp" / "reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_kernel(wrong_from_m: int | None = None):
    """The reference math posing as the kernel package (same names and hooks). With
    `wrong_from_m`, the MLPs return 1.5x the right answer for M >= wrong_from_m."""
    ref = _reference_module()

    def spoil(res, inp):
        if wrong_from_m is not None and inp.reshape(-1, inp.shape[-1]).shape[0] >= wrong_from_m:
            res.mul_(1.5)
        return res

    def gated(activation):
        def fn(*args, out=None):
            return spoil(ref.gated_mlp(*args, activation, out=out), args[0])
        return fn

    def gelu(*args, out=None):
        return spoil(ref.fp8_gelu_mlp_bf16(*args, out=out), args[0])

    def with_paths_check(paths):
        if "tensor_core_tma" in paths:
            raise RuntimeError("static_fp8_mlp: launching the up GEMM failed: operation not supported")

    def gated_paths(activation, paths, *args, out=None):
        with_paths_check(paths)
        return gated(activation)(*args, out=out)

    def gelu_paths(paths, *args, out=None):
        with_paths_check(paths)
        return gelu(*args, out=out)

    return types.SimpleNamespace(
        reference=ref, __variant_dir__="<reference on the CPU>", __metadata__=None,
        covered_archs=lambda: "cpu",
        channel_scale_quantize_fp8_static_bf16=ref.channel_scale_quantize_fp8_static_bf16,
        fp8_swiglu_mlp_bf16=gated("silu"), fp8_geglu_mlp_bf16=gated("gelu_tanh"),
        fp8_gelu_mlp_bf16=gelu, _gated_mlp_with_paths=gated_paths, _gelu_mlp_with_paths=gelu_paths)


def _dry_opts(tmp_path, *extra):
    argv = ["--shapes", "geglu:64x128x48,gelu:32x64x48,swiglu:64x96x32", "--m", "1,5,16",
            "--skip", "compiled", "--copy-mib", "1", "--gemm-n", "64", "--out", str(tmp_path),
            "--compare-paths", "--path-combos", "auto,small_m/large_m,tensor_core_tma", *extra]
    return bench_mlp.options_from_args(bench_mlp.parse_args(argv))


def _dry_run(opts, tmp_path, capsys, batches: int = 2) -> tuple[dict, str]:
    """A CPU dry run of the benchmark on the reference posing as the kernel, which must
    succeed: the saved JSON and what it printed."""
    import bench_torch

    rc = bench_mlp.run_with(opts, fake_kernel(), "cpu",
                            bench_torch.WallTimer(batches=batches, calls=1))
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads((tmp_path / "bench_mlp.json").read_text()), out


def test_cpu_dry_run_end_to_end(tmp_path, capsys):
    pytest.importorskip("torch")
    data, out = _dry_run(_dry_opts(tmp_path), tmp_path, capsys)
    assert len(data["mlp"]) == 9 and len(data["quant"]) == 6  # K = 64, 32 (deduplicated)
    for r in data["mlp"]:
        assert r["check"]["status"] == "ok" and r["check"]["rel_err"] < 1e-6
        assert r["check_ours_quant"]["status"] == "ok"
        assert set(r["times_us"]) == {"bf16", "split", "ours", "ours_quant"}, r["errors"]
        # tiny H: the bf16 rounding of the split path's GEMM1 output flips hidden codes
        assert r["baseline_rel_err"]["split"] < 6e-2
        assert r["paths"]["auto/auto"]["status"] == "ok"
        assert r["paths"]["tensor_core_tma/tensor_core_tma"]["status"] == "unsupported"
    for r in data["quant"]:
        assert r["check"]["status"] == "ok" and r["baseline_exact"]["torch"]
    c = data["ceilings"]
    assert c["copy_bytes_per_s"] > 0 and c["fp8_gemm_n"] == 64
    assert set(c["measurements"]) == {"start", "end"}
    assert c["fp8_flops_per_s"] == max(v["fp8_flops_per_s"] for v in c["measurements"].values())
    assert out.rstrip("\n").splitlines()[-1].startswith("| swiglu-64x96x32 (64, 96, 32) | 16 |")
    assert (tmp_path / "bench_mlp.md").read_text() == out


def test_rotations_vary_the_first_path():
    pytest.importorskip("torch")
    import bench_torch

    assert bench_torch.rotations(["a", "b", "c"], 4) == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert bench_torch.rotations([], 3) == []


def test_wall_timer_interleaves_and_reports_failures_per_path():
    pytest.importorskip("torch")
    import bench_torch

    calls = []

    def step(name):
        return lambda i: calls.append(name)

    def broken(i):
        raise ValueError("no kernel")

    timer = bench_torch.WallTimer(batches=3, warmup=0, calls=1)
    got = timer.time_interleaved({"a": step("a"), "bad": broken, "b": step("b")})
    assert isinstance(got["bad"], ValueError)
    assert got["a"].calls == 1 and len(got["a"].batches_us) == 3 and len(got["b"].batches_us) == 3
    # one warm-up call each, then the timed batches in rotating order
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]


def test_interleaved_timing_is_the_default():
    assert bench_mlp.options_from_args(bench_mlp.parse_args([])).interleave is True
    assert bench_mlp.options_from_args(bench_mlp.parse_args(["--interleave"])).interleave is True
    assert bench_mlp.options_from_args(bench_mlp.parse_args(["--sequential"])).interleave is False
    with pytest.raises(SystemExit):
        bench_mlp.parse_args(["--sequential", "--interleave"])


def test_cpu_dry_run_sequential(tmp_path, capsys):
    pytest.importorskip("torch")
    data, _ = _dry_run(_dry_opts(tmp_path, "--sequential"), tmp_path, capsys)
    assert data["meta"]["settings"]["interleave"] is False
    assert all(len(v) == 2 for r in data["mlp"] for v in r["batches_us"].values())
    md = (tmp_path / "bench_mlp.md").read_text()
    assert "one after the other (--sequential)" in md and "alternated" not in md


def test_cpu_dry_run_interleaved(tmp_path, capsys):
    pytest.importorskip("torch")
    data, _ = _dry_run(_dry_opts(tmp_path, "--interleave"), tmp_path, capsys)
    assert data["meta"]["settings"]["interleave"] is True
    for r in data["mlp"]:
        assert set(r["times_us"]) == {"bf16", "split", "ours", "ours_quant"}, r["errors"]
        assert all(len(v) == 2 for v in r["batches_us"].values())
    for r in data["quant"]:
        assert set(r["times_us"]) == {"torch", "ours"}, r["errors"]
    assert "timed replays alternated" in (tmp_path / "bench_mlp.md").read_text()


def test_cpu_dry_run_wrong_kernel_is_marked_fail(tmp_path, capsys):
    pytest.importorskip("torch")
    import bench_torch

    opts = _dry_opts(tmp_path, "--no-quant")
    rc = bench_mlp.run_with(opts, fake_kernel(wrong_from_m=5), "cpu",
                            bench_torch.WallTimer(batches=1, calls=1))
    md = capsys.readouterr().out
    assert rc == 1
    data = json.loads((tmp_path / "bench_mlp.json").read_text())
    for r in data["mlp"]:
        want = "ok" if r["M"] < 5 else "FAIL"
        assert r["check"]["status"] == want and r["check_ours_quant"]["status"] == want
        assert r["paths"]["small_m/large_m"]["status"] == want
        assert (r["derived"]["speedup"] == {}) == (want == "FAIL")
    rows = _table_rows(md, "gelu-32x64x48 (")
    assert [r[6] for r in rows][1:] == ["FAIL", "FAIL"] and rows[0][6] != "FAIL"
    assert "check(s) FAILED" in md


@pytest.mark.parametrize("per_row", (False, True))
def test_split_path_is_the_contract_math_cpu(per_row):
    """The torch-op baselines compute the contract's function: the FP8 split path up to
    its bf16 GEMM1 output (which flips an occasional hidden FP8 code), the BF16 path up
    to the FP8 quantisation it skips. A wrong activation or a dropped bias is far off.
    With per-row weight scales the scales differ between rows (so ignoring them would be
    far off too); on the CPU the split path takes its row-wise stand-in."""
    torch = pytest.importorskip("torch")
    import bench_torch as bt

    ref = _reference_module()
    for spec in ("swiglu:256x1024x256", "geglu:256x1024x256", "gelu:256x1024x256"):
        shape = bench_shapes.parse_shapes(spec)[0]
        gen = torch.Generator().manual_seed(3)
        w = bt.make_weights(shape, "cpu", gen, copies=2, per_row=per_row)
        rows1 = 2 * shape.h if shape.gated else shape.h
        assert tuple(w.w1_scale.shape) == ((rows1,) if per_row else ())
        assert tuple(w.w2_scale.shape) == ((shape.n,) if per_row else ())
        if per_row:
            assert w.w1_scale.max() > 1.05 * w.w1_scale.min()
            # each row uses its FP8 range: its largest code is the saturation value
            assert torch.all(w.copies[0].w1.float().abs().amax(dim=1) == bt.FP8_MAX)
        assert torch.equal(w.copies[0].w1.view(torch.uint8), w.copies[1].w1.view(torch.uint8))
        assert w.copies[0].w1.data_ptr() != w.copies[1].w1.data_ptr()
        b = bt.make_batch(shape, w, 32, "cpu", gen, ref)
        assert torch.equal(bt.quant_static(b.x, b.input_scale).view(torch.uint8),
                           b.xq.view(torch.uint8))
        r = bt.reference_mlp(shape, ref, w, b)
        split = bt.split_gated if shape.gated else bt.split_dense
        assert bt.rel_err(bt.split_call(shape, split, w, w.copies[1], b), r) < 3e-2
        assert bt.rel_err(bt.bf16_call(shape, w.copies[0], b), r) < 8e-2
        if shape.gated:
            other = "gelu_tanh" if shape.activation == "silu" else "silu"
            wrong = bt.split_gated(b.x, w.copies[0].w1, w.copies[0].w2, b.input_scale,
                                   w.w1_scale, b.hidden_scale, w.w2_scale, other)
        else:
            c = w.copies[0]
            wrong = bt.split_dense(b.x, c.w1, torch.zeros_like(c.b1), c.w2, c.b2, b.input_scale,
                                   w.w1_scale, b.hidden_scale, w.w2_scale)
        assert bt.rel_err(wrong, r) > 0.1
        if per_row:  # the per-row scales matter: their mean in their place is far off
            c = w.copies[0]
            args = (b.input_scale, w.w1_scale.mean(), b.hidden_scale, w.w2_scale.mean())
            flat = (bt.split_gated(b.x, c.w1, c.w2, *args, shape.activation) if shape.gated
                    else bt.split_dense(b.x, c.w1, c.b1, c.w2, c.b2, *args))
            assert bt.rel_err(flat, r) > 0.02
        q = bt.check_mlp(r.clone(), r, 1e-2)
        assert q["status"] == "ok" and q["rel_err"] == 0.0
        nan = r.clone()
        nan[0, 0] = float("nan")
        assert bt.check_mlp(nan, r, 1e-2)["status"] == "FAIL"
        assert bt.check_mlp(r[:, :-1], r, 1e-2)["status"] == "FAIL"


@pytest.mark.slow
def test_cpu_dry_run_with_torch_compile(tmp_path, capsys):
    """The torch.compile baseline: one graph for M = 1 and one, M marked dynamic, reused
    for every M >= 2 (CPU Inductor here; about half a minute)."""
    pytest.importorskip("torch")
    import bench_torch

    argv = ["--shapes", "gelu:32x64x48", "--m", "1,5,9", "--no-quant", "--skip", "bf16",
            "--copy-mib", "1", "--gemm-n", "64", "--out", str(tmp_path)]
    opts = bench_mlp.options_from_args(bench_mlp.parse_args(argv))
    rc = bench_mlp.run_with(opts, fake_kernel(), "cpu", bench_torch.WallTimer(batches=1, calls=1))
    capsys.readouterr()
    assert rc == 0
    rows = json.loads((tmp_path / "bench_mlp.json").read_text())["mlp"]
    for r in rows:
        assert "compiled" in r["times_us"], r["errors"]
        assert r["baseline_rel_err"]["compiled"] < 6e-2
    # M=9 reuses the dynamic-M graph compiled for M=5: no compile on its first call
    assert rows[2]["compiled_first_call_s"] < 0.5 * rows[1]["compiled_first_call_s"]


def test_error_rows_render_as_error():
    """An endpoint that raised (e.g. a build without kernels for this GPU) has no time."""
    data = synthetic()
    r = data["mlp"][0]
    r["check"] = {"status": "ERROR", "rel_err": None, "message": "RuntimeError: no kernels for 9.0"}
    r["check_ours_quant"] = {"status": "ERROR", "rel_err": None, "message": "RuntimeError: x"}
    r["times_us"].pop("ours")
    r["times_us"].pop("ours_quant")
    row = _table_rows(bench_report.mlp_table(data), "gemma2b-geglu (2048, 16384, 2048) | 1 |")[0]
    assert row[6:13] == ["ERROR"] * 7
    assert row[13].startswith("**ERROR** (RuntimeError: no kernels for 9.0)") and "+quant" in row[13]
    assert bench_mlp.bench_report.failures(data)[0].startswith("gemma2b-geglu M=1 ours: ERROR")


@pytest.mark.gpu
def test_graph_timer_sequential_and_interleaved():
    """GraphTimer on the GPU: one path alone, and several captured together with their
    timed replays alternating; a path whose warm-up fails is reported, the others timed."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    import bench_torch

    a = torch.randn(512, 512, device="cuda")
    b = torch.empty_like(a)

    def broken(i):
        raise ValueError("no kernel")

    timer = bench_torch.GraphTimer(batches=3, warmup=1, target_ms=0.2, max_calls=20)
    alone = timer.time(lambda i: b.copy_(a))
    assert alone.us > 0 and len(alone.batches_us) == 3 and 3 <= alone.calls <= 20
    got = timer.time_interleaved({"copy": lambda i: b.copy_(a), "bad": broken,
                                  "mul": lambda i: torch.mul(a, 2.0, out=b)})
    assert isinstance(got["bad"], ValueError)
    for name in ("copy", "mul"):
        assert got[name].us > 0 and len(got[name].batches_us) == 3, name
    torch.testing.assert_close(b, a * 2.0)  # the last replay was a graph of real work


def test_rowwise_scales_have_the_shapes_scaled_mm_wants():
    """torch._scaled_mm's row-wise mode (CUDA) wants fp32 [M, 1] and [1, rows], contiguous;
    the CPU cannot run that mode, so the arguments are checked here."""
    torch = pytest.importorskip("torch")
    import bench_torch as bt

    sa, sb = bt.rowwise_scales(torch.tensor(0.25), torch.arange(1.0, 7.0), 5)
    assert tuple(sa.shape) == (5, 1) and tuple(sb.shape) == (1, 6)
    assert sa.is_contiguous() and sb.is_contiguous()
    assert sa.dtype == sb.dtype == torch.float32
    assert torch.all(sa == 0.25) and torch.equal(sb[0], torch.arange(1.0, 7.0))


def test_cpu_dry_run_per_row(tmp_path, capsys):
    """--per-row: every row checks out against the reference with per-row weight scales,
    the settings say so, and so does the markdown's method line."""
    pytest.importorskip("torch")
    argv = ["--shapes", "geglu:64x128x48,gelu:32x64x48", "--m", "1,5", "--skip", "compiled",
            "--no-quant", "--copy-mib", "1", "--gemm-n", "64", "--out", str(tmp_path),
            "--per-row"]
    opts = bench_mlp.options_from_args(bench_mlp.parse_args(argv))
    assert opts.per_row
    data, _ = _dry_run(opts, tmp_path, capsys, batches=1)
    assert data["meta"]["settings"]["per_row_weight_scales"] is True
    for r in data["mlp"]:
        assert r["check"]["status"] == "ok" and r["check"]["rel_err"] < 1e-6
        assert r["baseline_rel_err"]["split"] < 6e-2
    assert "per-row weight scales" in (tmp_path / "bench_mlp.md").read_text()


def test_split_path_rowwise_on_the_gpu():
    """The split path's CUDA row-wise `torch._scaled_mm` (per-row weight scales) computes
    the contract's function, eager and under torch.compile with M marked dynamic."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    import bench_torch as bt

    ref = _reference_module()
    for spec in ("geglu:256x1024x256", "gelu:256x1024x256"):
        shape = bench_shapes.parse_shapes(spec)[0]
        gen = torch.Generator(device="cuda").manual_seed(5)
        w = bt.make_weights(shape, "cuda", gen, per_row=True)
        split = bt.split_gated if shape.gated else bt.split_dense
        compiled = bt.compile_fn(split, static=False)
        for m in (1, 33):
            b = bt.make_batch(shape, w, m, "cuda", gen, ref)
            r = bt.reference_mlp(shape, ref, w, b)
            assert bt.rel_err(bt.split_call(shape, split, w, w.copies[0], b), r) < 3e-2
            xc = bt.input_for_compiled(b.x, dynamic_m=True)
            got = bt.split_call(shape, compiled, w, w.copies[0], b, x=xc)
            assert bt.rel_err(got, r) < 3e-2
