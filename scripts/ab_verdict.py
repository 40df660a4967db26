"""Verdict on an A/B run of `scripts/mlp_ab.py --json`: each variant against a base, point
by point (kind, M), from the rounds paired as they ran.

mlp_ab replays every variant once per round, so round r of a variant and round r of the
base ran next to each other, in the same clock and power state; their difference is the
honest comparison (the spread of single replays is 10-20% at large M, benchmarks/
RESULTS.md). Per point: the median of the paired differences (variant - base, us), the
rounds in which the variant was faster, and a call: `faster` / `slower` when at least
--agree of the rounds (default 80%) agree on the sign and the median difference is
beyond --min-us and --min-pct; else `even`. A variant that failed the contract check at
any point is marked FAIL there, whatever its time. Then per variant: faster / even /
slower / FAIL counts and the geometric mean of the time ratios.

    python3 scripts/ab_verdict.py ab.json [--base VARIANT] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

CONTRACT_TOL = 1e-2  # CONTRACT.md: ||out - ref|| / ||ref|| (mlp_ab.py imports both)
COMPILE = "compile"  # mlp_ab.py's name for the torch.compile split path


def load_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())
    if not isinstance(rows, list) or not all({"kind", "m", "variant", "times_us"} <= set(r)
                                             for r in rows):
        raise SystemExit(f"{path}: not an mlp_ab.py --json file")
    return rows


def point_verdict(base: list[float], other: list[float], agree: float, min_us: float,
                  min_pct: float) -> dict:
    """The paired comparison of one point (lists of per-round us, same order)."""
    n = min(len(base), len(other))
    if n == 0:
        return {"call": "no data", "rounds": 0}
    diffs = [o - b for b, o in zip(base[:n], other[:n])]
    med = statistics.median(diffs)
    faster = sum(d < 0 for d in diffs)
    slower = sum(d > 0 for d in diffs)
    base_med = statistics.median(base[:n])
    pct = 100.0 * med / base_med if base_med else 0.0
    big = abs(med) >= min_us and abs(pct) >= min_pct
    call = "even"
    if big and med < 0 and faster >= agree * n:
        call = "faster"
    elif big and med > 0 and slower >= agree * n:
        call = "slower"
    return {"call": call, "rounds": n, "median_diff_us": med, "pct": pct,
            "rounds_faster": faster, "ratio": statistics.median(other[:n]) / base_med
            if base_med else math.nan}


def verdicts(rows: list[dict], base: str | None, agree: float, min_us: float,
             min_pct: float) -> tuple[str, dict]:
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    base = base or variants[0]
    if base not in variants:
        raise SystemExit(f"--base {base!r} is not among the variants: {', '.join(variants)}")
    by_point: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_point.setdefault((r["kind"], r["m"]), {})[r["variant"]] = r
    out: dict[str, dict] = {}
    for v in variants:
        if v == base:
            continue
        points, counts, logs = [], {"faster": 0, "even": 0, "slower": 0, "FAIL": 0}, []
        for (kind, m), per in by_point.items():
            if v not in per or base not in per:
                continue
            pv = point_verdict(per[base]["times_us"], per[v]["times_us"], agree, min_us, min_pct)
            err = per[v].get("rel_err")
            if v != COMPILE and err is not None and not err <= CONTRACT_TOL:
                pv["call"] = "FAIL"
            if pv["call"] in counts:
                counts[pv["call"]] += 1
            if pv.get("ratio", 0) > 0 and math.isfinite(pv["ratio"]):
                logs.append(math.log(pv["ratio"]))
            points.append({"kind": kind, "m": m, **pv})
        geo = math.exp(sum(logs) / len(logs)) if logs else math.nan
        out[v] = {"points": points, "counts": counts, "geomean_ratio": geo}
    return base, out


def render(base: str, result: dict) -> str:
    lines = []
    for v, r in result.items():
        c = r["counts"]
        lines.append(f"{v} against {base}: {c['faster']} faster, {c['even']} even, "
                     f"{c['slower']} slower, {c['FAIL']} FAIL; time ratio geomean "
                     f"{r['geomean_ratio']:.3f}")
        for p in r["points"]:
            if p["rounds"] == 0:
                lines.append(f"  {p['kind']:>14} M={p['m']:<6} no data")
                continue
            lines.append(f"  {p['kind']:>14} M={p['m']:<6} {p['median_diff_us']:+8.2f} us "
                         f"({p['pct']:+5.1f}%)  faster in {p['rounds_faster']}/{p['rounds']}  "
                         f"{p['call']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json_file", type=Path, help="an mlp_ab.py --json output")
    ap.add_argument("--base", help="the variant to compare against (default: the first)")
    ap.add_argument("--agree", type=float, default=0.8,
                    help="share of rounds that must agree on the sign (default 0.8)")
    ap.add_argument("--min-us", type=float, default=0.2,
                    help="smallest median difference that counts, us (default 0.2)")
    ap.add_argument("--min-pct", type=float, default=1.0,
                    help="smallest median difference that counts, %% of the base (default 1)")
    ap.add_argument("--json", type=Path, help="also write the verdicts here")
    a = ap.parse_args(argv)
    if not 0.5 < a.agree <= 1.0:
        ap.error("--agree must be in (0.5, 1]")
    base, result = verdicts(load_rows(a.json_file), a.base, a.agree, a.min_us, a.min_pct)
    print(render(base, result))
    if a.json:
        a.json.write_text(json.dumps({"base": base, "variants": result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
