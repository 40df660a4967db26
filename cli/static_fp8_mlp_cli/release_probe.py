"""Import probe that `validate` runs in a child interpreter (by file path).

It reports facts only, as one JSON object on stdout; the parent compares them with the
contract. Running it in a child keeps the validating process free of the kernel's op
namespace (the same namespace must never be registered from two paths in one process)
and lets a crashing import show up as a failed check instead of a dead CLI.

usage: python release_probe.py BUILD_DIR [--variant NAME] [--endpoint NAME ...]
                               [--namespace NS] [--no-import] [--expect NAME=SCHEMA ...]

Without --variant it imports the variant `kernels` resolves for the local torch.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import traceback
from pathlib import Path


def _local_variant_name(torch) -> str | None:
    if torch.version.cuda is None:
        return None
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    cu_major, cu_minor = torch.version.cuda.split(".")[:2]
    abi = "cxx11" if torch.compiled_with_cxx11_abi() else "cxx98"
    return f"torch{major}{minor}-{abi}-cu{cu_major}{cu_minor}-{platform.machine()}-{platform.system().lower()}"


def _resolve(build_dir: Path) -> tuple[str | None, list[str]]:
    """The variant `kernels` itself would load from BUILD_DIR, plus its decision trace."""
    try:
        import kernels  # noqa: F401
    except Exception as exc:  # kernels missing: no resolution, exact match only
        return None, [f"kernels not importable: {exc}"]
    from static_fp8_mlp_registry.kernels_api import internal  # wherever this release keeps it

    variants = internal("variants")
    variant, trace = variants.resolve_variant(variants.get_variants_local(build_dir))
    return (variant.variant_str if variant is not None else None), [str(t) for t in trace]


def _signature(fn) -> dict:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        return {"error": str(exc)}
    positional = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    keyword_only = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
    return {"positional": positional, "keyword_only": keyword_only}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--variant", default=None, help="import this variant (default: resolve)")
    parser.add_argument("--endpoint", action="append", default=[])
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="NAME=SCHEMA",
        help="compare op NAME with SCHEMA (`(Tensor! out, ...) -> ()`) using torch's parser",
    )
    parser.add_argument("--namespace", default=None, help="default: the native module's name")
    parser.add_argument("--no-import", action="store_true", help="only report the local variant")
    args = parser.parse_args(argv)

    out: dict = {"python": platform.python_version()}
    try:
        import torch
    except Exception as exc:
        out["torch"] = None
        out["torch_error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out))
        return 0
    out["torch"] = torch.__version__
    out["local_variant"] = _local_variant_name(torch)
    out["resolved_variant"], out["trace"] = _resolve(args.build_dir)

    variant = args.variant or out["resolved_variant"]
    if variant is None or args.no_import:
        print(json.dumps(out))
        return 0
    out["imported_variant"] = variant
    variant_dir = args.build_dir / variant
    try:
        from kernels import get_local_kernel

        module = get_local_kernel(variant_dir)
    except Exception:
        out["import_error"] = traceback.format_exc(limit=8)
        print(json.dumps(out))
        return 0

    out["module"] = module.__name__
    out["all"] = list(getattr(module, "__all__", []) or [])
    ns = args.namespace
    if ns is None:
        sos = sorted(variant_dir.glob("*.so"))
        ns = sos[0].name.split(".")[0] if len(sos) == 1 else None
    out["namespace"] = ns
    out["ops"] = {}
    if ns:
        prefix = f"{ns}::"
        names = sorted(
            {n[len(prefix):] for n in torch._C._dispatch_get_all_op_names() if n.startswith(prefix)}
        )
        packet_ns = getattr(torch.ops, ns)
        for name in names:
            base = name.split(".")[0]
            try:
                packet = getattr(packet_ns, base)
                out["ops"][base] = [str(getattr(packet, o)._schema) for o in packet.overloads()]
            except Exception as exc:
                out["ops"][base] = [f"<error: {exc}>"]
    out["schema_match"] = {}
    for item in args.expect:
        name, _, schema = item.partition("=")
        try:
            expected = torch._C.parse_schema(f"{ns}::{name}{schema}")
            packet = getattr(getattr(torch.ops, ns), name)
            out["schema_match"][name] = any(
                getattr(packet, o)._schema == expected for o in packet.overloads()
            )
        except Exception:
            out["schema_match"][name] = False
    out["functions"] = {}
    for name in args.endpoint:
        fn = getattr(module, name, None)
        out["functions"][name] = None if fn is None else _signature(fn)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.dont_write_bytecode = True
    sys.exit(main())
