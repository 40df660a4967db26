"""`static-fp8-mlp demo`: the whole path from a build to fused MLPs in real models.

1. Kernel. By default the demo uses the local build for this torch (building it first
   when there is none, reusing one that exists), validates it like a release
   (`validate --variants local --dev-build`), publishes it into a throw-away git mirror
   and serves that on 127.0.0.1 with olah (started and stopped here), so the kernel
   really arrives through `kernels.get_kernel(repo_id, version=1)` from a Hub API.
   `--repo-id OWNER/NAME` loads a real Hub repo instead (HF_ENDPOINT picks the Hub);
   `--local` skips the mirror and loads the build directly (a `{"path": ...}` spec, or a
   plain import where the `kernels` library is not installed).
2. Models. A Llama-style decoder (SwiGLU), a Gemma-style decoder (tanh-GELU GeGLU) and
   a SigLIP-style vision encoder (dense tanh-GELU), from configs with random weights.
3. Static FP8. Their MLP linears become static-FP8 layers with amax-calibrated scales
   (`calibrate_static_fp8`, progress bar), or transformers' own FP8Linear.
4. Fusion. `fuse_static_fp8_mlps` with a fusion_config naming the three endpoints.
5. Tables (and `--json`): MLPs found / fused / left alone, output agreement with the
   unfused static-FP8 and the BF16 model, and on a GPU the latency in eager mode and as
   a CUDA-graph replay, plus torch.compile of the fused model.

The local-mirror mode points huggingface_hub at the mirror through HF_ENDPOINT, which
huggingface_hub and kernels read when they are imported; so everything that imports
them happens after the mirror is up, in this process, and the downloaded kernel goes
into a temporary cache (the user's Hub cache never sees the development build).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import CliError

HELP = ("run the end-to-end demo: fuse the static-FP8 MLPs of four small transformers models (Llama, Gemma, Phi-3, SigLIP) "
        "with the kernel served from a local Hub mirror, and compare outputs and latency")

DEFAULT_MIRROR_REPO = "static-fp8-mlp/static-fp8-mlp"
FAMILIES = ("input_quant", "gated_mlp", "dense_gelu_mlp")


def _print(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("kernel source (default: build -> validate -> local Hub mirror on 127.0.0.1)")
    src.add_argument("--repo-id", metavar="OWNER/NAME", default=None,
                     help="load this kernel repo (version 1) from a real Hub instead of the local mirror; "
                          "HF_ENDPOINT picks the Hub (default huggingface.co)")
    src.add_argument("--trust-remote-code", action="store_true",
                     help="with --repo-id: load it even if its publisher is not a trusted one")
    src.add_argument("--local", action="store_true",
                     help="skip the mirror: load the build directly (kernels.get_local_kernel through the "
                          "registry's {'path': ...} spec; a plain import where kernels is not installed)")
    src.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                     help="build directory holding <variant>/ dirs (or one variant dir); default: <checkout>/build")
    src.add_argument("--no-build", action="store_true",
                     help="never compile: use the existing build, fail if there is none")
    src.add_argument("--rebuild", action="store_true",
                     help="run the incremental build even when a build exists (recompiles what changed)")
    src.add_argument("--port", type=int, default=None,
                     help="port of the local Hub mirror on 127.0.0.1 (default: a free one)")

    mdl = parser.add_argument_group("models (sizes default to a preset; hidden and intermediate must be multiples of 16)")
    mdl.add_argument("--models", default="llama,gemma,phi3,siglip",
                     help="comma list of llama, gemma, phi3, siglip (default: all four)")
    mdl.add_argument("--preset", choices=("auto", "cpu", "gpu"), default="auto",
                     help="size preset: cpu (tiny, well under a minute), gpu (big enough to time); "
                          "auto: gpu on a CUDA device, else cpu")
    for name, help_text in (
        ("hidden", "hidden size"),
        ("intermediate", "MLP intermediate size"),
        ("layers", "number of layers"),
        ("heads", "attention heads"),
        ("vocab-size", "vocabulary of the decoders"),
        ("batch-size", "sequences / images per forward"),
        ("seq-len", "tokens per sequence (decoders)"),
        ("image-size", "image side in pixels (SigLIP)"),
        ("patch-size", "patch side in pixels (SigLIP)"),
    ):
        mdl.add_argument(f"--{name}", type=int, default=None, help=f"{help_text} (default: from --preset)")
    mdl.add_argument("--calib-batches", type=int, default=4, help="calibration batches (default 4)")
    mdl.add_argument("--keep-bf16", type=int, default=0, metavar="N",
                     help="leave the MLPs of the last N layers in BF16 (they show up as 'left alone')")
    mdl.add_argument("--per-channel", action="store_true", help="per-output-channel weight scales")
    mdl.add_argument("--fp8-layers", choices=("registry", "transformers"), default="registry",
                     help="static FP8 layers: the registry's StaticFP8Linear (default) or transformers' "
                          "FP8Linear(activation_scheme='static') (GPU only: its own forward runs a Hub kernel)")
    mdl.add_argument("--fp8-compute", choices=("fp32", "bf16"), default="fp32",
                     help="matmul precision of the unfused StaticFP8Linear reference (default fp32)")
    mdl.add_argument("--seed", type=int, default=0)

    run_g = parser.add_argument_group("run")
    run_g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="auto: cuda when available, else cpu (CPU: fusion falls back, no latency)")
    run_g.add_argument("--warmup", type=int, default=5, help="warm-up calls per latency cell (default 5)")
    run_g.add_argument("--iters", type=int, default=20, help="timed calls per latency sample (default 20)")
    run_g.add_argument("--no-graphs", action="store_true", help="skip the CUDA-graph latency column")
    run_g.add_argument("--no-compile", action="store_true", help="skip torch.compile of the fused model")
    run_g.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every number as JSON")
    run_g.add_argument("--verbose", "-v", action="store_true", help="print the registry's full fusion reports")


# ------------------------------------------------------------------ argument checks


def _one_line(text: str, limit: int = 700) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_list(text: str) -> list[str]:
    from .demo_models import MODEL_NAMES

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in MODEL_NAMES]
    if bad or not names:
        raise CliError(f"--models {text!r}: choose from {', '.join(MODEL_NAMES)} (comma separated)")
    return list(dict.fromkeys(names))


def _check_repo_id(repo_id: str) -> str:
    import re

    name = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
    if not re.match(rf"^{name}/{name}$", repo_id) or "--" in repo_id or ".." in repo_id or len(repo_id) > 96:
        raise CliError(f"--repo-id {repo_id!r} is not a Hub repo id: use OWNER/NAME, e.g. my-org/static-fp8-mlp")
    return repo_id


def _check_args(args: argparse.Namespace) -> None:
    if args.repo_id is not None:
        _check_repo_id(args.repo_id)
        if args.local:
            raise CliError("--repo-id and --local exclude each other: pick the Hub repo or the local build")
        for flag, on in (("--port", args.port is not None), ("--build-dir", args.build_dir is not None),
                         ("--no-build", args.no_build), ("--rebuild", args.rebuild)):
            if on:
                raise CliError(f"{flag} applies to the local build; with --repo-id the kernel comes from the Hub")
    elif args.trust_remote_code:
        raise CliError("--trust-remote-code only applies with --repo-id (the local mirror is trusted)")
    if args.local and args.port is not None:
        raise CliError("--port is the local Hub mirror's port; --local does not start one")
    if args.no_build and args.rebuild:
        raise CliError("--no-build and --rebuild exclude each other")
    if args.port is not None and not (1 <= args.port <= 65535):
        raise CliError(f"--port {args.port} is not a TCP port (1-65535)")
    for flag, value, lo in (("--calib-batches", args.calib_batches, 1), ("--iters", args.iters, 1),
                            ("--keep-bf16", args.keep_bf16, 0),
                            ("--warmup", args.warmup, 0)):
        if value < lo:
            raise CliError(f"{flag} must be at least {lo}")


def _port_free(port: int) -> None:
    from .hub_mirror import HOST

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                why = "is in use" if exc.errno == errno.EADDRINUSE else "needs privileges"
                raise CliError(
                    f"port {port} on {HOST} {why}: pass another --port, or leave --port out to use a free one"
                ) from exc
            raise CliError(f"cannot use port {port} on {HOST}: {exc.strerror}") from exc


# ------------------------------------------------------------------------- build


def local_variant() -> str:
    """The build variant `kernels` picks for this torch (CUDA builds only)."""
    import torch

    if torch.version.cuda is None:
        raise CliError(
            f"torch {torch.__version__} has no CUDA: the kernel builds are for CUDA builds of torch "
            "(install one, e.g. the default PyPI torch wheel; a GPU is not needed for the demo)"
        )
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    cmaj, cmin = torch.version.cuda.split(".")[:2]
    abi = "cxx11" if torch.compiled_with_cxx11_abi() else "cxx98"
    return f"torch{major}{minor}-{abi}-cu{cmaj}{cmin}-{platform.machine()}-{platform.system().lower()}"


def _checkout_project() -> Path | None:
    from .build import default_project_dir

    try:
        return default_project_dir()
    except CliError:
        return None


def ensure_build(args: argparse.Namespace, variant: str) -> tuple[Path, dict[str, Any]]:
    """The variant directory to use; builds it when missing (unless --no-build)."""
    project = _checkout_project()
    if args.build_dir is not None:
        given = args.build_dir.expanduser().resolve()
        if (given / "metadata.json").is_file():  # one variant dir
            if given.name != variant:
                raise CliError(
                    f"--build-dir {given} is the variant {given.name}, but this torch loads {variant}: "
                    "point --build-dir at a build for this torch"
                )
            return given, {"variant_dir": str(given), "built": False, "reused": True}
        out_dir = given / "build" if (given / "build" / variant / "metadata.json").is_file() else given
    else:
        if project is None:
            raise CliError("no build.toml here and not run from a checkout: pass --build-dir DIR (or --repo-id)")
        out_dir = project / "build"

    vdir = out_dir / variant
    exists = (vdir / "metadata.json").is_file()
    info: dict[str, Any] = {"variant_dir": str(vdir), "built": False, "reused": exists}
    if exists and not args.rebuild:
        _print(f"build: reusing {vdir} (`static-fp8-mlp build` or --rebuild refreshes it)")
        return vdir, info
    if args.no_build:
        raise CliError(
            f"no build of {variant} in {out_dir}: run `static-fp8-mlp build` (needs nvcc), point --build-dir "
            "at an existing build, or drop --no-build"
        )
    if project is None:
        raise CliError(f"no build of {variant} in {out_dir} and no checkout (build.toml) to build from")
    from .build import build

    _print(f"build: {'updating' if exists else 'no build yet, compiling'} {vdir} (static-fp8-mlp build)")
    t = time.monotonic()
    try:
        result = build(project, out_dir=out_dir)
    except CliError as exc:
        raise CliError(
            f"building the kernel failed: {_one_line(exc)} -- or skip building: --build-dir DIR with an "
            "existing build, or --repo-id OWNER/NAME for a published one"
        ) from exc
    info.update(built=True, build_s=round(time.monotonic() - t, 1), variant_dir=str(result.variant_dir))
    return Path(result.variant_dir), info


def validate_variant(vdir: Path, project: Path | None) -> Any:
    """`validate --variants local --dev-build` on the build holding `vdir`."""
    from .release_variants import find_build_toml
    from .validate import format_table, validate_build

    build_root = vdir.parent
    toml = find_build_toml(build_root.parent if build_root.name == "build" else build_root)
    if toml is None and project is not None:
        toml = project / "build.toml"
    if toml is None:
        raise CliError(f"cannot find the build.toml of {vdir}: run the demo from the checkout that built it")
    t = time.monotonic()
    report = validate_build(build_root, build_toml=Path(toml), variants="local", dev_build=True)
    if not report.ok:
        _print(format_table(report))
        fails = report.failures()
        raise CliError(
            f"validate rejects the build {vdir}: {_one_line('; '.join(fails[:2]), 400)} -- rebuild it with "
            "`static-fp8-mlp build --force`"
        )
    row = next(v for v in report.selected)
    _print(f"validate: {row.name} {row.status} "
           f"({', '.join(k for k, c in row.checks.items() if c.status in ('ok', 'dev'))}; "
           f"{time.monotonic() - t:.1f}s)")
    return report


# --------------------------------------------------------------------- local hub


def _find_olah() -> Path:
    from .hub_mirror import HubMirrorError, find_olah

    try:
        return find_olah()
    except HubMirrorError as exc:
        raise CliError(f"the local Hub mirror needs olah: {exc}; or skip the mirror with --local") from exc


def publish_to_mirror(report: Any, mirror: Path) -> tuple[str, str, str]:
    """Commit the validated variant to branch v<version> of mirror/kernels/OWNER/NAME."""
    from .hub_mirror import mirror_repo_dir
    from .publish import make_plan
    from .release_git import publish_to_git

    repo_id = report.spec.repo_id or DEFAULT_MIRROR_REPO
    plan = make_plan(report, repo_id)
    outcome = publish_to_git(
        mirror_repo_dir(mirror, repo_id),
        branch=plan.branch,
        files=plan.files,
        variants=list(plan.variants),
        card_for=lambda kept, _repo: plan.card(kept),
        message=f"demo: {report.spec.name} v{report.spec.version}",
    )
    commit = outcome.build_commit or ""
    _print(f"publish: {len(plan.files)} files -> {repo_id}@{plan.branch} ({commit[:12]}) in a local git mirror")
    return repo_id, plan.branch, commit


_CLIENT_ENV_DROP = ("HF_HUB_OFFLINE", "LOCAL_KERNELS", "KERNELS_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@contextlib.contextmanager
def _client_env(endpoint: str, cache: Path) -> Iterator[None]:
    """HF_ENDPOINT etc. for this process (restored afterwards). Must come before
    huggingface_hub / kernels are imported: they read it at import time."""
    from .hub_mirror import client_env

    stale = [m for m in ("huggingface_hub", "kernels") if m in sys.modules]
    if stale:
        raise CliError(
            f"{' and '.join(stale)} were imported before the demo could point them at the local Hub; "
            "run `static-fp8-mlp demo` in a fresh process (or use --local)"
        )
    saved = dict(os.environ)
    for k in _CLIENT_ENV_DROP:
        os.environ.pop(k, None)
    os.environ.update(client_env(endpoint, cache))
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"  # never send a token to the local mirror
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ---------------------------------------------------------------------- kernels


def _kernels_installed() -> bool:
    try:
        import kernels  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or broken against this huggingface_hub
        return False
    return True


def _import_variant(vdir: Path):
    """Import a variant directory as a package, without `kernels` (the GPU machine)."""
    import hashlib
    import importlib.util

    name = "static_fp8_mlp_demo_" + hashlib.sha1(str(vdir).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, vdir / "__init__.py", submodule_search_locations=[str(vdir)])
    if spec is None or spec.loader is None:
        raise CliError(f"{vdir} is not an importable build variant (no __init__.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        del sys.modules[name]
        raise CliError(
            f"importing the build {vdir} failed: {_one_line(exc, 300)} -- it must match this torch/CUDA "
            "(rebuild it with `static-fp8-mlp build`)"
        ) from exc
    return module


def resolve(spec: dict[str, Any], *, direct_import: Path | None, hint: str = "") -> tuple[dict[str, Any], Any, dict | None]:
    """Resolve and validate the kernel once, up front; CliError with what to do otherwise.

    Returns (JSON description, the resolved kernel, kernel_modules for the fuser)."""
    try:
        from static_fp8_mlp_registry import RegistryError, resolve_kernel, resolved_from_module, validate_endpoints
        from static_fp8_mlp_registry.config import parse_kernel_spec
    except ImportError as exc:
        raise CliError(f"the registry needs {exc.name or exc}: pip install pydantic (and kernels)") from exc

    kernel_modules = None
    try:
        if direct_import is not None:
            module = _import_variant(direct_import)
            rk = resolved_from_module(module, parse_kernel_spec(spec))
            kernel_modules = {f: module for f in FAMILIES}
        else:
            rk = resolve_kernel(spec)
        vr = validate_endpoints(rk)
        vr.raise_if_failed()
    except RegistryError as exc:
        raise CliError(_one_line(f"{exc}{hint}")) from exc
    info = rk.describe()
    info["validation"] = vr.summary()
    return info, rk, kernel_modules


# ------------------------------------------------------------------------- run


def _sizes(args: argparse.Namespace, device_type: str):
    from .demo_models import PRESETS, SIZE_KEYS, Sizes, check_sizes

    preset = args.preset if args.preset != "auto" else ("gpu" if device_type == "cuda" else "cpu")
    values = dict(PRESETS[preset])
    for k in SIZE_KEYS:
        v = getattr(args, k)
        if v is not None:
            values[k] = v
    sizes = Sizes(**values)
    check_sizes(sizes)
    return preset, sizes


def _pick_device(choice: str):
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is visible (drop --device, or use --device cpu)")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def run(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    _check_args(args)
    models = _model_list(args.models)
    mode = "hub" if args.repo_id else ("local" if args.local else "local-hub")

    # Cheap checks first (sizes, port, olah), before any build or download.
    import torch

    device = _pick_device(args.device)
    preset, sizes = _sizes(args, device.type)
    if args.fp8_layers == "transformers":
        if device.type != "cuda":
            raise CliError("--fp8-layers transformers needs a GPU: transformers' FP8Linear runs a Triton kernel")
        if args.per_channel:
            raise CliError("--fp8-layers transformers takes per-tensor weight scales: drop --per-channel")
    olah = None
    if mode == "local-hub":
        if args.port is not None:
            _port_free(args.port)
        olah = _find_olah()

    result: dict[str, Any] = {
        "demo_version": 1,
        "mode": mode,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "preset": preset,
        "sizes": sizes.to_dict(),
        "models": {},
    }

    with contextlib.ExitStack() as stack:
        direct = None
        if mode == "hub":
            spec: dict[str, Any] = {"repo_id": args.repo_id, "version": 1, "trust_remote_code": args.trust_remote_code}
            endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
            _print(f"source: {args.repo_id}@v1 from the Hub at {endpoint} (no local build needed)")
            result["kernel_source"] = {"endpoint": endpoint, "repo_id": args.repo_id, "requested": "v1"}
        else:
            variant = local_variant()
            vdir, build_info = ensure_build(args, variant)
            result["build"] = build_info
            if mode == "local":
                spec = {"path": str(vdir)}
                if not _kernels_installed():
                    direct = vdir
                    _print(f"source: importing {vdir} directly (the kernels library is not installed)")
                else:
                    _print(f"source: {vdir} through kernels.get_local_kernel (--local: no Hub mirror)")
                result["kernel_source"] = {"path": str(vdir), "direct_import": direct is not None}
            else:
                report = validate_variant(vdir, _checkout_project())
                result["build"]["validate"] = "PASSED (development build)" if report.is_dev else "PASSED"
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="static-fp8-mlp-demo-")))
                repo_id, branch, commit = publish_to_mirror(report, tmp / "mirror")
                from .hub_mirror import HubMirrorError, serve_local_hub

                if args.port is not None:
                    _port_free(args.port)  # again: something may have taken it meanwhile
                try:
                    endpoint = stack.enter_context(
                        serve_local_hub(tmp / "mirror", port=args.port, olah_bin=olah, log_dir=tmp / "olah-logs")
                    )
                except HubMirrorError as exc:
                    raise CliError(
                        f"the local Hub mirror (olah) did not start: {_one_line(exc, 300)} -- try another --port, "
                        "reinstall it with tools/install_olah.sh, or use --local"
                    ) from exc
                _print(f"serve: local Hub mirror (olah) at {endpoint}, stopped when the demo ends")
                stack.enter_context(_client_env(endpoint, tmp / "hf-cache"))
                version = int(branch.lstrip("v"))
                spec = {"repo_id": repo_id, "version": version, "trust_remote_code": True}
                result["kernel_source"] = {
                    "endpoint": endpoint, "repo_id": repo_id, "requested": branch, "published_commit": commit,
                    "hf_cache": str(tmp / "hf-cache"),
                }

        # ---- resolve once (a clear error now rather than a silent fallback later)
        t = time.monotonic()
        hint = " (demo: leave out --repo-id to use the local build instead)" if mode == "hub" else ""
        info, rk, kernel_modules = resolve(spec, direct_import=direct, hint=hint)
        result["kernel"] = info
        result["kernel"]["resolve_s"] = round(time.monotonic() - t, 2)
        how = {
            "hub": "kernels.get_kernel",
            "hub-cache": "kernels.get_kernel (offline cache)",
            "local-override": "LOCAL_KERNELS",
            "path": "kernels.get_local_kernel",
            "module": "direct import",
        }.get(info["source"], info["source"])
        rev = f"@{info['revision'][:12]}" if info.get("revision") else ""
        where = info.get("repo_id") or info["variant_path"]
        if info["source"] == "hub":
            how += f" from {result['kernel_source']['endpoint']}"
        _print(f"kernel: {where}{rev} [{info['variant']}] via {how}; {info['validation']}")

        fusion_config = {"static_quantized_mlp": {f: dict(spec) for f in FAMILIES}}
        result["fusion_config"] = fusion_config
        try:
            import transformers

            result["versions"]["transformers"] = transformers.__version__
        except ImportError as exc:
            raise CliError("the demo needs transformers: pip install 'transformers>=5.18'") from exc
        with contextlib.suppress(Exception):
            import importlib.metadata as md

            result["versions"]["kernels"] = md.version("kernels")

        from .demo_models import format_model_table, run_model

        dtype = torch.float32 if args.fp8_compute == "fp32" else torch.bfloat16
        latency = device.type == "cuda"
        _print()
        _print(f"models ({preset} preset, {device.type}): {', '.join(models)}")
        for key in models:
            _print()
            r = run_model(
                key, sizes, device=device, fusion_config=fusion_config, kernel_modules=kernel_modules,
                calib_batches=args.calib_batches, keep_bf16=args.keep_bf16, per_channel=args.per_channel, fp8_compute=dtype,
                fp8_layers=args.fp8_layers, seed=args.seed, latency=latency, compile_fused=not args.no_compile,
                graphs=not args.no_graphs, warmup=args.warmup, iters=args.iters, log=_print,
            )
            if not latency:
                r["latency_skipped"] = "no CUDA device: the fused modules run their original forward on CPU"
            text = r.pop("fusion_report_text")
            result["models"][key] = r
            _print(format_model_table(key, r, sizes, device))
            if args.verbose:
                _print("  registry report:\n    " + text.replace("\n", "\n    "))

    totals = {k: sum(r["mlps"][k] for r in result["models"].values())
              for k in ("found", "fused", "left_alone", "ran_fused", "fell_back")}
    result["totals"] = totals
    result["all_identical_to_unfused"] = all(
        r["agreement"]["fused_vs_unfused_fp8"]["identical"] for r in result["models"].values()
    )
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    _print()
    _print(_summary(result))
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        except OSError as exc:
            raise CliError(f"cannot write --json {args.json}: {exc.strerror or exc}") from exc
        _print(f"wrote {args.json}")
    return 0


def _summary(result: dict[str, Any]) -> str:
    t = result["totals"]
    head = (f"summary: {t['found']} MLPs found in {len(result['models'])} models, {t['fused']} fused, "
            f"{t['left_alone']} left alone")
    head = head.replace("in 1 models", "in 1 model")
    if t["fused"] and t["fell_back"] == t["fused"]:
        same = ("outputs identical to the unfused static-FP8 models" if result["all_identical_to_unfused"]
                else "outputs NOT identical to the unfused models")
        return (f"{head}; on {result['device']} every fused MLP fell back to its original forward, {same} "
                f"({result['elapsed_s']}s)")
    return f"{head}; {t['ran_fused']} ran the fused kernels ({result['elapsed_s']}s)"
