"""Resolve kernel specs to loaded kernel modules, through the `kernels` library.

Two phases per spec:

1. *Locate*: the same resolvers `kernels.get_kernel` uses (LOCAL_KERNELS overrides,
   then the Hub, or the Hub cache when HF_HUB_OFFLINE=1; `get_local_kernel`'s for a
   `path` spec) find the build variant, run kernels' metadata validators (python
   dependencies, minimum kernels version, device architecture) and download it if
   needed, *without importing it*. That yields the variant directory, its
   `metadata.json` and its op namespace.
2. *Load*: unless this very artifact is already loaded in the process, the public
   `kernels.get_kernel(...)` / `kernels.get_local_kernel(...)` (keyword arguments only;
   the Hub revision pinned to the commit phase 1 found) imports it.

Resolutions are cached per (repo, version/revision, trust_remote_code) or per real
path. Artifacts are de-duplicated per process by real variant path, `metadata.id` and
op namespace: a second spec that leads to the same build (two repo ids in
LOCAL_KERNELS, a `path` spec and a Hub cache holding the same build, two mirrors of
one repo) reuses the module already imported instead of registering the op namespace
a second time. Failures become `KernelResolutionError` subclasses whose message says
what to do.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import platform
import re
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import KernelSpec, parse_kernel_spec
from .errors import (
    ArchitectureNotSupportedError,
    DuplicateArtifactError,
    KernelImportError,
    KernelResolutionError,
    LocalArtifactError,
    NetworkUnreachableError,
    NoBuildVariantError,
    NotInCacheError,
    RegistryError,
    RepoNotFoundError,
    RevisionNotFoundError,
    UntrustedPublisherError,
    VersionNotFoundError,
)
from .kernels_api import internal, loaded_kernels, metadata_validator

logger = logging.getLogger(__name__)

_OPS_RE = re.compile(r"torch\.ops\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class ResolvedKernel:
    """A spec resolved to a loaded build."""

    spec: KernelSpec
    source: str
    """'hub' (downloaded or cached, online), 'hub-cache' (HF_HUB_OFFLINE=1),
    'local-override' (LOCAL_KERNELS) or 'path' (a local build)."""
    repo_id: str | None
    requested: str
    """What the spec asked for: 'v1', a revision, or the path."""
    revision: str | None
    """The commit the Hub build came from, when known."""
    variant: str
    variant_path: Path
    kernel_id: str
    """`metadata.id`: unique per build; also the module's `sys.modules` name."""
    name: str
    kernel_version: int | None
    backend: str
    archs: tuple[str, ...]
    ops_namespace: str | None
    module: ModuleType = field(repr=False, compare=False)
    shared_with: str | None = None
    """Set when this spec led to an artifact that was already loaded (how)."""

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec.describe(),
            "source": self.source,
            "repo_id": self.repo_id,
            "requested": self.requested,
            "revision": self.revision,
            "variant": self.variant,
            "variant_path": str(self.variant_path),
            "kernel_id": self.kernel_id,
            "name": self.name,
            "kernel_version": self.kernel_version,
            "backend": self.backend,
            "archs": list(self.archs),
            "ops_namespace": self.ops_namespace,
            "shared_with": self.shared_with,
        }

    def short(self) -> str:
        where = self.repo_id or str(self.variant_path)
        rev = f"@{self.revision[:12]}" if self.revision else (f"@{self.requested}" if self.repo_id else "")
        return f"{where}{rev} [{self.variant}]"


@dataclass
class _Artifact:
    real_path: str
    kernel_id: str
    ops_namespace: str | None
    module: ModuleType
    origin: str
    fingerprint: str | None = None


_LOCK = threading.RLock()
_SPEC_CACHE: dict[tuple, ResolvedKernel] = {}
_ARTIFACTS: list[_Artifact] = []


def clear_resolution_cache() -> None:
    """Forget resolved specs (loaded artifacts stay loaded and are still reused)."""
    with _LOCK:
        _SPEC_CACHE.clear()


def loaded_artifacts() -> list[dict[str, Any]]:
    with _LOCK:
        return [
            {"path": a.real_path, "kernel_id": a.kernel_id, "ops_namespace": a.ops_namespace, "origin": a.origin}
            for a in _ARTIFACTS
        ]


def resolve_kernel(spec: KernelSpec | str | Any, *, check_arch: bool = True) -> ResolvedKernel:
    """Resolve and load one kernel spec (a `KernelSpec`, repo id string or mapping).

    Raises a `KernelResolutionError` subclass on failure.
    """
    if not isinstance(spec, KernelSpec):
        spec = parse_kernel_spec(spec)
    # The environment that steers kernels' resolvers is part of the key.
    key = (
        *spec.cache_key(),
        bool(check_arch),
        os.environ.get("LOCAL_KERNELS"),
        _hub_offline(),
        os.environ.get("KERNELS_CACHE"),
    )
    with _LOCK:
        cached = _SPEC_CACHE.get(key)
        if cached is not None:
            return cached
        try:
            resolved = _resolve_uncached(spec, check_arch=check_arch)
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into a clear message
            raise _classify(exc, spec) from exc
        _SPEC_CACHE[key] = resolved
        return resolved


def resolved_from_module(module: ModuleType, spec: KernelSpec | None = None) -> ResolvedKernel:
    """Wrap a kernel module that is already imported (e.g. by a test loader on a machine
    without `kernels`) as a `ResolvedKernel`, and register it so that later specs
    leading to the same build reuse it instead of importing a second copy."""
    import json

    mod_file = getattr(module, "__file__", None)
    vdir = Path(os.path.realpath(os.path.dirname(mod_file))) if mod_file else None
    meta: dict[str, Any] = {}
    if vdir is not None and (vdir / "metadata.json").is_file():
        try:
            meta = json.loads((vdir / "metadata.json").read_text())
        except (OSError, ValueError):
            meta = {}
    ns = ops_namespace_of(vdir) if vdir is not None else None
    kernel_id = meta.get("id") or module.__name__
    backend = meta.get("backend") or {}
    if spec is None:
        spec = KernelSpec(path=str(vdir) if vdir is not None else module.__name__)
    with _LOCK:
        if vdir is not None and not any(a.real_path == str(vdir) for a in _ARTIFACTS):
            _register(str(vdir), kernel_id, ns, module, origin=f"module {module.__name__}")
    return ResolvedKernel(
        spec=spec,
        source="module",
        repo_id=spec.repo_id,
        requested=module.__name__,
        revision=None,
        variant=vdir.name if vdir is not None else "?",
        variant_path=vdir if vdir is not None else Path("."),
        kernel_id=kernel_id,
        name=str(meta.get("name", module.__name__)),
        kernel_version=meta.get("version"),
        backend=str(backend.get("type", "?")),
        archs=tuple(backend.get("archs") or ()),
        ops_namespace=ns,
        module=module,
    )


# ---------------------------------------------------------------------------- phases


@dataclass
class _Location:
    source: str
    variant_path: Path
    metadata: Any
    revision: str | None
    load_path: Path | None = None  # for 'path' specs: what to hand to get_local_kernel


def _resolve_uncached(spec: KernelSpec, *, check_arch: bool) -> ResolvedKernel:
    loc = _locate(spec, check_arch=check_arch)
    metadata = loc.metadata
    real = os.path.realpath(loc.variant_path)
    ns = ops_namespace_of(Path(real))
    kernel_id = metadata.id

    module, shared = _find_loaded(real, kernel_id, ns)
    if module is None:
        module = _load(spec, loc, check_arch=check_arch)
        mod_file = getattr(module, "__file__", None)
        mod_dir = os.path.realpath(os.path.dirname(mod_file)) if mod_file else None
        if mod_dir is not None and not (mod_dir == real or mod_dir.startswith(real + os.sep)):
            raise KernelImportError(
                f"kernels loaded {spec.describe()} from {mod_file}, but resolution found the build at "
                f"{real}; refusing to use a module whose origin is unclear (check LOCAL_KERNELS and caches)",
                spec=spec.describe(),
            )
        _register(real, kernel_id, ns, module, origin=spec.describe())
    else:
        logger.info("static-fp8-mlp: %s resolves to an already loaded build (%s); reusing it", spec.describe(), shared)

    backend = metadata.backend
    return ResolvedKernel(
        spec=spec,
        source=loc.source,
        repo_id=spec.repo_id,
        requested=(
            str(spec.path) if spec.path is not None
            else (f"v{spec.version}" if spec.revision is None else spec.revision)
        ),
        revision=loc.revision,
        variant=Path(real).name,
        variant_path=Path(real),
        kernel_id=kernel_id,
        name=str(metadata.name),
        kernel_version=metadata.version,
        backend=str(backend.backend_type).lower(),
        archs=tuple(backend.archs or ()),
        ops_namespace=ns,
        module=module,
        shared_with=shared,
    )


def _kernels_api():
    """The pieces of `kernels` that get_kernel itself is made of (kernels_api: 0.17.2 to
    0.19.x keep them in different private modules)."""
    from kernels._rust import KernelDependency, KernelVersion

    resolver = internal("resolver")
    return {
        "KernelDependency": KernelDependency,
        "KernelVersion": KernelVersion,
        "resolve_kernel_tree": internal("deps").resolve_kernel_tree,
        "get_hf_api": internal("hf_hub")._get_hf_api,
        "local_overrides": internal("load")._get_local_kernel_overrides,
        "HubCacheResolver": resolver.HubCacheResolver,
        "HubResolver": resolver.HubResolver,
        "resolve_local_kernel": resolver.resolve_local_kernel,
        "LocalKernel": resolver.LocalKernel,
    }


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class _Recording:
    """Wraps a kernels resolver and remembers which one answered for the root kernel."""

    def __init__(self, name: str, inner, root, sink: dict):
        self.name, self.inner, self.root, self.sink = name, inner, root, sink

    def resolve(self, *, api, backend, kernel):
        loc = self.inner.resolve(api=api, backend=backend, kernel=kernel)
        if loc is not None and kernel == self.root and "source" not in self.sink:
            self.sink["source"] = self.name
        return loc


class _Sequential:
    def __init__(self, resolvers):
        self.resolvers = resolvers

    def resolve(self, *, api, backend, kernel):
        for r in self.resolvers:
            loc = r.resolve(api=api, backend=backend, kernel=kernel)
            if loc is not None:
                return loc
        return None


def _locate(spec: KernelSpec, *, check_arch: bool) -> _Location:
    k = _kernels_api()

    if spec.path is not None:
        p = Path(os.path.expanduser(spec.path)).resolve()
        if not p.exists():
            raise LocalArtifactError(
                f"local kernel path {spec.path!r} does not exist; point 'path' at a kernel project, "
                "its build/ directory or one build variant directory",
                spec=spec.describe(),
            )
        loc = k["resolve_local_kernel"](p, backend=None)
        metadata_validator(check_arch=check_arch).validate_metadata(metadata=loc.metadata, variant=loc.variant_str)
        return _Location("path", Path(loc.variant_path), loc.metadata, None, load_path=p)

    version = (
        k["KernelVersion"].Version(spec.version)
        if spec.revision is None
        else k["KernelVersion"].Revision(spec.revision)
    )
    root = k["KernelDependency"](repo_id=spec.repo_id, version=version)
    offline = _hub_offline()
    sink: dict = {}
    hub = (
        k["HubCacheResolver"](trust_remote_code=spec.trust_remote_code)
        if offline
        else k["HubResolver"](trust_remote_code=spec.trust_remote_code)
    )
    resolver = _Sequential(
        [
            _Recording("local-override", k["local_overrides"](), root, sink),
            _Recording("hub-cache" if offline else "hub", hub, root, sink),
        ]
    )
    api = k["get_hf_api"]()
    tree = k["resolve_kernel_tree"](api=api, backend=None, kernel=root, resolver=resolver)
    tree.validate_metadata(metadata_validator(check_arch=check_arch))
    installed = tree.install(api=api)
    location = installed.location
    assert isinstance(location, k["LocalKernel"])
    revision = None
    if location.origin is not None:
        revision = str(location.origin.revision)  # a str up to kernels 0.17, an Oid after
    else:
        parts = Path(location.variant_path).parts
        if len(parts) >= 4 and parts[-4] == "snapshots":
            revision = parts[-3]
    source = sink.get("source", "hub")
    if source == "local-override":
        revision = None
    return _Location(source, Path(location.variant_path), location.metadata, revision)


def _load(spec: KernelSpec, loc: _Location, *, check_arch: bool) -> ModuleType:
    import kernels

    try:
        if loc.source == "path":
            # kernels >= 0.19 checks the architecture of a local build too (check_arch)
            if "check_arch" in inspect.signature(kernels.get_local_kernel).parameters:
                return kernels.get_local_kernel(repo_path=loc.load_path, check_arch=check_arch)
            return kernels.get_local_kernel(repo_path=loc.load_path)
        if loc.source in ("hub", "hub-cache") and loc.revision is not None:
            # Pin what phase 1 found, so a branch that moves in between cannot change it.
            return kernels.get_kernel(
                repo_id=spec.repo_id,
                revision=loc.revision,
                trust_remote_code=spec.trust_remote_code,
                check_arch=check_arch,
            )
        return kernels.get_kernel(
            repo_id=spec.repo_id,
            version=spec.version,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            check_arch=check_arch,
        )
    except RegistryError:
        raise
    except Exception as exc:  # noqa: BLE001
        classified = _classify(exc, spec)
        if type(classified) is KernelResolutionError:
            raise KernelImportError(
                f"importing the kernel build at {loc.variant_path} ({spec.describe()}) failed: "
                f"{type(exc).__name__}: {exc}. The build may not match this torch/CUDA installation; "
                "check that its variant matches `python -c 'import torch; print(torch.__version__, torch.version.cuda)'`",
                spec=spec.describe(),
            ) from exc
        raise classified from exc


# ---------------------------------------------------------------------- de-duplication


def ops_namespace_of(variant_path: Path) -> str | None:
    """The `torch.ops.<namespace>` a build registers (from its generated `_ops.py`)."""
    ops_file = Path(variant_path) / "_ops.py"
    if not ops_file.is_file():
        return None
    try:
        m = _OPS_RE.search(ops_file.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return m.group(1) if m else None


def _fingerprint(path: str) -> str:
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(f.relative_to(root)).encode())
        h.update(b"\0")
        try:
            h.update(f.read_bytes())
        except OSError:
            pass
    return h.hexdigest()


def _namespace_registered(ns: str | None) -> bool:
    if not ns:
        return False
    import torch

    prefix = ns + "::"
    return any(s.name.startswith(prefix) for s in torch._C._jit_get_all_schemas())


def _register(real: str, kernel_id: str, ns: str | None, module: ModuleType, origin: str) -> _Artifact:
    art = _Artifact(real, kernel_id, ns, module, origin)
    _ARTIFACTS.append(art)
    return art


def _same_build_warning(real: str, art_path: str, kernel_id: str) -> None:
    try:
        a, b = _fingerprint(real), _fingerprint(art_path)
    except Exception:  # noqa: BLE001
        return
    if a != b:
        warnings.warn(
            f"static-fp8-mlp: the build at {real} has the same id/op namespace ({kernel_id}) as the one "
            f"already loaded from {art_path} but different files; using the loaded one (an op namespace "
            "can be registered only once per process). Restart the process to switch builds.",
            RuntimeWarning,
            stacklevel=4,
        )


def _find_loaded(real: str, kernel_id: str, ns: str | None) -> tuple[ModuleType | None, str | None]:
    """An already-imported module for this artifact, and how it was found."""
    for art in _ARTIFACTS:
        if art.real_path == real:
            return art.module, f"same build directory, first loaded for {art.origin}"
    for art in _ARTIFACTS:
        if art.kernel_id == kernel_id or (ns is not None and art.ops_namespace == ns):
            _same_build_warning(real, art.real_path, kernel_id)
            return art.module, f"same build id {kernel_id}, loaded from {art.real_path} for {art.origin}"

    # Loaded by someone else through kernels (get_kernel / get_local_kernel)?
    try:
        for path, lk in list(loaded_kernels().items()):
            p = os.path.realpath(path)
            lk_ns = ops_namespace_of(Path(p))
            if p == real or lk.metadata.id == kernel_id or (ns is not None and lk_ns == ns):
                if p != real:
                    _same_build_warning(real, p, kernel_id)
                _register(p, lk.metadata.id, lk_ns, lk.module, origin=f"kernels ({p})")
                return lk.module, f"already loaded by kernels from {p}"
    except ImportError:  # pragma: no cover - a kernels release kernels_api does not know
        logger.warning("static_fp8_mlp_registry: cannot see which builds kernels has loaded; "
                       "a build loaded both through kernels and the registry may register its ops twice")

    mod = sys.modules.get(kernel_id)
    if mod is not None:
        mod_file = getattr(mod, "__file__", None) or "?"
        _register(os.path.realpath(os.path.dirname(mod_file)), kernel_id, ns, mod, origin="sys.modules")
        return mod, f"already imported as sys.modules[{kernel_id!r}] from {mod_file}"

    # Imported directly (not through kernels), e.g. by a test loader, under another name?
    registered = _namespace_registered(ns)
    for mod_name, mod in list(sys.modules.items()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        mod_file = d.get("__file__")
        if not isinstance(mod_file, str) or os.path.basename(mod_file) != "__init__.py":
            continue
        mod_dir = os.path.realpath(os.path.dirname(mod_file))
        same_dir = mod_dir == real
        mod_ops = d.get("ops")
        same_ns = registered and ns is not None and getattr(mod_ops, "name", None) == ns
        if same_dir or same_ns:
            if not same_dir:
                _same_build_warning(real, mod_dir, kernel_id)
            _register(mod_dir, kernel_id, ns, mod, origin=f"sys.modules[{mod_name!r}]")
            return mod, f"already imported as sys.modules[{mod_name!r}] from {mod_dir}"

    if registered:
        raise DuplicateArtifactError(
            f"the op namespace torch.ops.{ns} of the build at {real} is already registered in this "
            "process by a module the registry cannot find; loading a second copy would register it "
            "twice. Load the kernel only through static_fp8_mlp_registry (or kernels.get_kernel) in "
            "this process, or restart it."
        )
    return None, None


# ------------------------------------------------------------------- error messages


def _environment() -> str:
    try:
        import torch

        tv = torch.__version__.split("+")[0]
        cuda = torch.version.cuda or "none"
    except Exception:  # noqa: BLE001
        tv, cuda = "?", "?"
    return f"torch {tv}, CUDA {cuda}, {platform.machine()}-{platform.system().lower()}"


def expected_variant() -> str:
    """The variant name this environment loads (CUDA torch builds)."""
    try:
        import torch

        major, minor = torch.__version__.split("+")[0].split(".")[:2]
        abi = "cxx11" if torch.compiled_with_cxx11_abi() else "cxx98"
        cuda = torch.version.cuda
        backend = f"cu{''.join(cuda.split('.')[:2])}" if cuda else "cpu"
    except Exception:  # noqa: BLE001
        return "?"
    return f"torch{major}{minor}-{abi}-{backend}-{platform.machine()}-{platform.system().lower()}"


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        out.append(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return out


_NETWORK_CLASS_NAMES = {
    "ConnectError", "NetworkError", "TimeoutException", "ConnectTimeout", "ReadTimeout", "OfflineModeIsEnabled",
}


def _is_network(e: BaseException) -> bool:
    """Connection-level failures (httpx or its vendored copies, sockets, offline mode)."""
    import socket

    if isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return any(c.__name__ in _NETWORK_CLASS_NAMES for c in type(e).__mro__)


def _available_versions(repo_id: str) -> list[int] | None:
    try:
        versions = internal("_versions")._get_available_versions
        return sorted(versions(repo_id, local_files_only=_hub_offline()))
    except Exception:  # noqa: BLE001
        return None


def _fmt_versions(versions: list[int] | None) -> str:
    if versions is None:
        return "the available versions could not be listed"
    if not versions:
        return "it has no version branches (v1, v2, ...) at all"
    return "available versions: " + ", ".join(str(v) for v in versions)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return os.environ.get("KERNELS_CACHE") or constants.HF_HUB_CACHE


def _classify(exc: BaseException, spec: KernelSpec) -> KernelResolutionError:
    if isinstance(exc, KernelResolutionError):
        return exc
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.errors import RevisionNotFoundError as HubRevisionNotFound

    what = spec.describe()
    repo = spec.repo_id
    msg = str(exc)
    chain = _chain(exc)
    endpoint = constants.ENDPOINT
    local_hint = (
        "or use a local build: LOCAL_KERNELS='{repo}=/path/to/build' or a {{'path': '/path/to/build'}} spec"
    ).format(repo=repo or "owner/name")

    if "Cannot find a build variant for this system" in msg:
        return NoBuildVariantError(
            f"{what} has no build variant for this system ({_environment()}; it needs "
            f"{expected_variant()} or a compatible one). Ask the publisher for such a build, or use a "
            f"torch/CUDA that one of the listed variants supports. kernels says:\n{msg}",
            spec=what,
        )
    if "does not support the current device" in msg:
        return ArchitectureNotSupportedError(
            f"{what}: the build does not cover this GPU. {msg.split('. The declared')[0]}. "
            "Models keep their unfused modules on this device; use a GPU the build covers, a build that "
            "covers this one, or check_arch=False only if you know the build runs here.",
            spec=what,
        )
    if "could not verify publisher trust status" in msg:
        if any(_is_network(e) for e in chain[1:]):
            return _network_error(what, endpoint, local_hint)
        if any(isinstance(e, RepositoryNotFoundError) for e in chain[1:]):
            owner = (repo or "").split("/")[0]
            return RepoNotFoundError(
                f"the publisher {owner!r} of kernel repo {repo!r} was not found on {endpoint} (check the "
                "owner part of the repo id).",
                spec=what,
            )
        return UntrustedPublisherError(
            f"could not verify whether the publisher of {repo!r} is trusted (the organization lookup "
            f"on {endpoint} failed: {chain[-1] if len(chain) > 1 else 'unknown reason'}). If you have "
            "reviewed the kernel, set trust_remote_code: true in its fusion_config entry.",
            spec=what,
        )
    if any(isinstance(e, GatedRepoError) for e in chain):
        return RepoNotFoundError(
            f"kernel repo {repo!r} is gated: accept its conditions on {endpoint}/{repo} and log in "
            "(`hf auth login`) before loading it.",
            spec=what,
        )
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return RepoNotFoundError(
            f"kernel repo {repo!r} was not found on {endpoint} (check the owner/name spelling; a "
            "private repo needs `hf auth login`; kernel repos have repo type 'kernel').",
            spec=what,
        )
    if any(isinstance(e, HubRevisionNotFound) for e in chain):
        return RevisionNotFoundError(
            f"revision {spec.revision!r} does not exist in kernel repo {repo!r}; "
            f"{_fmt_versions(_available_versions(repo))}. Use version=<N> for a major version branch "
            "or an existing branch, tag or commit.",
            spec=what,
        )
    m = re.search(r"Version (\d+) not found, available versions: ([\d, ]*)", msg)
    if m:
        avail = [int(v) for v in re.findall(r"\d+", m.group(2))]
        return VersionNotFoundError(
            f"kernel repo {repo!r} has no version {m.group(1)} (branch v{m.group(1)}); "
            f"{_fmt_versions(avail)}. Set 'version' to one of them, or pin a 'revision'.",
            spec=what,
            available=avail,
        )
    if "is not available in the local cache" in msg or "Cannot find a local snapshot" in msg:
        ref = f"v{spec.version}" if spec.revision is None else spec.revision
        return NotInCacheError(
            f"HF_HUB_OFFLINE=1 and {what} is not in the kernels cache at {_cache_dir()} (no refs/{ref} or "
            f"snapshot for kernels--{(repo or '').replace('/', '--')}). Warm the cache online with "
            f"huggingface_hub.snapshot_download({repo!r}, repo_type='kernel', revision={ref!r}), point "
            f"KERNELS_CACHE at a cache that has it, unset HF_HUB_OFFLINE, {local_hint}.",
            spec=what,
        )
    if "not from a trusted publisher" in msg:
        return UntrustedPublisherError(
            f"kernel repo {repo!r} is not from a trusted publisher, so kernels refuses to load its "
            "code. Review it, then set trust_remote_code: true in its fusion_config entry (or pass "
            "--trust-remote-code to `static-fp8-mlp resolve`).",
            spec=what,
        )
    if any(_is_network(e) for e in chain) or (
        any(isinstance(e, LocalEntryNotFoundError) for e in chain) and not _hub_offline()
    ):
        return _network_error(what, endpoint, local_hint)
    if "Invalid LOCAL_KERNELS entry" in msg:
        return LocalArtifactError(
            f"{msg}. LOCAL_KERNELS is 'owner/name=/path/to/build[:owner2/name2=/path2]'.", spec=what
        )
    if spec.path is not None and isinstance(exc, (FileNotFoundError, ValueError)):
        return LocalArtifactError(
            f"local kernel build {spec.path!r} is not usable: {msg}. 'path' must be a kernel project, its "
            "build/ directory or one variant directory holding metadata.json and __init__.py.",
            spec=what,
        )
    if "user-agent" in msg.lower() or "header value" in msg.lower():
        return KernelResolutionError(
            f"the HTTP client refused the request header while resolving {what}: {msg}. With "
            "HF_HUB_DISABLE_TELEMETRY/DISABLE_TELEMETRY/DO_NOT_TRACK set, kernels 0.17.2 builds an invalid "
            "User-Agent; set HF_HUB_USER_AGENT_ORIGIN=<anything> to avoid it.",
            spec=what,
        )
    if "requires kernels>=" in msg:
        return KernelResolutionError(f"{what}: {msg}", spec=what)
    if any(isinstance(e, HfHubHTTPError) for e in chain):
        return KernelResolutionError(
            f"the Hub ({endpoint}) refused a request while resolving {what}: {msg}", spec=what
        )
    return KernelResolutionError(f"could not resolve {what}: {type(exc).__name__}: {msg}", spec=what)


def _network_error(what: str, endpoint: str, local_hint: str) -> NetworkUnreachableError:
    return NetworkUnreachableError(
        f"could not reach the Hub at {endpoint} to resolve {what}. Check the network (or HF_ENDPOINT), "
        f"set HF_HUB_OFFLINE=1 to use the kernels cache at {_cache_dir()} (KERNELS_CACHE), {local_hint}.",
        spec=what,
    )
