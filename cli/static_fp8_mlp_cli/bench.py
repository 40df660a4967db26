"""`static-fp8-mlp bench`: the benchmark suite of benchmarks/bench_mlp.py.

A thin wrapper: the same arguments and the same code as
`python3 benchmarks/bench_mlp.py`, which lives in the checkout (the GPU machine runs it
as a plain script). The script's module imports only the standard library at import
time, so building the parser stays fast; torch is imported when the command runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .errors import CliError

HELP = ("benchmark the endpoints against BF16 cuBLAS, the torch FP8 split path and "
        "torch.compile (CUDA graphs, floor, correctness guard; benchmarks/bench_mlp.py)")

_MODULE_NAME = "static_fp8_mlp_bench_mlp"


def _script_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    return [here.parents[2] / "benchmarks" / "bench_mlp.py",
            Path.cwd() / "benchmarks" / "bench_mlp.py"]


def _load() -> ModuleType | None:
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    for path in _script_candidates():
        if path.is_file():
            spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[_MODULE_NAME] = module
            try:
                spec.loader.exec_module(module)
            except Exception:
                del sys.modules[_MODULE_NAME]
                raise
            return module
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    module = _load()
    if module is None:  # installed without a checkout: run() explains
        parser.add_argument("bench_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    module.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    module = _load()
    if module is None:
        raise CliError("benchmarks/bench_mlp.py not found (looked in "
                       + ", ".join(str(p) for p in _script_candidates())
                       + "): run this from a checkout of static-fp8-mlp")
    return module.run(args)
