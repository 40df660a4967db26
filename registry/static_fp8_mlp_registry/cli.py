"""`static-fp8-mlp resolve SPEC`: show what a kernel spec resolves to, and whether it
satisfies the v1 endpoint contract.

SPEC is one of:

  owner/name               Hub repo, version 1 (branch v1)
  owner/name@v2            Hub repo, version 2 (branch v2)
  owner/name@<revision>    Hub repo at a branch, tag or commit sha
  ./path, /path, ~/path    a local build: project dir, its build/ dir or a variant dir
                           (prefix relative paths with ./)
  '{"repo_id": ...}'       one kernel spec as JSON (keys as in a fusion_config entry)
  '{"static_quantized_mlp": {...}}'
                           a whole fusion_config as JSON; every entry is resolved
  file.json                a JSON file holding either of the two above

LOCAL_KERNELS, HF_HUB_OFFLINE, KERNELS_CACHE and HF_ENDPOINT apply as for
kernels.get_kernel. Exit status: 0 when every spec resolves and validates, 1 when one
does not (the error is printed), 2 for a malformed SPEC.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

HELP = "show what a kernel spec (repo id, repo@v1, path, or JSON fusion_config) resolves to"

_ENDPOINT_FAMILIES = {"all": None, "input_quant": "input_quant", "gated_mlp": "gated_mlp", "dense_gelu_mlp": "dense_gelu_mlp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (__doc__ or "").split("\n\n", 1)[0] + "\n\n" + (__doc__ or "").split("\n\n", 1)[1]
    parser.add_argument("spec", metavar="SPEC", help="repo id, owner/name@v<N>, owner/name@<revision>, path, or JSON")
    parser.add_argument(
        "--family",
        choices=sorted(_ENDPOINT_FAMILIES),
        default="all",
        help="for a single spec: which endpoints to validate (default: all four)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a repo from a publisher that is not trusted (for repo-id SPECs)",
    )
    smoke = parser.add_mutually_exclusive_group()
    smoke.add_argument("--smoke", dest="smoke", action="store_true", default=None,
                       help="run the smoke test (needs CUDA; default: when CUDA is available)")
    smoke.add_argument("--no-smoke", dest="smoke", action="store_false", help="skip the smoke test")
    parser.add_argument("--no-check-arch", action="store_true",
                        help="do not refuse builds that do not cover the current GPU")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of text")


def parse_spec_arg(text: str, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """SPEC -> {label: (family or None, KernelSpec)}. Raises CliError on malformed input."""
    from static_fp8_mlp_cli.errors import CliError

    from .config import FusionConfig, is_repo_id, parse_kernel_spec
    from .errors import FusionConfigError

    raw = text.strip()
    if not raw:
        raise CliError("SPEC is empty; give a repo id such as owner/static-fp8-mlp, a path, or JSON")
    data: Any = None
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CliError(f"SPEC looks like JSON but does not parse: {exc}") from None
    elif raw.endswith(".json") and os.path.isfile(os.path.expanduser(raw)):
        try:
            with open(os.path.expanduser(raw), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"cannot read JSON from {raw}: {exc}") from None
    try:
        if data is not None:
            if isinstance(data, dict) and ("static_quantized_mlp" in data or not data):
                cfg = FusionConfig.parse(data)
                if not cfg.enabled:
                    raise CliError("the fusion_config enables nothing (static_quantized_mlp is absent, false or empty)")
                return {fam: (fam, spec) for fam, spec in cfg.families().items()}
            return {"spec": (None, parse_kernel_spec(data))}
        looks_like_path = raw.startswith(("/", "./", "../", "~")) or raw in (".", "..")
        if looks_like_path or (os.path.exists(raw) and not is_repo_id(raw.split("@", 1)[0])):
            return {"spec": (None, parse_kernel_spec({"path": raw}))}
        if "@" in raw:
            repo, ref = raw.rsplit("@", 1)
            if not ref:
                raise CliError(f"{raw!r}: nothing after '@'; use owner/name@v<N> or owner/name@<revision>")
            if ref[:1] in ("v", "V") and ref[1:].isdigit():
                d = {"repo_id": repo, "version": int(ref[1:])}
            else:
                d = {"repo_id": repo, "revision": ref}
        else:
            d = {"repo_id": raw}
        d["trust_remote_code"] = trust_remote_code
        return {"spec": (None, parse_kernel_spec(d))}
    except FusionConfigError as exc:
        raise CliError(str(exc)) from None


def _device_line(archs: tuple[str, ...]) -> str:
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device on this machine"
    idx = torch.cuda.current_device()
    cap = torch.cuda.get_device_capability(idx)
    try:
        from kernels.archs import _supports_cuda_capability

        covered = _supports_cuda_capability(list(archs), cap) if archs else True
    except ImportError:  # pragma: no cover
        covered = True
    name = torch.cuda.get_device_name(idx)
    return f"cuda:{idx} {name} (sm_{cap[0]}{cap[1]}): {'covered' if covered else 'NOT covered'}"


def _resolve_one(label: str, family: str | None, spec, args) -> dict[str, Any]:
    from .errors import RegistryError
    from .loader import resolve_kernel
    from .validate import validate_endpoints

    entry: dict[str, Any] = {"label": label, "family": family, "spec": spec.describe(), "ok": False}
    try:
        rk = resolve_kernel(spec, check_arch=not args.no_check_arch)
    except RegistryError as exc:
        entry["error"] = str(exc)
        entry["error_kind"] = getattr(exc, "kind", type(exc).__name__)
        return entry
    entry["resolved"] = rk.describe()
    entry["device"] = _device_line(rk.archs)
    functions = spec.functions()
    if family is None and args.family != "all":
        from .contract import endpoints_of

        wanted = {e.name for e in endpoints_of(args.family)}
        functions = {k: v for k, v in functions.items() if k in wanted}
    vr = validate_endpoints(rk, functions, smoke=args.smoke)
    entry["validation"] = vr.to_dict()
    entry["ok"] = vr.ok
    return entry


def _print_entry(entry: dict[str, Any]) -> None:
    head = entry["spec"] if entry["family"] is None else f"{entry['family']}: {entry['spec']}"
    print(head)
    if "error" in entry:
        print(f"  error ({entry['error_kind']}):")
        for line in entry["error"].splitlines():
            print(f"    {line}")
        return
    r = entry["resolved"]
    rows = [
        ("source", r["source"]),
        ("repo", r["repo_id"] or "-"),
        ("requested", r["requested"]),
        ("revision", r["revision"] or "-"),
        ("variant", r["variant"]),
        ("path", r["variant_path"]),
        ("kernel id", r["kernel_id"]),
        ("archs", ", ".join(r["archs"]) or "-"),
        ("device", entry["device"]),
        ("ops", f"torch.ops.{r['ops_namespace']}" if r["ops_namespace"] else "-"),
    ]
    if r.get("shared_with"):
        rows.append(("shared", r["shared_with"]))
    for k, v in rows:
        print(f"  {k + ':':<11} {v}")
    v = entry["validation"]
    print("  endpoints:")
    for ep in v["endpoints"]:
        mark = "ok" if ep["ok"] else "FAIL"
        print(f"    [{mark}] {ep['signature'] or ep['function']}")
        if ep["function"] != ep["endpoint"]:
            print(f"           implements: {ep['endpoint']}")
        print(f"           op schema: {ep['op_schema'] or '-'}")
        if ep["smoke"]:
            print(f"           smoke: {ep['smoke']}")
        for p in ep["problems"]:
            print(f"           problem: {p}")
        for n in ep["notes"]:
            print(f"           note: {n}")
    print(f"  validation: {'OK' if v['ok'] else 'FAILED'}: {v['summary']}")


def run(args: argparse.Namespace) -> int:
    specs = parse_spec_arg(args.spec, trust_remote_code=args.trust_remote_code)
    entries = [_resolve_one(label, fam, spec, args) for label, (fam, spec) in specs.items()]
    ok = all(e["ok"] for e in entries)
    if args.json:
        print(json.dumps({"ok": ok, "entries": entries}, indent=2, default=str))
    else:
        for i, e in enumerate(entries):
            if i:
                print()
            _print_entry(e)
    return 0 if ok else 1
