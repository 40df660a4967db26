"""`static-fp8-mlp`: one console script for building, validating, publishing, resolving,
benchmarking and demoing the kernel.

Each subcommand lives in its own module exposing `HELP`, `add_arguments(parser)` and
`run(args) -> int`. Modules keep heavy imports (torch, kernels) inside `run`, so
`--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import CliError

# name -> module implementing it
COMMANDS: dict[str, str] = {
    "build": "static_fp8_mlp_cli.build",
    "validate": "static_fp8_mlp_cli.validate",
    "publish": "static_fp8_mlp_cli.publish",
    "resolve": "static_fp8_mlp_registry.cli",
    "bench": "static_fp8_mlp_cli.bench",
    "demo": "static_fp8_mlp_cli.demo",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="static-fp8-mlp",
        description="Fused static-FP8 MLP kernels for the Hugging Face Kernel Hub.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command not part of this checkout
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CliError as exc:
        print(f"static-fp8-mlp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"static-fp8-mlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
