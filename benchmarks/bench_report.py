"""Report of a benchmark run: derived numbers, markdown tables and the plot.

Works from the raw JSON that `bench_mlp.py` writes (standard library only; matplotlib
for the PNG, skipped with a note when it is missing), so `--replot` regenerates the
table and plot of a saved run on any machine. Derived numbers (floors, % of floor,
speedups) are always recomputed here from the raw ones.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SCHEMA = 1
MLP_PATHS = ("bf16", "split", "compiled", "ours", "ours_quant")
MLP_BASELINES = ("bf16", "split", "compiled")
QUANT_PATHS = ("torch", "compiled", "ours")
LABELS = {
    "bf16": "bf16 cuBLAS",
    "split": "FP8 split (torch ops)",
    "compiled": "FP8 split torch.compile",
    "ours": "ours",
    "ours_quant": "ours + input quant",
    "torch": "torch ops",
}
SHORT = {"bf16": "bf16", "split": "split", "compiled": "compile", "ours": "ours",
         "ours_quant": "ours+quant", "torch": "torch ops"}
OK = "ok"


# ------------------------------------------------------------------ numbers


def _num(v) -> float | None:
    """A finite float, or None (JSON stores non-finite values as strings)."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return None
    v = float(v)
    return v if math.isfinite(v) else None


def json_safe(obj):
    """Replace non-finite floats by strings so the JSON is strict (no NaN/Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def copy_bw(data) -> float | None:
    return _num(data.get("ceilings", {}).get("copy_bytes_per_s"))


def fp8_rate(data) -> float | None:
    return _num(data.get("ceilings", {}).get("fp8_flops_per_s"))


def gemm_ceiling_spread(ceilings: dict) -> str | None:
    """How far the FP8 GEMM ceiling moved within the run: the GPU's power state changes
    the large-M floors (the ceiling is the better of the start and end measurements, each
    the median of its batches; the MLP rows run in between)."""
    m = ceilings.get("measurements") or {}
    rates = [_num(m.get(k, {}).get("fp8_flops_per_s")) for k in ("start", "end")]
    batches = [_num(b) for k in ("start", "end") for b in (m.get(k, {}).get("fp8_gemm_batches_us") or [])]
    batches = [b for b in batches if b]
    if None in rates or not batches:
        return None
    return (f"FP8 GEMM ceiling within the run: {rates[0] / 1e12:.0f} TFLOP/s at the start, "
            f"{rates[1] / 1e12:.0f} at the end; its timed batches took {min(batches):.0f}-"
            f"{max(batches):.0f} us (the GPU's power state), so the large-M % of floor moves by "
            f"up to {100 * (1 - min(batches) / max(batches)):.0f}% with the state the rows run in.")


def mlp_floor(row, data) -> tuple[float | None, str]:
    """(floor in us, "memory"/"compute") = max(weight bytes / copy BW, FLOPs / FP8 rate)."""
    bw, rate = copy_bw(data), fp8_rate(data)
    mem = row["weight_bytes"] / bw * 1e6 if bw else None
    comp = row["flops"] / rate * 1e6 if rate else None
    if mem is None and comp is None:
        return None, "-"
    if comp is None or (mem is not None and mem >= comp):
        return mem, "memory"
    return comp, "compute"


def quant_floor(row, data) -> float | None:
    bw = copy_bw(data)
    return row["bytes"] / bw * 1e6 if bw else None


def status(check: dict | None) -> str:
    return (check or {}).get("status", "missing")


def time_of(row, path) -> float | None:
    return _num(row.get("times_us", {}).get(path))


def derive_mlp(row, data) -> dict:
    """Floor, % of floor and speedups of one MLP row. A path whose check did not pass
    gets no speedup and no % of floor: a fast wrong kernel never looks good."""
    floor, bound = mlp_floor(row, data)
    ours_ok = status(row.get("check")) == OK
    quant_ok = status(row.get("check_ours_quant")) == OK
    t = {p: time_of(row, p) for p in MLP_PATHS}
    d = {"floor_us": floor, "floor_bound": bound, "ours_ok": ours_ok, "ours_quant_ok": quant_ok,
         "pct_floor": None, "pct_floor_quant": None, "speedup": {}, "speedup_quant": {}}
    if ours_ok and t["ours"] and floor:
        d["pct_floor"] = 100.0 * floor / t["ours"]
    if quant_ok and t["ours_quant"] and floor:
        d["pct_floor_quant"] = 100.0 * floor / t["ours_quant"]
    for b in MLP_BASELINES:
        if t[b] is None:
            continue
        if ours_ok and t["ours"]:
            d["speedup"][b] = t[b] / t["ours"]
        if quant_ok and t["ours_quant"]:
            d["speedup_quant"][b] = t[b] / t["ours_quant"]
    return d


def derive_quant(row, data) -> dict:
    floor = quant_floor(row, data)
    ok = status(row.get("check")) == OK
    bw = copy_bw(data)
    t = {p: time_of(row, p) for p in QUANT_PATHS}
    d = {"floor_us": floor, "ok": ok, "gbps": {}, "pct_copy_bw": {}, "speedup": {}}
    for p, v in t.items():
        if v is None or (p == "ours" and not ok):
            continue
        rate = row["bytes"] / (v * 1e-6)
        d["gbps"][p] = rate / 1e9
        if bw:
            d["pct_copy_bw"][p] = 100.0 * rate / bw
    if ok and t["ours"]:
        for b in ("torch", "compiled"):
            if t[b] is not None:
                d["speedup"][b] = t[b] / t["ours"]
    return d


def l2_resident(row) -> bool:
    l2 = row.get("l2_bytes") or 0
    return bool(l2) and row.get("weight_copies", 1) <= 1 and row["weight_bytes"] <= l2


# ------------------------------------------------------------------ formatting


def fmt_us(v) -> str:
    v = _num(v)
    if v is None:
        return "-"
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:.0f}"


def fmt_x(v) -> str:
    v = _num(v)
    return "-" if v is None else f"{v:.2f}x"


def fmt_pct(v) -> str:
    v = _num(v)
    return "-" if v is None else f"{v:.0f}%"


def fmt_err(v) -> str:
    v = _num(v)
    return "n/a" if v is None else f"{v:.1e}"


def _check_cell(check: dict | None) -> str:
    st = status(check)
    if st == OK:
        return OK
    if st == "FAIL":
        msg = (check or {}).get("message") or f"rel err {fmt_err((check or {}).get('rel_err'))}"
        return f"**FAIL** ({_cell_text(msg, 60)})"
    if st == "ERROR":
        return f"**ERROR** ({_cell_text((check or {}).get('message', ''), 60)})"
    return st


def _cell_text(s: str, limit: int) -> str:
    s = " ".join(str(s).split()).replace("|", "/")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _time_cell(row, path, ok: bool) -> str:
    if path in row.get("errors", {}):
        return "error"
    v = time_of(row, path)
    if v is None:
        return "-"
    return fmt_us(v) if ok else "FAIL"


def mlp_table(data) -> str:
    header = ["shape (K, H, N)", "M", "floor", "bf16 cuBLAS", "FP8 split", "torch.compile", "ours",
              "ours+quant", "ours % floor", "vs bf16", "vs split", "vs compile",
              "+quant vs compile", "check"]
    align = ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"]
    rows = []
    for row in data.get("mlp", []):
        d = derive_mlp(row, data)
        label = f"{row['shape']} ({row['K']}, {row['H']}, {row['N']})"
        if l2_resident(row):
            label += " †"
        cells = [label, str(row["M"]), fmt_us(d["floor_us"])]
        for p in MLP_BASELINES:
            cells.append(_time_cell(row, p, True))
        st, qst = status(row.get("check")), status(row.get("check_ours_quant"))
        fail = None if d["ours_ok"] else ("ERROR" if st == "ERROR" else "FAIL")
        qfail = None if d["ours_quant_ok"] or qst in ("missing", "skipped") else (
            "ERROR" if qst == "ERROR" else "FAIL")
        cells.append(fail or _time_cell(row, "ours", True))
        cells.append(qfail or _time_cell(row, "ours_quant", True))
        cells.append(fail or fmt_pct(d["pct_floor"]))
        for b in MLP_BASELINES:
            cells.append(fail or fmt_x(d["speedup"].get(b)))
        cells.append(qfail or fmt_x(d["speedup_quant"].get("compiled")))
        check = _check_cell(row.get("check"))
        if qfail:
            check += "; +quant " + _check_cell(row.get("check_ours_quant"))
        cells.append(check)
        rows.append(cells)
    return _table(header, rows, align)


def quant_table(data) -> str:
    header = ["K", "M", "MB moved", "floor", "torch ops", "torch.compile", "ours", "ours GB/s",
              "ours % copy BW", "vs torch ops", "vs compile", "check"]
    align = ["r"] * 11 + ["l"]
    rows = []
    for row in data.get("quant", []):
        d = derive_quant(row, data)
        st = status(row.get("check"))
        fail = None if d["ok"] else ("ERROR" if st == "ERROR" else "FAIL")
        cells = [str(row["K"]), str(row["M"]), f"{row['bytes'] / 1e6:.3g}", fmt_us(d["floor_us"]),
                 _time_cell(row, "torch", True), _time_cell(row, "compiled", True),
                 fail or _time_cell(row, "ours", True),
                 fail or ("-" if "ours" not in d["gbps"] else f"{d['gbps']['ours']:.0f}"),
                 fail or fmt_pct(d["pct_copy_bw"].get("ours")),
                 fail or fmt_x(d["speedup"].get("torch")),
                 fail or fmt_x(d["speedup"].get("compiled")),
                 _check_cell(row.get("check"))]
        rows.append(cells)
    return _table(header, rows, align)


def paths_table(data) -> str:
    rows_in = [r for r in data.get("mlp", []) if r.get("paths")]
    if not rows_in:
        return ""
    combos: list[str] = []
    for r in rows_in:
        for c in r["paths"]:
            if c not in combos:
                combos.append(c)
    header = ["shape", "M"] + combos + ["best", "best vs auto/auto"]
    align = ["l", "r"] + ["r"] * len(combos) + ["l", "r"]
    rows = []
    for r in rows_in:
        cells = [r["shape"], str(r["M"])]
        best, best_t = None, None
        for c in combos:
            e = r["paths"].get(c)
            if e is None:
                cells.append("-")
                continue
            st = e.get("status")
            t = _num(e.get("us"))
            if st == OK and t is not None:
                if best_t is None or t < best_t:
                    best, best_t = c, t
                cells.append(fmt_us(t))
            elif st == "unsupported":
                cells.append("n/s")
            elif st == "FAIL":
                cells.append("FAIL")
            else:
                cells.append("error" if st else "-")
        if best is not None:
            i = 2 + combos.index(best)
            cells[i] = f"**{cells[i]}**"
        auto = r["paths"].get("auto/auto", {})
        auto_t = _num(auto.get("us")) if auto.get("status") == OK else None
        cells.append(best or "-")
        cells.append(fmt_x(auto_t / best_t) if auto_t and best_t else "-")
        rows.append(cells)
    return _table(header, rows, align)


def failures(data) -> list[str]:
    out = []
    for r in data.get("mlp", []):
        for key, what in (("check", "ours"), ("check_ours_quant", "ours + input quant")):
            st = status(r.get(key))
            if st in ("FAIL", "ERROR"):
                out.append(f"{r['shape']} M={r['M']} {what}: {st} "
                           f"({_cell_text(r[key].get('message', ''), 200)})")
        for c, e in (r.get("paths") or {}).items():
            if e.get("status") in ("FAIL", "ERROR"):
                out.append(f"{r['shape']} M={r['M']} paths {c}: {e['status']} "
                           f"({_cell_text(e.get('message', ''), 200)})")
    for r in data.get("quant", []):
        st = status(r.get("check"))
        if st in ("FAIL", "ERROR"):
            out.append(f"input quant K={r['K']} M={r['M']}: {st} "
                       f"({_cell_text(r['check'].get('message', ''), 200)})")
    return out


def _header(data) -> list[str]:
    meta = data.get("meta", {})
    dev = meta.get("device", {})
    lines = ["# static-fp8-mlp benchmark", ""]
    devline = dev.get("name", "unknown device")
    if dev.get("capability"):
        devline += f" (sm_{dev['capability'].replace('.', '')}"
        if dev.get("sm_count"):
            devline += f", {dev['sm_count']} SMs"
        if dev.get("l2_bytes"):
            devline += f", L2 {dev['l2_bytes'] / 2**20:.0f} MiB"
        devline += ")"
    soft = " · ".join(f"{k} {meta[k]}" for k in ("torch", "cuda", "triton") if meta.get(k))
    lines.append(f"{devline} · {soft} · {meta.get('date', '')}".strip(" ·"))
    if meta.get("command"):
        lines.append(f"Command: `{meta['command']}`")
    build = meta.get("build", {})
    if build.get("variant"):
        extra = f" (kernels for {build['covered_archs']})" if build.get("covered_archs") else ""
        lines.append(f"Build: `{build['variant']}`{extra}")
    c = data.get("ceilings", {})
    bw, rate = copy_bw(data), fp8_rate(data)
    if bw or rate:
        parts = []
        if bw:
            parts.append(f"copy {bw / 1e12:.2f} TB/s (device-to-device copy of "
                         f"{c.get('copy_buffer_bytes', 0) / 2**20:.0f} MiB, bytes read + written)")
        if rate:
            n = c.get("fp8_gemm_n", 8192)
            parts.append(f"FP8 GEMM {rate / 1e12:.0f} TFLOP/s (torch._scaled_mm {n}^3)")
        both = " (the better of a measurement at the start and one at the end)" if c.get("measurements") else ""
        lines.append(f"Ceilings measured in this run{both}: " + "; ".join(parts) + ".")
        spread = gemm_ceiling_spread(c)
        if spread:
            lines.append(spread)
    if meta.get("elapsed_s") is not None:
        phases = meta.get("phase_s") or {}
        detail = ", ".join(f"{k} {v:.0f} s" for k, v in phases.items())
        lines.append(f"Run time: {meta['elapsed_s']:.0f} s" + (f" ({detail})." if detail else "."))
    s = meta.get("settings", {})
    lines += [
        "",
        "Method: every path is timed as CUDA-graph replays (N calls captured in one graph, "
        f"{s.get('warmup_replays', 2)} warm-up replays, median of {s.get('batches', 5)} timed "
        "replays, CUDA events"
        + ("; the paths of a row captured together and their timed replays alternated, "
           "order rotating per replay" if s.get("interleave")
           else "; the paths of a row timed one after the other (--sequential)")
        + "), µs per call, random data with static scales calibrated on the batch ("
        + ("per-row weight scales, `--per-row`: the split paths use `torch._scaled_mm`'s "
           "row-wise mode" if s.get("per_row_weight_scales") else "per-tensor")
        + "). `ours` takes the FP8 input (as the contract says); "
        "`ours+quant` also runs the input-quant endpoint on the bf16 input, like the split "
        "paths, which quantize inside. floor = max(FP8 weight bytes / copy BW, FLOPs / FP8 "
        "GEMM rate). Speedup = baseline time / ours. Before timing, each (shape, M) output is "
        "compared with the contract reference (rel err <= 1e-2; quant byte-exact): a row "
        "that fails shows FAIL instead of a time or speedup.",
    ]
    comp = s.get("compile")
    if comp:
        lines.append(f"torch.compile: mode default, fullgraph, {comp}.")
    mlp = data.get("mlp", [])
    resident = sorted({(r["shape"], r["weight_bytes"]) for r in mlp if l2_resident(r)})
    if resident:
        l2 = next((r.get("l2_bytes") for r in mlp if r.get("l2_bytes")), 0)
        names = ", ".join(f"{n} ({b / 2**20:.1f} MiB)" for n, b in resident)
        lines.append(
            f"† weights fit in the {l2 / 2**20:.0f} MiB L2: {names}. Back-to-back calls in "
            "the graph read them from L2, not HBM, for every path alike, so these rows can "
            "beat the HBM floor; a model whose layers each have their own weights streams "
            "them from HBM (`--rotate-weights` measures that). No cache flushing is done.")
    rotated = sorted({(r["shape"], r["weight_copies"]) for r in mlp if r.get("weight_copies", 1) > 1})
    if rotated:
        lines.append("Weights rotated over copies (so they come from HBM): "
                     + ", ".join(f"{n} x{c}" for n, c in rotated) + ".")
    fails = failures(data)
    if fails:
        lines += ["", f"**{len(fails)} check(s) FAILED:**"] + [f"- {f}" for f in fails]
    if data.get("incomplete"):
        lines += ["", f"**Run incomplete:** {data['incomplete']}"]
    return lines


def render_markdown(data) -> str:
    """The whole report; the MLP table comes last."""
    lines = _header(data)
    if data.get("quant"):
        lines += ["", "## Input quant (channel_scale_quantize_fp8_static_bf16)", "",
                  "bytes moved = bf16 input read + FP8 output written (+ channel scale); "
                  "floor = bytes / copy BW.", "", quant_table(data)]
    pt = paths_table(data)
    if pt:
        lines += ["", "## Forced GEMM paths (ours, µs per call; n/s = not supported by this build)",
                  "", pt]
    if data.get("mlp"):
        lines += ["", "## MLP endpoints (µs per call)", "", mlp_table(data)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ plot


def plot(data, path: Path) -> str | None:
    """Write the PNG; returns None, or a reason it was not written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    mlp = data.get("mlp", [])
    if not mlp:
        return "no MLP rows"
    base = next((b for b in ("compiled", "split", "bf16")
                 if any(time_of(r, b) for r in mlp)), None)
    if base is None:
        return "no baseline was timed"
    shapes: list[str] = []
    for r in mlp:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    all_m = sorted({r["M"] for r in mlp})
    fail_pts = []
    for i, name in enumerate(shapes):
        rows = sorted((r for r in mlp if r["shape"] == name), key=lambda r: r["M"])
        color = colors[i % len(colors)]
        first = rows[0]
        label = f"{name} ({first['K']}, {first['H']}, {first['N']})" + (" †" if l2_resident(first) else "")
        xs, ys, xq, yq, xf, yf = [], [], [], [], [], []
        for r in rows:
            d = derive_mlp(r, data)
            if not d["ours_ok"]:
                fail_pts.append(r["M"])
            if d["speedup"].get(base) is not None:
                xs.append(r["M"]); ys.append(d["speedup"][base])
            if d["speedup_quant"].get(base) is not None:
                xq.append(r["M"]); yq.append(d["speedup_quant"][base])
            if d["pct_floor"] is not None:
                xf.append(r["M"]); yf.append(d["pct_floor"])
        if xs:
            ax1.plot(xs, ys, "o-", color=color, label=label)
        if xq:
            ax1.plot(xq, yq, "s--", color=color, alpha=0.5, markersize=4,
                     label=f"{name} incl. input quant")
        if xf:
            ax2.plot(xf, yf, "o-", color=color, label=label)
    for m in fail_pts:
        ax1.plot([m], [0], "x", color="red", markersize=10)
    if fail_pts:
        ax1.plot([], [], "x", color="red", label="FAIL (no speedup shown)")
    ax1.axhline(1.0, color="gray", linewidth=1)
    ax2.axhline(100.0, color="gray", linewidth=1)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_m)
        ax.set_xticklabels([str(m) for m in all_m])
        ax.set_xlabel("M (tokens)")
        ax.grid(True, alpha=0.3)
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax1.set_ylabel(f"speedup over {LABELS[base]} (x)")
    ax1.set_title(f"ours vs {LABELS[base]}")
    ax2.set_ylabel("% of floor (ours)")
    ax2.set_title("ours, % of max(bytes/BW, FLOPs/rate)")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    meta = data.get("meta", {})
    fig.suptitle(f"static-fp8-mlp · {meta.get('device', {}).get('name', '')} · "
                 f"torch {meta.get('torch', '')} · {meta.get('date', '')}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# ------------------------------------------------------------------ files


def with_derived(data) -> dict:
    """A copy of `data` whose rows also carry the derived numbers (for readers of the JSON)."""
    out = dict(data)
    out["mlp"] = [dict(r, derived=derive_mlp(r, data)) for r in data.get("mlp", [])]
    out["quant"] = [dict(r, derived=derive_quant(r, data)) for r in data.get("quant", [])]
    return out


def strip_derived(data) -> dict:
    out = dict(data)
    for key in ("mlp", "quant"):
        out[key] = [{k: v for k, v in r.items() if k != "derived"} for r in data.get(key, [])]
    return out


def load(path: Path) -> dict:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "mlp" not in data:
        raise ValueError(f"{path}: not a bench_mlp.py JSON (no 'mlp' key)")
    return strip_derived(data)


def write(data, out_dir: Path, stem: str = "bench_mlp", write_json: bool = True) -> dict:
    """Write STEM.json (raw + derived), STEM.md and STEM.png into out_dir; returns
    {"json": path, "md": path, "png": path or None, "png_note": reason or None, "markdown": text}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = {"json": None}
    if write_json:
        jp = out_dir / f"{stem}.json"
        jp.write_text(json.dumps(json_safe(with_derived(data)), indent=1, allow_nan=False) + "\n")
        res["json"] = jp
    md = render_markdown(data)
    mp = out_dir / f"{stem}.md"
    mp.write_text(md)
    pp = out_dir / f"{stem}.png"
    note = plot(data, pp)
    res.update(md=mp, png=None if note else pp, png_note=note, markdown=md)
    return res
