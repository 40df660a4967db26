"""`static-fp8-mlp validate BUILD_DIR`: check every build variant before it is published.

One table row per variant; the exit status is non-zero when any selected variant fails
or a required variant is missing. Checks, per variant:

LAYOUT     `__init__.py`, `_ops.py`, `metadata.json`, the package's `.py` files from
           `torch-ext/<module>/`, exactly one native module, and one op namespace
           (`_ops.py` namespace == native module name == `metadata.json` id).
META       `metadata.json` parses (`kernels-data`), name/version/license agree with
           `build.toml`, backend is CUDA.
ARCHS      `backend.archs` is exactly the union of `cuda-capabilities` of the
           `build.toml` CUDA sections that apply to the variant's CUDA version.
ABI3       the native module is named `*.abi3.so` and uses only the Python 3.9 stable
           ABI (`kernel-abi-check`).
MANYLINUX  no symbol versions newer than manylinux_2_28 (`kernel-abi-check`), no
           absolute RPATH/RUNPATH. A local (non-Nix) build usually fails this; it is
           accepted only with `--dev-build`, and the row then says DEV.
DEPS       DT_NEEDED names only the manylinux system libraries, torch's libraries, and
           the CUDA libraries torch itself links (see `release_elf.py` for why we read
           ELF ourselves).
OPS        every contract endpoint's op schema is a literal in the native module and
           equals the contract (static; works for variants of any torch/CUDA version),
           and `__all__` exports the endpoint.
IMPORT     only for the variant that `kernels` would pick for the local torch: imported
           in a child interpreter via `kernels.get_local_kernel`; every endpoint's
           registered op schema and Python signature must match the contract.

Coverage: `--variants` selects what must be present and is checked/published
(default `required,present`: kernel-builder's required set plus whatever else is in the
build). `local` is the local torch's variant, `present` everything in BUILD_DIR.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CliError
from .release_variants import (
    REQUIRED_VARIANTS,
    BuildSpec,
    find_build_toml,
    parse_variant,
    read_build_toml,
)

HELP = "Check every variant of a build directory (layout, metadata, ABI, ops) before publishing."

MANYLINUX = "manylinux_2_28"
PYTHON_ABI = "3.9"
PROBE_TIMEOUT_S = 600

CHECKS = ("layout", "meta", "archs", "abi3", "manylinux", "deps", "ops", "import")

# Libraries a manylinux_2_28 wheel may link from the system (PEP 600's policy, the
# subset a C++/CUDA extension can use).
SYSTEM_LIBS = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    }
)
# torch's own C++ libraries (not libtorch_python: that one is tied to a CPython ABI).
TORCH_LIBS = frozenset(
    {"libc10.so", "libc10_cuda.so", "libtorch.so", "libtorch_cpu.so", "libtorch_cuda.so"}
)
# CUDA libraries that torch's libraries themselves name in DT_NEEDED (checked against
# torch 2.11+cu130: libtorch_cuda, libc10_cuda, libtorch_cpu, libcaffe2_nvrtc), so they
# are present wherever a CUDA torch is. Any soname version: cu126 builds link .so.12.
TORCH_CUDA_LIB_STEMS = (
    "cudart",
    "cublas",
    "cublasLt",
    "cusparse",
    "cusparseLt",
    "cufft",
    "curand",
    "cusolver",
    "nvrtc",
    "cuda",
    "cudnn",
    "nccl",
    "cupti",
    "cufile",
    "nvshmem_host",
)
_CUDA_LIB_RE = re.compile(r"^lib(" + "|".join(TORCH_CUDA_LIB_STEMS) + r")\.so(\.\d+)*$")
_IGNORED_DIRS = {"benchmarks"}


def _arch_key(arch: str) -> tuple:
    m = re.match(r"(\d+)\.(\d+)(.*)", arch)
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else (1 << 30, 0, arch)


def canonical_schema(schema: str) -> str:
    """Schema text without namespace/op name, spacing, or alias-set names (`Tensor(a!)`
    and `Tensor!` both mean a mutated argument), for comparing literals."""
    from static_fp8_mlp_registry.contract import normalize_schema

    text = normalize_schema(schema)
    text = re.sub(r"Tensor\s*\(\s*[a-z0-9]*\s*!\s*\)", "Tensor! ", text)
    text = re.sub(r"\s*([,()\[\]])\s*", r"\1", text)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s*->\s*", "->", text)


def dependency_allowed(soname: str) -> bool:
    return soname in SYSTEM_LIBS or soname in TORCH_LIBS or bool(_CUDA_LIB_RE.match(soname))


@dataclass
class Check:
    name: str
    status: str  # "ok", "fail", "dev" (accepted only as a development build), "skip"
    detail: str = ""


@dataclass
class VariantReport:
    name: str
    present: bool
    selected: bool
    checks: dict[str, Check] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    archs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str = "") -> None:
        prev = self.checks.get(name)
        rank = {"skip": 0, "ok": 1, "dev": 2, "fail": 3}
        if prev is not None and rank[prev.status] >= rank[status]:
            if status != "ok" and detail:
                prev.detail = "; ".join(d for d in (prev.detail, detail) if d)
            return
        if prev is not None and prev.detail and detail and prev.status != "ok":
            detail = f"{prev.detail}; {detail}"
        self.checks[name] = Check(name, status, detail)

    @property
    def status(self) -> str:
        if not self.selected:
            return "SKIP"
        if not self.present:
            return "MISSING"
        states = {c.status for c in self.checks.values()}
        if "fail" in states:
            return "FAIL"
        if "dev" in states:
            return "DEV"
        return "OK"


@dataclass
class BuildReport:
    build_dir: Path
    spec: BuildSpec
    dev_build: bool
    variants: list[VariantReport]
    probe: dict | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def selected(self) -> list[VariantReport]:
        return [v for v in self.variants if v.selected]

    @property
    def ok(self) -> bool:
        return bool(self.selected) and all(v.status in ("OK", "DEV") for v in self.selected)

    @property
    def is_dev(self) -> bool:
        return any(v.status == "DEV" for v in self.selected)

    def failures(self) -> list[str]:
        out = []
        for v in self.selected:
            if v.status == "MISSING":
                out.append(f"{v.name}: required variant missing from {self.build_dir}")
            for c in v.checks.values():
                if c.status == "fail":
                    out.append(f"{v.name}: {c.name}: {c.detail}")
        if not self.selected:
            out.append("no variant selected")
        return out

    def to_json(self) -> dict:
        return {
            "build_dir": str(self.build_dir),
            "ok": self.ok,
            "dev": self.is_dev,
            "variants": [
                {
                    "name": v.name,
                    "status": v.status,
                    "archs": v.archs,
                    "checks": {k: asdict(c) for k, c in v.checks.items()},
                    "notes": v.notes,
                }
                for v in self.variants
            ],
            "messages": self.messages,
        }


# ---------------------------------------------------------------------------------
# discovery


def find_variants_dir(build_dir: Path) -> Path:
    """BUILD_DIR itself when it holds variant dirs (`build/`, a Nix `result`), else
    BUILD_DIR/build (a project checkout)."""
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise CliError(f"{build_dir} is not a directory")

    def has_variants(d: Path) -> bool:
        return d.is_dir() and any(
            p.is_dir() and (parse_variant(p.name) or (p / "metadata.json").exists()) for p in d.iterdir()
        )

    if has_variants(build_dir):
        return build_dir
    if has_variants(build_dir / "build"):
        return build_dir / "build"
    raise CliError(
        f"no build variants (torch*-cxx11-cu*-*-linux directories) in {build_dir}; "
        "pass the directory that holds them (e.g. build/ or a Nix result)"
    )


def present_variants(variants_dir: Path) -> list[str]:
    return sorted(
        p.name
        for p in variants_dir.iterdir()
        if p.is_dir() and p.name not in _IGNORED_DIRS and not p.name.startswith(".")
    )


def local_variant_from_probe(probe: dict | None) -> str | None:
    if not probe or not probe.get("torch"):
        return None
    return probe.get("resolved_variant") or probe.get("local_variant")


def select_variants(spec_text: str, present: list[str], probe: dict | None) -> list[str]:
    selected: list[str] = []
    for token in [t.strip() for t in spec_text.split(",") if t.strip()]:
        if token == "required":
            names = list(REQUIRED_VARIANTS)
        elif token in ("present", "all"):
            names = list(present)
        elif token == "local":
            local = local_variant_from_probe(probe)
            if local is None:
                exact = (probe or {}).get("local_variant")
                if not (probe or {}).get("torch"):
                    raise CliError(
                        "--variants local needs torch in this environment "
                        f"({(probe or {}).get('torch_error', 'torch not importable')})"
                    )
                if exact is None:
                    raise CliError("--variants local: the local torch has no CUDA, so it has no CUDA variant")
                names = [exact]  # absent: reported as MISSING
            else:
                names = [local]
        else:
            if parse_variant(token) is None:
                raise CliError(
                    f"--variants: {token!r} is neither a variant name "
                    "(torch212-cxx11-cu130-x86_64-linux) nor one of required, present, local"
                )
            names = [token]
        for n in names:
            if n not in selected:
                selected.append(n)
    if not selected:
        raise CliError("--variants selects nothing")
    return selected


# ---------------------------------------------------------------------------------
# static checks


def _all_literal(init_py: Path) -> list[str] | None:
    try:
        tree = ast.parse(init_py.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return [str(v) for v in value]
    return None


def _ops_namespace(ops_py: Path) -> str | None:
    try:
        m = re.search(r"torch\.ops\.([A-Za-z_][A-Za-z0-9_]*)", ops_py.read_text())
    except (OSError, UnicodeDecodeError):
        return None
    return m.group(1) if m else None


def _package_sources(spec: BuildSpec) -> list[str]:
    src = spec.path.parent / "torch-ext" / spec.python_name
    if not src.is_dir():
        return []
    return sorted(str(p.relative_to(src)) for p in src.rglob("*.py") if "__pycache__" not in p.parts)


def _variant_files(vdir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(vdir))
        for p in vdir.rglob("*")
        if p.is_file() and not is_bytecode(p.relative_to(vdir))
    )


def is_bytecode(rel: Path) -> bool:
    return "__pycache__" in rel.parts or rel.suffix in (".pyc", ".pyo")


def check_variant_static(vdir: Path, spec: BuildSpec, report: VariantReport, dev_build: bool) -> None:
    from static_fp8_mlp_registry.contract import ENDPOINTS, normalize_schema

    name = vdir.name
    parsed = parse_variant(name)
    if parsed is None:
        report.add(
            "layout",
            "fail",
            f"{name!r} is not a CUDA variant name as kernel-builder writes them "
            "(torch<MAJ><MIN>-cxx11-cu<MAJ><MIN>-<cpu>-linux)",
        )
    report.files = _variant_files(vdir)

    # -- layout
    for required in ("__init__.py", "_ops.py", "metadata.json"):
        if not (vdir / required).is_file():
            report.add("layout", "fail", f"{required} missing")
    missing_src = [f for f in _package_sources(spec) if not (vdir / f).is_file()]
    if missing_src:
        report.add("layout", "fail", "package files missing: " + ", ".join(missing_src))
    if any(is_bytecode(p.relative_to(vdir)) for p in vdir.rglob("*")):
        report.notes.append("bytecode (__pycache__/*.pyc) present; publish leaves it out")
    sos = sorted(p for p in vdir.rglob("*.so") if p.is_file())
    so: Path | None = None
    if len(sos) != 1:
        report.add(
            "layout",
            "fail",
            f"expected exactly one native module, found {len(sos)}"
            + (": " + ", ".join(str(p.relative_to(vdir)) for p in sos) if sos else ""),
        )
    if sos:
        so = sos[0]
    so_module = so.name.split(".")[0] if so is not None else None
    if so is not None and so.parent != vdir:
        report.add("layout", "fail", f"native module {so.relative_to(vdir)} is not at the variant's top level")
    if so_module is not None and not re.fullmatch(rf"_{spec.python_name}_cuda_[A-Za-z0-9_]+", so_module):
        report.add(
            "layout",
            "fail",
            f"native module {so.name} is not named _{spec.python_name}_cuda_<rev>.abi3.so",
        )
    ns = _ops_namespace(vdir / "_ops.py") if (vdir / "_ops.py").is_file() else None
    if (vdir / "_ops.py").is_file() and ns is None:
        report.add("layout", "fail", "_ops.py does not name a torch.ops namespace")
    if ns is not None and so_module is not None and ns != so_module:
        report.add("layout", "fail", f"_ops.py uses namespace {ns} but the native module is {so_module}")
    report.add("layout", "ok")

    # -- metadata
    meta = None
    if (vdir / "metadata.json").is_file():
        try:
            from kernels_data import Metadata

            meta = Metadata.read_from_file(vdir / "metadata.json")
        except Exception as exc:  # kernels-data raises ValueError
            report.add("meta", "fail", f"metadata.json does not parse: {exc}")
    else:
        report.add("meta", "fail", "metadata.json missing")
    if meta is not None:
        if str(meta.name) != spec.name:
            report.add("meta", "fail", f"name {meta.name} != build.toml name {spec.name}")
        if meta.version != spec.version:
            report.add("meta", "fail", f"version {meta.version} != build.toml version {spec.version}")
        if spec.license and meta.license and meta.license.lower() != spec.license.lower():
            report.add("meta", "fail", f"license {meta.license} != build.toml license {spec.license}")
        backend = str(meta.backend.backend_type).lower()
        if "cuda" not in backend:
            report.add("meta", "fail", f"backend {meta.backend.backend_type} is not CUDA")
        if meta.digest is not None:
            # kernel-builder records a digest of the variant's files (hash-kernel-hook);
            # `kernels verify` checks it, so a copy that drifted from it must not ship.
            try:
                from kernels_data import Digest

                meta.digest.validate(Digest.hash_variant(meta.digest.algorithm, vdir))
            except Exception as exc:
                violations = [str(v) for v in getattr(exc, "violations", [])] or [str(exc)]
                report.add("meta", "fail", "files differ from the metadata.json digest: " + "; ".join(violations[:4]))
        else:
            report.notes.append("metadata.json has no digest (kernel-builder builds record one)")
        if so_module is not None and meta.id != so_module:
            report.add("layout", "fail", f"metadata id {meta.id} != native module name {so_module}")
        report.add("meta", "ok")

        # -- archs
        archs = list(meta.backend.archs or [])
        report.archs = sorted(archs, key=_arch_key)
        if parsed is None:
            report.add("archs", "skip", "variant name does not say the CUDA version")
        else:
            want = set(spec.expected_archs(parsed.cuda))
            have = set(archs)
            lacking = sorted(want - have)
            extra = sorted(have - want)
            if lacking:
                report.add(
                    "archs",
                    "fail",
                    f"metadata lacks {', '.join(lacking)} which build.toml asks for at CUDA {parsed.cuda_str}",
                )
            if extra:
                report.add(
                    "archs",
                    "fail",
                    f"metadata advertises {', '.join(extra)} which build.toml does not ask for "
                    f"at CUDA {parsed.cuda_str}",
                )
            report.add("archs", "ok")
    else:
        report.add("archs", "skip", "no metadata")

    # -- native module
    if so is None:
        for c in ("abi3", "manylinux", "deps", "ops"):
            report.add(c, "fail" if c == "ops" else "skip", "no native module")
        return
    if not so.name.endswith(".abi3.so"):
        report.add("abi3", "fail", f"{so.name} has no .abi3 tag (must be <name>.abi3.so)")
    try:
        from kernel_abi_check import ObjectFile

        obj = ObjectFile(str(so))
        py_violations = obj.check_python_abi(PYTHON_ABI)
        ml_violations = obj.check_manylinux(MANYLINUX)
    except Exception as exc:
        report.add("abi3", "fail", f"kernel-abi-check cannot read {so.name}: {exc}")
        py_violations, ml_violations = [], None
    if py_violations:
        names = sorted({v.name for v in py_violations})
        report.add(
            "abi3",
            "fail",
            f"{len(names)} symbol(s) outside the Python {PYTHON_ABI} stable ABI: " + ", ".join(names[:8]),
        )
    report.add("abi3", "ok")
    if ml_violations:
        versions = sorted({f"{v.dep}_{v.version}" for v in ml_violations})
        detail = (
            f"{len(ml_violations)} symbol(s) newer than {MANYLINUX} ({', '.join(versions[:6])}"
            f"{', ...' if len(versions) > 6 else ''}), e.g. {sorted(v.name for v in ml_violations)[0]}"
        )
        report.add("manylinux", "dev" if dev_build else "fail", detail + ("" if dev_build else "; a local build needs --dev-build"))

    from .release_elf import ElfError, read_dynamic

    try:
        dyn = read_dynamic(so)
    except ElfError as exc:
        report.add("deps", "fail", str(exc))
        dyn = None
    if dyn is not None:
        bad = [n for n in dyn.needed if not dependency_allowed(n)]
        if bad:
            report.add(
                "deps",
                "fail",
                "links libraries outside torch and its CUDA libraries: " + ", ".join(bad),
            )
        report.add("deps", "ok")
        abs_paths = [p for p in dyn.rpath + dyn.runpath if not p.startswith("$ORIGIN")]
        if abs_paths:
            report.add(
                "manylinux",
                "dev" if dev_build else "fail",
                "RPATH/RUNPATH names absolute paths (not relocatable): " + ":".join(abs_paths),
            )
    report.add("manylinux", "ok")

    # -- ops (static)
    from .release_elf import schema_literals

    literals = schema_literals(so)
    for ep in ENDPOINTS.values():
        found = literals.get(ep.name, [])
        if not found:
            report.add("ops", "fail", f"no op schema for endpoint {ep.name} in {so.name}")
            continue
        normalized = {canonical_schema(s) for s in found}
        if canonical_schema(ep.op_schema) not in normalized:
            report.add(
                "ops",
                "fail",
                f"{ep.name}: schema {normalize_schema(found[0])} != contract {ep.op_schema}",
            )
    exported = _all_literal(vdir / "__init__.py") if (vdir / "__init__.py").is_file() else None
    if exported is not None:
        not_exported = [n for n in ENDPOINTS if n not in exported]
        if not_exported:
            report.add("ops", "fail", "__all__ does not export " + ", ".join(not_exported))
    report.add("ops", "ok")


# ---------------------------------------------------------------------------------
# import probe


def run_probe(variants_dir: Path, *, do_import: bool = True, timeout: int = PROBE_TIMEOUT_S) -> dict:
    """Run release_probe.py in a child interpreter: resolve the local torch's variant
    (as `kernels` does) and, with `do_import`, import it and report its ops/functions."""
    from static_fp8_mlp_registry.contract import ENDPOINTS

    probe = Path(__file__).with_name("release_probe.py")
    cmd = [sys.executable, str(probe), str(variants_dir)]
    if not do_import:
        cmd.append("--no-import")
    for ep in ENDPOINTS.values():
        cmd += ["--endpoint", ep.name, "--expect", f"{ep.name}={ep.op_schema}"]
    env = dict(os.environ)
    env.update(
        {
            "PYTHONDONTWRITEBYTECODE": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_USER_AGENT_ORIGIN": "static-fp8-mlp-validate",
        }
    )
    env.pop("LOCAL_KERNELS", None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"probe_error": f"import probe timed out after {timeout}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:]
        return {"probe_error": f"import probe exited {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def check_import(probe: dict, report: VariantReport) -> None:
    from static_fp8_mlp_registry.contract import ENDPOINTS, normalize_schema

    if "probe_error" in probe:
        report.add("import", "fail", probe["probe_error"])
        return
    if "import_error" in probe:
        last = probe["import_error"].strip().splitlines()[-1]
        report.add("import", "fail", f"import failed: {last}")
        report.notes.append(probe["import_error"])
        return
    ops = probe.get("ops", {})
    matches = probe.get("schema_match", {})
    functions = probe.get("functions", {})
    for ep in ENDPOINTS.values():
        schemas = ops.get(ep.name)
        if not schemas:
            report.add("import", "fail", f"op {probe.get('namespace')}::{ep.name} is not registered")
        elif not matches.get(ep.name):
            report.add(
                "import",
                "fail",
                f"registered {ep.name}{normalize_schema(schemas[0])} != contract {ep.op_schema}",
            )
        sig = functions.get(ep.name)
        if sig is None:
            report.add("import", "fail", f"module has no function {ep.name}")
        elif "error" in sig:
            report.add("import", "fail", f"{ep.name}: cannot read signature: {sig['error']}")
        else:
            pos = sig["positional"]
            if tuple(pos[: len(ep.params)]) != ep.params:
                report.add(
                    "import",
                    "fail",
                    f"{ep.name}({', '.join(pos)}) != contract ({', '.join(ep.params)})",
                )
            elif "out" not in pos[len(ep.params):] + sig["keyword_only"]:
                report.add("import", "fail", f"{ep.name} takes no out= keyword")
    report.add("import", "ok")


# ---------------------------------------------------------------------------------


def validate_build(
    build_dir: Path,
    *,
    build_toml: Path | None = None,
    variants: str = "required,present",
    dev_build: bool = False,
    import_check: bool = True,
) -> BuildReport:
    """Validate BUILD_DIR; raises CliError for usage problems, returns a report otherwise."""
    variants_dir = find_variants_dir(Path(build_dir))
    toml_path = build_toml or find_build_toml(variants_dir.parent if variants_dir.name == "build" else variants_dir)
    if toml_path is None:
        raise CliError("cannot find build.toml; pass --build-toml")
    try:
        spec = read_build_toml(Path(toml_path))
    except (OSError, KeyError, ValueError) as exc:
        raise CliError(f"cannot read {toml_path}: {exc}") from exc

    present = present_variants(variants_dir)
    wants_local = "local" in [t.strip() for t in variants.split(",")]
    if import_check or wants_local:
        probe = run_probe(variants_dir, do_import=import_check)
    else:  # static checks only, and nothing asks for the local torch: skip the child
        probe = {"skipped": True}
    if "probe_error" in probe:
        # The import itself crashed the child: learn the variant names without it, and
        # charge the crash to the variant that was being imported.
        crashed = probe
        probe = run_probe(variants_dir, do_import=False)
        if "probe_error" not in probe:
            probe["import_error"] = crashed["probe_error"]
            probe["imported_variant"] = local_variant_from_probe(probe)
    selected = select_variants(variants, present, probe)

    rows: list[VariantReport] = []
    for name in selected:
        rows.append(VariantReport(name=name, present=name in present, selected=True))
    for name in present:
        if name not in selected:
            rows.append(VariantReport(name=name, present=True, selected=False))
    report = BuildReport(build_dir=variants_dir, spec=spec, dev_build=dev_build, variants=rows, probe=probe)

    for row in rows:
        if row.selected and row.present:
            check_variant_static(variants_dir / row.name, spec, row, dev_build)

    local = local_variant_from_probe(probe)
    if "probe_error" in probe:
        report.messages.append(f"import check not run: {probe['probe_error']}")
    elif not probe.get("torch") and not probe.get("skipped"):
        report.messages.append(f"import check not run: torch not importable ({probe.get('torch_error')})")
    for row in rows:
        if not (row.selected and row.present):
            continue
        if import_check and local == row.name and probe.get("imported_variant") == row.name:
            check_import(probe, row)
        elif import_check and local == row.name and probe.get("torch"):
            # The local torch's variant is here, but kernels did not pick it (or could not
            # be asked): a caller's get_kernel would not load it either.
            trace = "; ".join(probe.get("trace") or []) or "no reason given"
            row.add("import", "fail", f"kernels does not resolve this variant for the local torch: {trace}")
        else:
            why = "not the local torch's variant" if import_check else "--no-import"
            row.add("import", "skip", why)
    if import_check and local is None and probe.get("torch"):
        report.messages.append(
            f"no variant in the build matches the local torch {probe.get('torch')} "
            f"({probe.get('local_variant')}); every variant was checked statically"
        )
    return report


def format_table(report: BuildReport) -> str:
    cols = ["VARIANT", "STATUS"] + [c.upper() for c in CHECKS]
    rows = []
    for v in report.variants:
        cells = [v.name, v.status]
        for c in CHECKS:
            check = v.checks.get(c)
            cells.append("-" if check is None or check.status == "skip" else check.status.upper() if check.status != "ok" else "ok")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [cols] + rows) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [cols] + rows]
    details = []
    for v in report.variants:
        for c in v.checks.values():
            if c.status in ("fail", "dev") and c.detail:
                tag = "DEV (accepted: --dev-build)" if c.status == "dev" else "FAIL"
                details.append(f"  {v.name} {c.name}: {tag}: {c.detail}")
        if v.status == "MISSING":
            details.append(f"  {v.name}: MISSING: selected variant not in {report.build_dir}")
        for n in v.notes:
            if "\n" not in n:
                details.append(f"  {v.name}: note: {n}")
    for m in report.messages:
        details.append(f"  note: {m}")
    out = "\n".join(lines)
    if details:
        out += "\n\n" + "\n".join(details)
    verdict = (
        "FAILED" if not report.ok else "PASSED (development build: not for the Hub)" if report.is_dev else "PASSED"
    )
    n_sel = len(report.selected)
    return out + f"\n\nvalidate: {verdict} ({n_sel} variant{'s' if n_sel != 1 else ''} selected)"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "build_dir",
        metavar="BUILD_DIR",
        type=Path,
        help="directory holding the variant dirs (build/, a Nix result) or a project with build/",
    )
    parser.add_argument(
        "--variants",
        default="required,present",
        help="comma list of variant names and/or: required (kernel-builder's required set), "
        "present (all in BUILD_DIR), local (the local torch's variant). "
        "Selected variants must be present and pass; default: required,present",
    )
    parser.add_argument(
        "--dev-build",
        action="store_true",
        help="accept a local build that cannot be manylinux_2_28 (rows say DEV)",
    )
    parser.add_argument("--build-toml", type=Path, default=None, help="build.toml to check against (default: found next to BUILD_DIR)")
    parser.add_argument(
        "--no-import",
        action="store_true",
        help="skip importing the local torch's variant (static checks only)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")


def validate_and_print(args: argparse.Namespace):
    """Validate `args.build_dir` as the validate/publish flags say; print the table."""
    report = validate_build(
        args.build_dir,
        build_toml=args.build_toml,
        variants=args.variants,
        dev_build=args.dev_build,
        import_check=not args.no_import,
    )
    print(format_table(report))
    return report


def run(args: argparse.Namespace) -> int:
    report = validate_and_print(args)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.ok else 1
