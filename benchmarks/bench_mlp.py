#!/usr/bin/env python3
"""Benchmark of the static-fp8-mlp endpoints against what users run today (issue 5).

For each MLP shape and M, in one process and run: BF16 `F.linear` (cuBLAS), the static
FP8 split path in torch ops, the same under torch.compile, ours (FP8 input, as in the
contract) and ours including the input-quant endpoint; then the input quant alone on the
same K values. Every path is timed as CUDA-graph replays, a row's paths interleaved
(their timed replays alternate; --sequential: one path after the other); the floor
comes from the copy bandwidth and FP8 GEMM rate measured in the same run; our output is
checked against the contract reference before each (shape, M) is timed, and a row that
fails shows FAIL.

    python3 benchmarks/bench_mlp.py --build .gpu-build --out $OUT/bench
    python3 benchmarks/bench_mlp.py --replot $OUT/bench/bench_mlp.json

Needs only torch (+ matplotlib for the PNG); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_report  # noqa: E402  (standard library only)
import bench_shapes  # noqa: E402

PROG = "bench_mlp.py"
SKIPPABLE = ("bf16", "split", "compiled", "ours_quant", "quant")
SLOW_CALL_S = 0.25  # --compare-paths: a forced path slower than this per call is timed lightly


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_build() -> str:
    env = os.environ.get("STATIC_FP8_MLP_BUILD")
    if env:
        return env
    for cand in (".gpu-build", "build"):
        if Path(cand).exists():
            return cand
    return "build"


# ------------------------------------------------------------------ arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    shapes = ", ".join(f"{s.name} ({s.kind} K={s.k} H={s.h} N={s.n})"
                       for s in bench_shapes.DEFAULT_SHAPES.values())
    parser.add_argument("--build", default=None,
                        help="kernel build: a variant dir, a build dir holding variants, or a "
                        "project dir with build/ (default: $STATIC_FP8_MLP_BUILD, else .gpu-build "
                        "or build in the current directory)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for bench_mlp.json/.md/.png (default: benchmarks/out; "
                        "with --replot: the JSON's directory)")
    parser.add_argument("--shapes", default=None,
                        help=f"comma-separated shape names or KIND:KxHxN (default: all of {shapes})")
    parser.add_argument("--m", default=None,
                        help="comma-separated M values (default: "
                        + ",".join(map(str, bench_shapes.DEFAULT_M)) + "; with --quick: "
                        + ",".join(map(str, bench_shapes.QUICK_M)) + ")")
    parser.add_argument("--quick", action="store_true",
                        help="fast smoke run: M in " + ",".join(map(str, bench_shapes.QUICK_M))
                        + " unless --m is given, 3 timed batches, 256 MiB copy buffer")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to leave out: " + ", ".join(SKIPPABLE))
    parser.add_argument("--no-quant", action="store_true", help="same as --skip quant")
    parser.add_argument("--compare-paths", action="store_true",
                        help="also time ours with each forced GEMM path pair (the "
                        "_gated_mlp_with_paths/_gelu_mlp_with_paths test hooks)")
    parser.add_argument("--path-combos", default=None,
                        help="pairs for --compare-paths, e.g. small_m/large_m,auto (default: "
                        "auto/auto and every pair of small_m, large_m, tensor_core_tma, weight_stream)")
    parser.add_argument("--rotate-weights", action="store_true",
                        help="rotate every path over enough weight copies that weights come "
                        "from HBM, not L2 (default: off; L2-resident shapes are marked)")
    parser.add_argument("--per-row", action="store_true",
                        help="per-row (channel-wise) weight scales, as many FP8 checkpoints have, "
                        "for every FP8 path (the split paths use torch._scaled_mm's row-wise "
                        "mode); default: per-tensor weight scales")
    parser.add_argument("--compile-static", action="store_true",
                        help="compile the split path once per (shape, M) with dynamic=False "
                        "(default: once per shape with M marked dynamic, plus M=1)")
    parser.add_argument("--batches", type=int, default=None,
                        help="timed replays per path, median reported (default 5; 3 with --quick)")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--interleave", dest="interleave", action="store_true", default=True,
                        help="time the paths of each row together (the default): capture all "
                             "their graphs, then alternate their timed replays, rotating the order")
    timing.add_argument("--sequential", dest="interleave", action="store_false",
                        help="time one path after the other instead (each path then runs in the "
                             "clock and power state its predecessor left: see benchmarks/README.md)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed replays first (default 2)")
    parser.add_argument("--target-ms", type=float, default=10.0,
                        help="aim for graph replays of about this long (default 10)")
    parser.add_argument("--max-calls", type=int, default=200,
                        help="most calls captured in one graph (default 200)")
    parser.add_argument("--copy-mib", type=int, default=None,
                        help="buffer size of the copy-bandwidth ceiling at the start of the run (default "
                        "256); the end of a full run measures 1024 MiB as well and the floor uses "
                        "the faster (stricter) of the two (H200: 4.2 TB/s at 256 MiB, 2.7 at 1 GiB)")
    parser.add_argument("--gemm-n", type=int, default=8192,
                        help="size of the FP8 GEMM-rate ceiling, n^3 (default 8192)")
    parser.add_argument("--tol", type=float, default=1e-2,
                        help="relative-error bound of the correctness guard (default 1e-2, the contract's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stem", default="bench_mlp", help="output file name stem (default bench_mlp)")
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="regenerate the markdown table and the plot from a saved JSON "
                        "(no GPU needed) and exit")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser.parse_args(argv)


@dataclass
class Options:
    build: str
    out: Path
    shapes: list
    ms: list[int]
    skip: set[str]
    compare_paths: bool
    path_combos: list
    rotate_weights: bool
    compile_static: bool
    batches: int
    warmup: int
    target_ms: float
    max_calls: int
    copy_mib: int
    gemm_n: int
    tol: float
    seed: int
    stem: str
    quick: bool
    interleave: bool = True
    per_row: bool = False
    extra: dict = field(default_factory=dict)

    def settings(self) -> dict:
        return {
            "shapes": [s.as_dict() for s in self.shapes], "m": self.ms, "skip": sorted(self.skip),
            "compare_paths": self.compare_paths,
            "path_combos": [bench_shapes.combo_name(c) for c in self.path_combos],
            "rotate_weights": self.rotate_weights,
            "compile": ("dynamic=False, compiled once per (shape, M)" if self.compile_static
                        else "compiled once per shape with M marked dynamic (M=1 specialised)"),
            "batches": self.batches, "warmup_replays": self.warmup, "target_ms": self.target_ms,
            "max_calls": self.max_calls, "copy_mib": self.copy_mib, "gemm_n": self.gemm_n,
            "tol": self.tol, "seed": self.seed, "quick": self.quick,
            "interleave": self.interleave, "per_row_weight_scales": self.per_row,
        }


class UsageError(ValueError):
    pass


def options_from_args(args: argparse.Namespace) -> Options:
    try:
        shapes = bench_shapes.parse_shapes(args.shapes)
        ms = bench_shapes.parse_ms(args.m, bench_shapes.QUICK_M if args.quick else bench_shapes.DEFAULT_M)
        combos = bench_shapes.parse_path_combos(args.path_combos)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    skip = {s.strip() for s in (args.skip or "").split(",") if s.strip()}
    bad = skip - set(SKIPPABLE)
    if bad:
        raise UsageError(f"--skip: unknown part(s) {', '.join(sorted(bad))}; choose from {', '.join(SKIPPABLE)}")
    if args.no_quant:
        skip.add("quant")
    for name in ("batches", "max_calls", "copy_mib", "gemm_n"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {v}")
    if args.warmup < 0 or args.target_ms <= 0 or args.tol <= 0:
        raise UsageError("--warmup must be >= 0, --target-ms and --tol > 0")
    return Options(
        build=args.build or default_build(),
        out=args.out if args.out is not None else REPO / "benchmarks" / "out",
        shapes=shapes, ms=ms, skip=skip, compare_paths=args.compare_paths, path_combos=combos,
        rotate_weights=args.rotate_weights, compile_static=args.compile_static,
        batches=args.batches or (3 if args.quick else 5), warmup=args.warmup,
        target_ms=args.target_ms, max_calls=args.max_calls,
        copy_mib=args.copy_mib or 256, gemm_n=args.gemm_n,
        tol=args.tol, seed=args.seed, stem=args.stem, quick=args.quick,
        interleave=args.interleave, per_row=args.per_row,
    )


# ------------------------------------------------------------------ environment


class FatalCudaError(RuntimeError):
    """The CUDA context is unusable (a sticky error): stop, keep what was measured."""


def _err(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 600:
        msg = msg[:600] + "..."
    return f"{type(exc).__name__}: {msg}"


def _ensure_alive(device: str) -> None:
    if device == "cpu":
        return
    import torch

    try:
        torch.cuda.synchronize()
    except Exception as exc:  # sticky errors (illegal address, ...) poison every later call
        raise FatalCudaError(f"the CUDA context is broken, stopping: {_err(exc)}") from exc


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):
        return "python3 " + shlex.join(argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def _git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def collect_meta(opts: Options, sfm, device: str) -> dict:
    import torch

    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": _command_line(),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "git": _git_commit(),
        "settings": opts.settings(),
    }
    try:
        import triton

        meta["triton"] = triton.__version__
    except Exception:
        pass
    if device == "cpu":
        meta["device"] = {"name": "CPU (dry run: not a benchmark)"}
    else:
        p = torch.cuda.get_device_properties(0)
        meta["device"] = {"name": p.name, "capability": f"{p.major}.{p.minor}",
                          "sm_count": p.multi_processor_count,
                          "l2_bytes": getattr(p, "L2_cache_size", None),
                          "memory_bytes": p.total_memory, "count": torch.cuda.device_count()}
        try:
            meta["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                 "--format=csv,noheader", "-i", "0"], capture_output=True, text=True,
                timeout=20).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
    build = {"variant": str(getattr(sfm, "__variant_dir__", "") or opts.build)}
    if getattr(sfm, "__metadata__", None) is not None:
        build["metadata"] = sfm.__metadata__
    try:
        build["covered_archs"] = sfm.covered_archs()
    except Exception:
        pass
    meta["build"] = build
    return meta


# ------------------------------------------------------------------ the run


@dataclass
class Ctx:
    opts: Options
    sfm: object
    device: str
    timer: object
    l2_bytes: int
    t0: float

    def elapsed(self) -> str:
        return f"[{time.perf_counter() - self.t0:6.1f}s]"


def _weight_copies(ctx: Ctx, shape) -> int:
    if not ctx.opts.rotate_weights or not ctx.l2_bytes:
        return 1
    wb = shape.weight_bytes()
    if wb >= 3 * ctx.l2_bytes:
        return 1
    return int(min(64, max(2, math.ceil(3 * ctx.l2_bytes / wb))))


def _record(ctx: Ctx, row: dict, name: str, result) -> None:
    """A path's Timing into the row, or the exception that stopped it into its errors."""
    if isinstance(result, Exception):
        row["errors"][name] = _err(result)
        _ensure_alive(ctx.device)
        return
    row["times_us"][name] = result.us
    row["batches_us"][name] = result.batches_us
    row["calls_per_graph"][name] = result.calls


def _time_row(ctx: Ctx, row: dict, steps: dict, order: tuple[str, ...]) -> None:
    """Times the row's paths in `order` together, their timed replays alternating, or (with
    --sequential) one after the other."""
    names = [name for name in order if name in steps]
    groups = [names] if ctx.opts.interleave else [[name] for name in names]
    for group in groups:
        try:
            results = ctx.timer.time_interleaved({name: steps[name] for name in group})
        except FatalCudaError:
            raise
        except Exception as exc:  # a replay failed: no time for any path of the group
            results = {name: exc for name in group}
        for name in group:
            _record(ctx, row, name, results[name])


def run_shape(ctx: Ctx, shape, data: dict) -> None:
    import torch

    import bench_torch as bt

    opts, sfm, dev = ctx.opts, ctx.sfm, ctx.device
    torch._dynamo.reset()
    gen = torch.Generator(device=dev).manual_seed(opts.seed * 1000003 + shape.k * 31 + shape.h * 7 + shape.n)
    copies = _weight_copies(ctx, shape)
    weights = bt.make_weights(shape, dev, gen, copies, per_row=opts.per_row)
    W = weights.copies
    nw = len(W)
    split_fn = bt.split_gated if shape.gated else bt.split_dense
    ours_fn = getattr(sfm, shape.endpoint)
    quant_fn = sfm.channel_scale_quantize_fp8_static_bf16
    compiled = None
    if "compiled" not in opts.skip and not opts.compile_static:
        compiled = bt.compile_fn(split_fn, static=False)
    for m in opts.ms:
        row = {**shape.as_dict(), "M": m, "weight_bytes": shape.weight_bytes(),
               "flops": shape.flops(m), "weight_copies": nw, "l2_bytes": ctx.l2_bytes,
               "times_us": {}, "batches_us": {}, "calls_per_graph": {}, "errors": {},
               "baseline_rel_err": {}, "check": None, "check_ours_quant": {"status": "skipped"}}
        batch = bt.make_batch(shape, weights, m, dev, gen, sfm.reference)
        ref = bt.reference_mlp(shape, sfm.reference, weights, batch)
        out = torch.empty(m, shape.n, dtype=torch.bfloat16, device=dev)
        xq_buf = torch.empty(m, shape.k, dtype=bt.FP8, device=dev)

        # correctness guard, before any timing
        try:
            got = ours_fn(*bt.ours_args(shape, weights, W[0], batch),
                          out=bt.poisoned((m, shape.n), torch.bfloat16, dev))
            row["check"] = bt.check_mlp(got, ref, opts.tol)
        except Exception as exc:
            row["check"] = {"status": "ERROR", "rel_err": None, "message": _err(exc)}
            _ensure_alive(dev)
        if "ours_quant" not in opts.skip:
            try:
                qbuf = bt.poisoned((m, shape.k), bt.FP8, dev)
                quant_fn(batch.x, batch.channel_scale, batch.input_scale, out=qbuf)
                qc = bt.check_bytes(qbuf, batch.xq)
                if qc["status"] != "ok":
                    row["check_ours_quant"] = {"status": "FAIL", "rel_err": None,
                                               "message": "input quant: " + qc["message"]}
                else:  # qbuf == the reference quant of x, so `ref` is the composition's reference
                    got = ours_fn(*bt.ours_args(shape, weights, W[0], batch, xq=qbuf),
                                  out=bt.poisoned((m, shape.n), torch.bfloat16, dev))
                    row["check_ours_quant"] = bt.check_mlp(got, ref, opts.tol)
            except Exception as exc:
                row["check_ours_quant"] = {"status": "ERROR", "rel_err": None, "message": _err(exc)}
                _ensure_alive(dev)

        # the paths, as step(i) closures (i picks the weight copy)
        steps = {}
        if "bf16" not in opts.skip:
            steps["bf16"] = lambda i: bt.bf16_call(shape, W[i % nw], batch)
        if "split" not in opts.skip:
            steps["split"] = lambda i: bt.split_call(shape, split_fn, weights, W[i % nw], batch)
        if "compiled" not in opts.skip:
            if opts.compile_static:
                steps["compiled"] = _compiled_step(bt, shape, bt.compile_fn(split_fn, static=True),
                                                   weights, batch, dynamic_m=False)
                row["compile_mode"] = "static"
            else:
                steps["compiled"] = _compiled_step(bt, shape, compiled, weights, batch, dynamic_m=True)
                row["compile_mode"] = "dynamic M" if m >= 2 else "static (M=1)"
        for name in list(steps):  # one eager call each: compile warm-up + accuracy (info only)
            try:
                y = _first_call(ctx, row, name, steps[name])
            except FatalCudaError:
                raise
            except Exception as exc:
                if name == "compiled" and not opts.compile_static:
                    # dynamic M failed to compile: fall back to a static graph for this M
                    _log(f"{ctx.elapsed()} {shape.name} M={m}: torch.compile with dynamic M "
                         f"failed ({_err(exc)[:300]}); compiling a static graph for this M")
                    _ensure_alive(dev)
                    row["compile_mode"] = f"static (dynamic M failed: {_err(exc)[:300]})"
                    steps[name] = _compiled_step(bt, shape, bt.compile_fn(split_fn, static=True),
                                                 weights, batch, dynamic_m=False)
                    try:
                        y = _first_call(ctx, row, name, steps[name])
                    except FatalCudaError:
                        raise
                    except Exception as exc2:
                        exc = exc2
                        y = None
                else:
                    y = None
                if y is None:
                    row["errors"][name] = _err(exc)
                    del steps[name]
                    _ensure_alive(dev)
                    continue
            row["baseline_rel_err"][name] = bt.rel_err(y, ref)
            del y
        steps["ours"] = lambda i: ours_fn(*bt.ours_args(shape, weights, W[i % nw], batch), out=out)
        if "ours_quant" not in opts.skip and row["check_ours_quant"]["status"] != "ERROR":
            def ours_quant(i):
                quant_fn(batch.x, batch.channel_scale, batch.input_scale, out=xq_buf)
                return ours_fn(*bt.ours_args(shape, weights, W[i % nw], batch, xq=xq_buf), out=out)

            steps["ours_quant"] = ours_quant
        if row["check"]["status"] == "ERROR":
            del steps["ours"]
        _time_row(ctx, row, steps, ("bf16", "split", "compiled", "ours", "ours_quant"))
        if opts.compare_paths:
            row["paths"] = compare_paths(ctx, shape, weights, batch, ref)
        data["mlp"].append(row)
        _log_row(ctx, row)
        del batch, ref, out, xq_buf, steps
    del weights, W, compiled
    torch._dynamo.reset()
    if dev != "cpu":
        torch.cuda.empty_cache()


def _compiled_step(bt, shape, fn_c, weights, batch, dynamic_m: bool):
    xc = bt.input_for_compiled(batch.x, dynamic_m)
    W, nw = weights.copies, len(weights.copies)
    return lambda i: bt.split_call(shape, fn_c, weights, W[i % nw], batch, x=xc)


def _first_call(ctx: Ctx, row: dict, name: str, step):
    """One eager call (for torch.compile: the compilation); its wall time is recorded."""
    t1 = time.perf_counter()
    y = step(0)
    if ctx.device != "cpu":
        import torch

        torch.cuda.synchronize()
    if name == "compiled":
        row["compiled_first_call_s"] = time.perf_counter() - t1
    return y


def compare_paths(ctx: Ctx, shape, weights, batch, ref) -> dict:
    import torch

    import bench_torch as bt

    sfm, dev, opts = ctx.sfm, ctx.device, ctx.opts
    W, nw, m = weights.copies, len(weights.copies), batch.x.shape[0]
    hook = getattr(sfm, "_gated_mlp_with_paths" if shape.gated else "_gelu_mlp_with_paths", None)
    out = torch.empty(m, shape.n, dtype=torch.bfloat16, device=dev)
    res = {}
    for combo in opts.path_combos:
        name = bench_shapes.combo_name(combo)
        if hook is None:
            res[name] = {"status": "unsupported", "message": "this build has no *_with_paths hook"}
            continue

        def call(w, o, combo=combo):
            args = bt.ours_args(shape, weights, w, batch)
            if shape.gated:
                return hook(shape.activation, combo, *args, out=o)
            return hook(combo, *args, out=o)

        try:
            t1 = time.perf_counter()
            got = call(W[0], bt.poisoned((m, shape.n), torch.bfloat16, dev))
            if dev != "cpu":
                torch.cuda.synchronize()
            first_s = time.perf_counter() - t1
        except Exception as exc:  # a path this build does not support raises
            res[name] = {"status": "unsupported", "message": _err(exc)}
            _ensure_alive(dev)
            continue
        c = bt.check_mlp(got, ref, opts.tol)
        del got
        entry = {"status": c["status"], "rel_err": c["rel_err"], "message": c["message"]}
        timer = ctx.timer
        if first_s > SLOW_CALL_S:  # e.g. a small-M path at M=8192: time it lightly
            timer = timer.for_slow_calls()
            entry["light_timing"] = True
        try:
            t = timer.time(lambda i: call(W[i % nw], out))
            entry.update(us=t.us, batches_us=t.batches_us, calls=t.calls)
        except Exception as exc:
            entry.update(status="ERROR", message=_err(exc))
            _ensure_alive(dev)
        res[name] = entry
    return res


def run_quant(ctx: Ctx, k: int, data: dict) -> None:
    import torch

    import bench_torch as bt

    opts, sfm, dev = ctx.opts, ctx.sfm, ctx.device
    torch._dynamo.reset()
    gen, cs = bt.quant_inputs(k, opts.seed, dev)
    compiled = None
    if "compiled" not in opts.skip and not opts.compile_static:
        compiled = bt.compile_fn(bt.torch_quant, static=False)
    for m in opts.ms:
        nbytes = m * k * 2 + m * k + k * 2 + 4
        row = {"K": k, "M": m, "bytes": nbytes, "times_us": {}, "batches_us": {},
               "calls_per_graph": {}, "errors": {}, "baseline_exact": {}, "check": None}
        x, s = bt.quant_batch(gen, cs, m)
        ref = sfm.reference.channel_scale_quantize_fp8_static_bf16(x, cs, s)
        out = torch.empty(m, k, dtype=bt.FP8, device=dev)
        try:
            got = sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=bt.poisoned((m, k), bt.FP8, dev))
            row["check"] = bt.check_bytes(got, ref)
        except Exception as exc:
            row["check"] = {"status": "ERROR", "mismatches": None, "message": _err(exc)}
            _ensure_alive(dev)
        steps = {"torch": lambda i: bt.torch_quant(x, cs, s)}
        if "compiled" not in opts.skip:
            fn_c = bt.compile_fn(bt.torch_quant, static=True) if opts.compile_static else compiled
            xc = bt.input_for_compiled(x, not opts.compile_static)
            steps["compiled"] = lambda i, fn_c=fn_c, xc=xc: fn_c(xc, cs, s)
        for name in list(steps):
            try:
                y = _first_call(ctx, row, name, steps[name])
                row["baseline_exact"][name] = bt.check_bytes(y, ref)["status"] == "ok"
            except FatalCudaError:
                raise
            except Exception as exc:
                row["errors"][name] = _err(exc)
                del steps[name]
                _ensure_alive(dev)
        if row["check"]["status"] != "ERROR":
            steps["ours"] = lambda i: sfm.channel_scale_quantize_fp8_static_bf16(x, cs, s, out=out)
        _time_row(ctx, row, steps, ("torch", "compiled", "ours"))
        data["quant"].append(row)
        _log(f"{ctx.elapsed()} quant K={k} M={m}: "
             + " | ".join(f"{bench_report.SHORT[p]} {bench_report.fmt_us(row['times_us'].get(p))}"
                          for p in ("ours", "compiled", "torch"))
             + f"  [{row['check']['status']}]")
        del x, ref, out, steps
    torch._dynamo.reset()


def _log_row(ctx: Ctx, row: dict) -> None:
    t = row["times_us"]
    parts = [f"{bench_report.SHORT[p]} {bench_report.fmt_us(t.get(p))}"
             for p in ("ours", "ours_quant", "compiled", "split", "bf16") if p in t or p in row["errors"]]
    chk = row["check"]
    st = chk["status"] + (f" {bench_report.fmt_err(chk.get('rel_err'))}" if chk.get("rel_err") is not None else "")
    line = f"{ctx.elapsed()} {row['shape']} M={row['M']}: " + " | ".join(parts) + f"  [{st}]"
    if row["errors"]:
        line += "  errors: " + "; ".join(f"{k}: {v[:160]}" for k, v in row["errors"].items())
    if chk["status"] != "ok":
        line += f"  check: {chk.get('message', '')[:200]}"
    _log(line)


def run_benchmark(opts: Options, sfm, device: str, timer) -> dict:
    """Measure everything; returns the raw data (what the JSON holds)."""
    import torch

    import bench_torch as bt

    t0 = time.perf_counter()
    l2 = 0
    if device != "cpu":
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 0
    ctx = Ctx(opts, sfm, device, timer, l2, t0)
    data = {"schema": bench_report.SCHEMA, "meta": collect_meta(opts, sfm, device),
            "ceilings": {}, "mlp": [], "quant": []}
    bt.configure_dynamo()
    torch.manual_seed(opts.seed)
    try:
        _log(f"{ctx.elapsed()} measuring the ceilings (copy {opts.copy_mib} MiB, FP8 GEMM {opts.gemm_n}^3)")
        data["ceilings"] = bt.measure_ceilings(device, timer, opts.copy_mib, opts.gemm_n)
        c = data["ceilings"]
        _log(f"{ctx.elapsed()} copy {c['copy_bytes_per_s'] / 1e12:.3f} TB/s, "
             f"FP8 GEMM {c['fp8_flops_per_s'] / 1e12:.0f} TFLOP/s")
        phases = data["meta"]["phase_s"] = {}
        for shape in opts.shapes:
            _log(f"{ctx.elapsed()} {shape.label()} [{shape.kind}], "
                 f"{shape.weight_bytes() / 2**20:.1f} MiB of FP8 weights")
            t1 = time.perf_counter()
            run_shape(ctx, shape, data)
            phases[shape.name] = round(time.perf_counter() - t1, 1)
        if "quant" not in opts.skip:
            for k in dict.fromkeys(s.k for s in opts.shapes):
                t1 = time.perf_counter()
                run_quant(ctx, k, data)
                phases[f"quant K={k}"] = round(time.perf_counter() - t1, 1)
        # once more, warm: the floor uses the better of the two measurements of each ceiling
        end_mib = opts.copy_mib if opts.quick else max(opts.copy_mib, 1024)
        end = bt.measure_ceilings(device, timer, end_mib, opts.gemm_n)
        data["ceilings"] = combine_ceilings(data["ceilings"], end)
        c = data["ceilings"]
        _log(f"{ctx.elapsed()} ceilings again: copy ({end_mib} MiB) "
             f"{end['copy_bytes_per_s'] / 1e12:.3f} TB/s, "
             f"FP8 GEMM {end['fp8_flops_per_s'] / 1e12:.0f} TFLOP/s; using "
             f"{c['copy_bytes_per_s'] / 1e12:.3f} TB/s and {c['fp8_flops_per_s'] / 1e12:.0f} TFLOP/s")
    except FatalCudaError as exc:
        data["incomplete"] = str(exc)
        _log(f"{PROG}: {exc}")
    except KeyboardInterrupt:
        data["incomplete"] = "interrupted"
        _log(f"{PROG}: interrupted; writing what was measured")
    data["meta"]["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return data


def combine_ceilings(start: dict, end: dict) -> dict:
    """The best of the start and end measurements (a higher ceiling = a stricter floor)."""
    best_copy = max((start, end), key=lambda c: c["copy_bytes_per_s"])
    best_gemm = max((start, end), key=lambda c: c["fp8_flops_per_s"])
    out = {k: best_copy[k] for k in ("copy_bytes_per_s", "copy_buffer_bytes", "copy_us")}
    out.update({k: best_gemm[k] for k in ("fp8_flops_per_s", "fp8_gemm_n", "fp8_gemm_us")})
    out["measurements"] = {"start": start, "end": end}
    return out


def report(data: dict, out_dir: Path, stem: str) -> int:
    res = bench_report.write(data, out_dir, stem)
    for key in ("json", "md", "png"):
        if res.get(key):
            _log(f"wrote {res[key]}")
    if res.get("png_note"):
        _log(f"no plot: {res['png_note']}")
    print(res["markdown"], end="", flush=True)
    fails = bench_report.failures(data)
    return 1 if fails or data.get("incomplete") else 0


def run_with(opts: Options, sfm, device: str, timer) -> int:
    data = run_benchmark(opts, sfm, device, timer)
    return report(data, opts.out, opts.stem)


def _replot(args) -> int:
    path = Path(args.replot)
    try:
        data = bench_report.load(path)
    except (OSError, ValueError) as exc:
        _log(f"{PROG}: error: cannot read {path}: {exc}")
        return 2
    out = args.out if args.out is not None else path.parent
    res = bench_report.write(data, out, args.stem if args.stem != "bench_mlp" else path.stem,
                             write_json=False)
    _log(f"wrote {res['md']}")
    if res["png"]:
        _log(f"wrote {res['png']}")
    else:
        _log(f"no plot: {res['png_note']}")
    print(res["markdown"], end="", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.replot is not None:
        return _replot(args)
    try:
        opts = options_from_args(args)
    except UsageError as exc:
        _log(f"{PROG}: error: {exc}")
        return 2
    import torch

    if not torch.cuda.is_available():
        _log(f"{PROG}: error: no CUDA device is available (torch {torch.__version__}, built for "
             f"CUDA {torch.version.cuda}). This benchmark times CUDA kernels: run it on the GPU "
             "machine. (--replot JSON works without one.)")
        return 2
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from kernel_loader import load_kernel_module
    except ImportError as exc:
        _log(f"{PROG}: error: cannot import tests/kernel_loader.py from {REPO}: {exc}")
        return 2
    try:
        sfm = load_kernel_module(Path(opts.build))
    except Exception as exc:
        _log(f"{PROG}: error: cannot load the kernel build {opts.build!r}: {_err(exc)}")
        return 2
    import bench_torch as bt

    timer = bt.GraphTimer(batches=opts.batches, warmup=opts.warmup, target_ms=opts.target_ms,
                          max_calls=opts.max_calls)
    _log(f"{PROG}: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
         f"build {getattr(sfm, '__variant_dir__', opts.build)}")
    return run_with(opts, sfm, "cuda", timer)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
