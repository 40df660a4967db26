"""`build.toml` (kernel-builder edition 5) as the local build sees it.

The file is the single source of truth for the Nix build and for
`static-fp8-mlp build`. This module reads it strictly (unknown keys are errors,
as in kernel-builder's edition-5 parser), and turns capabilities into nvcc
`-gencode` flags. It has no dependency on torch or on a CUDA toolkit, so the
unit tests can exercise all of it on any machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CliError

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None  # type: ignore[assignment]

HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".cuh", ".inl", ".inc")
CXX_SUFFIXES = (".cpp", ".cc", ".cxx", ".c")
CUDA_SUFFIXES = (".cu",)

_NAME_RE = re.compile(r"^[a-z][-a-z0-9]*[a-z0-9]$")
_CAPABILITY_RE = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$")

# Keys kernel-builder's edition-5 schema accepts (serde `deny_unknown_fields`).
_TOP_KEYS = {"general", "torch", "torch-noarch", "tvm-ffi", "kernel"}
_GENERAL_KEYS = {
    "name", "version", "edition", "license", "upstream", "source", "backends",
    "cuda", "hub", "kernel-depends", "neuron", "python-depends", "tpu", "xpu",
}
_GENERAL_CUDA_KEYS = {"minver", "maxver", "kernel-depends", "python-depends"}
_HUB_KEYS = {"repo-id", "branch"}
_TORCH_KEYS = {"include", "minver", "maxver", "pyext", "src", "stable-abi", "cxx-flags"}
_KERNEL_KEYS = {
    "cuda": {
        "backend", "cuda-capabilities", "cuda-flags", "cuda-minver", "cxx-flags",
        "depends", "include", "src",
    },
    "cpu": {"backend", "cxx-flags", "depends", "include", "src"},
    "metal": {"backend", "cxx-flags", "depends", "include", "src"},
    "rocm": {"backend", "cxx-flags", "depends", "rocm-archs", "hip-flags", "include", "src"},
    "xpu": {"backend", "cxx-flags", "depends", "sycl-flags", "include", "src"},
}
_BACKENDS = {"cann", "cpu", "cuda", "metal", "neuron", "rocm", "tpu", "xpu"}
_DEPENDENCIES = {
    "torch", "cutlass_2_10", "cutlass_3_5", "cutlass_3_6", "cutlass_3_8", "cutlass_3_9",
    "cutlass_4_0", "cutlass_4_4", "cutlass_4_5", "sycl_tla", "metal-cpp",
}


# --------------------------------------------------------------------------- versions


def parse_version(text: str) -> tuple[int, ...]:
    """`"12.8"` -> `(12, 8)`; trailing zeros are dropped, as kernels-data normalises."""
    parts = str(text).strip().split(".")
    if not parts or any(not p.isdigit() for p in parts):
        raise ValueError(f"not a dotted numeric version: {text!r}")
    nums = [int(p) for p in parts]
    while len(nums) > 1 and nums[-1] == 0:
        nums.pop()
    return tuple(nums)


def version_at_least(have: tuple[int, ...], need: tuple[int, ...]) -> bool:
    width = max(len(have), len(need))
    pad = lambda v: tuple(v) + (0,) * (width - len(v))  # noqa: E731
    return pad(have) >= pad(need)


def format_version(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


# ----------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class Capability:
    """A CUDA capability as written in build.toml: `8.9`, `9.0a`, `10.0f`, `8.0+PTX`."""

    major: int
    minor: int
    suffix: str = ""  # "", "a" (arch-specific) or "f" (family)
    ptx: bool = False

    @staticmethod
    def parse(text: str) -> "Capability":
        m = _CAPABILITY_RE.fullmatch(text.strip())
        if not m:
            raise ValueError(
                f"invalid CUDA capability {text!r}: expected MAJOR.MINOR with an optional "
                "'a'/'f' suffix and optional '+PTX' (e.g. 8.9, 9.0a, 10.0a, 12.0)"
            )
        return Capability(int(m.group(1)), int(m.group(2)), m.group(3), bool(m.group(4)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}{self.suffix}{'+PTX' if self.ptx else ''}"

    @property
    def compute(self) -> str:
        """Virtual architecture: `compute_90a`."""
        return f"compute_{self.major}{self.minor}{self.suffix}"

    @property
    def sm(self) -> str:
        """Real architecture: `sm_90a`."""
        return f"sm_{self.major}{self.minor}{self.suffix}"

    @property
    def base_sm(self) -> str:
        """The plain SM the toolkit must know (`sm_90` for `9.0a`)."""
        return f"sm_{self.major}{self.minor}"

    @property
    def is_arch_specific(self) -> bool:
        return self.suffix in ("a", "f")

    def gencode_flags(self) -> list[str]:
        """nvcc flags: `9.0a` -> `-gencode=arch=compute_90a,code=sm_90a`.

        `+PTX` adds the PTX of the same virtual architecture, so newer devices can JIT it.
        """
        flags = [f"-gencode=arch={self.compute},code={self.sm}"]
        if self.ptx:
            flags.append(f"-gencode=arch={self.compute},code={self.compute}")
        return flags

    @property
    def sort_key(self) -> tuple:
        return (self.major, self.minor, self.suffix, self.ptx)


def gencode_flags(capability: str) -> list[str]:
    return Capability.parse(capability).gencode_flags()


# ------------------------------------------------------------------------ the config


@dataclass
class TorchSection:
    src: list[str]
    include: list[str] = field(default_factory=list)
    cxx_flags: list[str] = field(default_factory=list)
    pyext: list[str] = field(default_factory=list)
    minver: tuple[int, ...] | None = None
    maxver: tuple[int, ...] | None = None

    @property
    def data_extensions(self) -> list[str]:
        """Extra file extensions copied with the Python package (`py`/`pyi` are implied)."""
        return [e for e in self.pyext if e not in ("py", "pyi")]


@dataclass
class KernelSection:
    name: str
    backend: str
    src: list[str]
    depends: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    cuda_flags: list[str] = field(default_factory=list)
    cxx_flags: list[str] = field(default_factory=list)
    cuda_minver: tuple[int, ...] | None = None

    @property
    def compiled_sources(self) -> list[str]:
        return [s for s in self.src if s.endswith(CUDA_SUFFIXES + CXX_SUFFIXES)]

    @property
    def header_sources(self) -> list[str]:
        return [s for s in self.src if not s.endswith(CUDA_SUFFIXES + CXX_SUFFIXES)]


@dataclass
class BuildConfig:
    project_dir: Path
    name: str
    version: int
    edition: int
    license: str
    backends: list[str]
    repo_id: str | None
    hub_branch: str | None
    python_depends: list[str]
    cuda_python_depends: list[str]
    kernel_depends: list[Any]
    cuda_minver: tuple[int, ...] | None
    cuda_maxver: tuple[int, ...] | None
    torch: TorchSection
    kernels: list[KernelSection]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def package_dir(self) -> Path:
        return self.project_dir / "torch-ext" / self.python_name

    def cuda_kernels(self) -> list[KernelSection]:
        return [k for k in self.kernels if k.backend == "cuda"]

    def all_capabilities(self) -> list[str]:
        seen: dict[str, None] = {}
        for k in self.cuda_kernels():
            for c in k.capabilities:
                seen.setdefault(c, None)
        return list(seen)


def _fail(path: Path, msg: str) -> CliError:
    return CliError(f"{path}: {msg}")


def _str_list(path: Path, where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, f"`{where}` must be a list of strings")
    return list(value)


def _check_keys(path: Path, where: str, table: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(path, f"`{where}` must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(
            path,
            f"unknown key(s) {', '.join(repr(u) for u in unknown)} in `{where}` "
            "(kernel-builder edition 5 rejects unknown keys)",
        )
    return table


def _version(path: Path, where: str, value: Any) -> tuple[int, ...]:
    try:
        return parse_version(value)
    except (ValueError, AttributeError):
        raise _fail(path, f"`{where}` must be a version string like \"12.8\", got {value!r}") from None


def load_toml(path: Path) -> dict[str, Any]:
    if _toml is None:  # pragma: no cover
        raise CliError("reading build.toml needs Python >= 3.11 (tomllib) or the `tomli` package")
    try:
        with open(path, "rb") as f:
            return _toml.load(f)
    except FileNotFoundError:
        raise CliError(f"{path} not found: pass --project DIR pointing at the kernel project") from None
    except _toml.TOMLDecodeError as exc:
        raise CliError(f"{path}: invalid TOML: {exc}") from None


def parse_build_toml(data: dict[str, Any], project_dir: Path, path: Path | None = None) -> BuildConfig:
    """Validate a parsed build.toml (edition 5) and return the local build's view of it."""
    path = path or project_dir / "build.toml"
    _check_keys(path, "<top level>", data, _TOP_KEYS)

    general = _check_keys(path, "general", data.get("general"), _GENERAL_KEYS)
    for key in ("name", "version", "edition", "license", "backends"):
        if key not in general:
            raise _fail(path, f"`general.{key}` is required")
    name = general["name"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise _fail(path, f"`general.name` {name!r} must match ^[a-z][-a-z0-9]*[a-z0-9]$")
    version = general["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise _fail(path, "`general.version` must be a non-negative integer (the major version)")
    if general["edition"] != 5:
        raise _fail(path, f"`general.edition` must be 5, got {general['edition']!r}")
    license_ = general["license"]
    if not isinstance(license_, str) or not license_:
        raise _fail(path, "`general.license` must be a non-empty string")
    backends = _str_list(path, "general.backends", general["backends"])
    for b in backends:
        if b not in _BACKENDS:
            raise _fail(path, f"unknown backend {b!r} in `general.backends`")

    hub = _check_keys(path, "general.hub", general.get("hub", {}), _HUB_KEYS)
    cuda_general = _check_keys(path, "general.cuda", general.get("cuda", {}), _GENERAL_CUDA_KEYS)
    python_depends = _str_list(path, "general.python-depends", general.get("python-depends", []))
    cuda_python_depends = _str_list(
        path, "general.cuda.python-depends", cuda_general.get("python-depends", [])
    )
    kernel_depends = list(general.get("kernel-depends", [])) + list(
        cuda_general.get("kernel-depends", [])
    )

    frameworks = [k for k in ("torch", "torch-noarch", "tvm-ffi") if k in data]
    if frameworks != ["torch"]:
        raise _fail(
            path,
            "the local build supports exactly one framework section, [torch] "
            f"(found: {', '.join(frameworks) or 'none'})",
        )
    torch_t = _check_keys(path, "torch", data["torch"], _TORCH_KEYS)
    torch = TorchSection(
        src=_str_list(path, "torch.src", torch_t.get("src", [])),
        include=_str_list(path, "torch.include", torch_t.get("include", [])),
        cxx_flags=_str_list(path, "torch.cxx-flags", torch_t.get("cxx-flags", [])),
        pyext=_str_list(path, "torch.pyext", torch_t.get("pyext", [])),
        minver=_version(path, "torch.minver", torch_t["minver"]) if "minver" in torch_t else None,
        maxver=_version(path, "torch.maxver", torch_t["maxver"]) if "maxver" in torch_t else None,
    )
    if "stable-abi" in torch_t:
        raise _fail(path, "`torch.stable-abi` is not supported by the local build (use the Nix build)")

    kernels_t = data.get("kernel", {})
    if not isinstance(kernels_t, dict):
        raise _fail(path, "`kernel` must be a table of [kernel.<name>] sections")
    kernels: list[KernelSection] = []
    for kname, kt in kernels_t.items():
        where = f"kernel.{kname}"
        if not isinstance(kt, dict):
            raise _fail(path, f"`{where}` must be a table")
        backend = kt.get("backend")
        if backend not in _KERNEL_KEYS:
            raise _fail(path, f"`{where}.backend` must be one of {sorted(_KERNEL_KEYS)}, got {backend!r}")
        _check_keys(path, where, kt, _KERNEL_KEYS[backend])
        for key in ("depends", "src"):
            if key not in kt:
                raise _fail(path, f"`{where}.{key}` is required")
        depends = _str_list(path, f"{where}.depends", kt["depends"])
        for d in depends:
            if d not in _DEPENDENCIES:
                raise _fail(path, f"unknown dependency {d!r} in `{where}.depends`")
        caps = _str_list(path, f"{where}.cuda-capabilities", kt.get("cuda-capabilities", []))
        for c in caps:
            try:
                Capability.parse(c)
            except ValueError as exc:
                raise _fail(path, f"`{where}.cuda-capabilities`: {exc}") from None
        kernels.append(
            KernelSection(
                name=kname,
                backend=backend,
                src=_str_list(path, f"{where}.src", kt["src"]),
                depends=depends,
                include=_str_list(path, f"{where}.include", kt.get("include", [])),
                capabilities=caps,
                cuda_flags=_str_list(path, f"{where}.cuda-flags", kt.get("cuda-flags", [])),
                cxx_flags=_str_list(path, f"{where}.cxx-flags", kt.get("cxx-flags", [])),
                cuda_minver=(
                    _version(path, f"{where}.cuda-minver", kt["cuda-minver"])
                    if "cuda-minver" in kt
                    else None
                ),
            )
        )

    return BuildConfig(
        project_dir=project_dir,
        name=name,
        version=version,
        edition=5,
        license=license_,
        backends=backends,
        repo_id=hub.get("repo-id"),
        hub_branch=hub.get("branch"),
        python_depends=python_depends,
        cuda_python_depends=cuda_python_depends,
        kernel_depends=kernel_depends,
        cuda_minver=(
            _version(path, "general.cuda.minver", cuda_general["minver"])
            if "minver" in cuda_general
            else None
        ),
        cuda_maxver=(
            _version(path, "general.cuda.maxver", cuda_general["maxver"])
            if "maxver" in cuda_general
            else None
        ),
        torch=torch,
        kernels=kernels,
        raw=data,
    )


def read_build_config(project_dir: Path) -> BuildConfig:
    project_dir = Path(project_dir).resolve()
    path = project_dir / "build.toml"
    return parse_build_toml(load_toml(path), project_dir, path)


# ------------------------------------------------------------------ section selection


@dataclass
class SectionPlan:
    """What the local build does with one `[kernel.<name>]` section."""

    kernel: KernelSection
    capabilities: list[Capability]  # what gets compiled (empty when skipped)
    skipped_reason: str | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (capability, why)

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None


def plan_sections(
    config: BuildConfig,
    cuda_version: tuple[int, ...],
    supported_sms: set[str] | None,
    requested: list[str] | None = None,
) -> list[SectionPlan]:
    """Decide per CUDA section which capabilities to compile.

    - A section whose `cuda-minver` is above `cuda_version` is skipped (as kernel-builder's
      `cuda_kernel_component` does).
    - Capabilities whose SM the toolkit does not know (`supported_sms`, from
      `nvcc --list-gpu-code`; None = no filtering) are dropped; a section left with none
      is an error, as in kernel-builder ("empty set of capabilities after intersection").
    - `requested` (from `--archs`) restricts the build to those capabilities; sections with
      none of them are skipped.
    """
    requested_set = None
    if requested:
        requested_set = {str(Capability.parse(r)) for r in requested}
        known = {str(Capability.parse(c)) for k in config.cuda_kernels() for c in k.capabilities}
        unknown = sorted(requested_set - known)
        if unknown:
            raise CliError(
                f"--archs {','.join(unknown)}: not a capability of any [kernel.*] section "
                f"(build.toml has {', '.join(sorted(known)) or 'none'})"
            )

    plans: list[SectionPlan] = []
    for k in config.cuda_kernels():
        if k.cuda_minver is not None and not version_at_least(cuda_version, k.cuda_minver):
            plans.append(
                SectionPlan(
                    k,
                    [],
                    f"cuda-minver {format_version(k.cuda_minver)} > CUDA "
                    f"{format_version(cuda_version)}",
                )
            )
            continue
        if not k.capabilities:
            raise CliError(
                f"[kernel.{k.name}] has no cuda-capabilities; the local build needs them "
                "explicitly (the Nix build would use its default list)"
            )
        caps: list[Capability] = []
        dropped: list[tuple[str, str]] = []
        for text in k.capabilities:
            cap = Capability.parse(text)
            if requested_set is not None and str(cap) not in requested_set:
                dropped.append((str(cap), "not in --archs"))
                continue
            if supported_sms is not None and cap.base_sm not in supported_sms:
                dropped.append((str(cap), f"nvcc {format_version(cuda_version)} has no {cap.base_sm}"))
                continue
            if cap not in caps:
                caps.append(cap)
        if not caps:
            if requested_set is not None and all(why == "not in --archs" for _, why in dropped):
                plans.append(SectionPlan(k, [], "none of its capabilities requested by --archs", dropped))
                continue
            raise CliError(
                f"[kernel.{k.name}]: no capability of {k.capabilities} can be built with CUDA "
                f"{format_version(cuda_version)}; guard the section with cuda-minver"
            )
        plans.append(SectionPlan(k, caps, None, dropped))
    return plans


def compiled_archs(plans: list[SectionPlan]) -> list[str]:
    """metadata.json `backend.archs`: sorted (as strings, like kernel-builder) union."""
    return sorted({str(c) for p in plans for c in p.capabilities})
