"""Whether the working tree's kernels compile to the same machine code as a revision's:
a CPU-only proof that a refactor, a trace hook or an off-by-default knob leaves the
release kernels untouched (no GPU needed; `scripts/build_equal.py` is the GPU-side
check of outputs).

For each `[kernel.*]` section of build.toml (or those named with --kernels) and each of
its CUDA capabilities, the section's .cu file is compiled with `nvcc -cubin` from a copy
of REV's tree and from a copy of the working tree (the same flags as the build's, without
torch: the kernel files do not include it). Names in anonymous namespaces carry a
per-compilation hash (`_GLOBAL__N__<hash>_<file>_<hash>_<n>`): it is masked before the
cubins are compared byte for byte. Exits 1 if any pair differs. "identical" is a proof;
"DIFFERENT" could in principle come from hash suffixes of different lengths shifting a
string table, so look at the change before believing it.

    python3 scripts/cubin_equal.py [--rev HEAD] [--kernels hopper_sm90a] [--jobs 2]

About 80 s per Hopper cubin on a 2-core machine; the two trees compile in parallel.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANON = re.compile(rb"_GLOBAL__N__[0-9a-f]{8}_\d+_[A-Za-z0-9_]+?_cu_[0-9a-f]{8}_\d+")
FLAGS = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-DENABLE_FP8", "-DNDEBUG",
         "-DUSE_CUDA=1", "-DCUDA_KERNEL"]


def gencode(capability: str) -> str:
    """'9.0a' -> -gencode=arch=compute_90a,code=sm_90a."""
    cc = capability.replace(".", "")
    return f"-gencode=arch=compute_{cc},code=sm_{cc}"


def kernel_units(build_toml: Path, only: set[str] | None) -> list[tuple[str, str, str]]:
    """(section, .cu path, capability) for every kernel section of build.toml."""
    config = tomllib.loads(build_toml.read_text())
    units = []
    for name, section in config.get("kernel", {}).items():
        if only and name not in only:
            continue
        cu = [s for s in section.get("src", []) if s.endswith(".cu")]
        if len(cu) != 1:
            raise SystemExit(f"[kernel.{name}]: expected one .cu source, found {cu}")
        units += [(name, cu[0], cap) for cap in section.get("cuda-capabilities", [])]
    if only and not units:
        raise SystemExit(f"--kernels {','.join(sorted(only))}: no such section in build.toml")
    return units


def masked(cubin: bytes) -> bytes:
    return ANON.sub(b"_GLOBAL__N__", cubin)


def export_tree(rev: str | None, dst: Path) -> None:
    """kernels-src/ of `rev` (None: the working tree) into dst. The kernel units come
    from the working tree's build.toml for both sides."""
    if rev is None:
        shutil.copytree(ROOT / "kernels-src", dst / "kernels-src")
        return
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "kernels-src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(dst)], input=archive, check=True)


def compile_unit(nvcc: str, tree: Path, cu: str, capability: str, out: Path) -> bytes:
    cmd = [nvcc, "-cubin", str(tree / cu), "-o", str(out), *FLAGS,
           "-I", str(tree / "kernels-src"), gencode(capability)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"nvcc failed for {tree / cu} ({capability}):\n{r.stderr[-3000:]}")
    return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD", help="the revision to compare with (default HEAD)")
    ap.add_argument("--kernels", help="comma-separated build.toml kernel sections (default: all)")
    ap.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    ap.add_argument("--jobs", type=int, default=2, help="parallel nvcc processes (default 2)")
    a = ap.parse_args(argv)
    only = set(a.kernels.split(",")) if a.kernels else None
    units = kernel_units(ROOT / "build.toml", only)
    different = 0
    with tempfile.TemporaryDirectory(prefix="cubin-equal-") as tmp:
        base, work = Path(tmp) / "a", Path(tmp) / "b"  # same path length on both sides
        for d in (base, work):
            d.mkdir()
        export_tree(a.rev, base)
        export_tree(None, work)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            for name, cu, cap in units:
                print(f"[{name} {cap}] compiling {cu} at {a.rev} and in the working tree ...",
                      file=sys.stderr, flush=True)
                jobs = [pool.submit(compile_unit, a.nvcc, tree, cu, cap,
                                    Path(tmp) / f"{side}-{name}-{cap}.cubin")
                        for side, tree in (("a", base), ("b", work))]
                ca, cb = (j.result() for j in jobs)
                same = masked(ca) == masked(cb)
                different += not same
                print(f"{name} {cap}: {'identical' if same else 'DIFFERENT'} "
                      f"({len(ca)} / {len(cb)} bytes)", flush=True)
    print(f"{len(units) - different} of {len(units)} cubins identical to {a.rev}'s")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
