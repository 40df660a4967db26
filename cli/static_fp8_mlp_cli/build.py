"""`static-fp8-mlp build`: compile build.toml with the local nvcc into build/<variant>/.

The result has kernel-builder's layout (the package's .py files flat, a generated
`_ops.py`, `_<module>_cuda_<rev>.abi3.so`, `metadata.json`), so `kernels` loads it with
`get_local_kernel` or `LOCAL_KERNELS`. This is a development build: published builds
come from `nix build .#bundle` (see docs/build.md).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .buildconfig import (
    CUDA_SUFFIXES,
    CXX_SUFFIXES,
    BuildConfig,
    Capability,
    SectionPlan,
    compiled_archs,
    format_version,
    plan_sections,
    read_build_config,
    version_at_least,
)
from .errors import CliError

HELP = "compile the kernel from build.toml with the local nvcc into build/<variant>/ (development build)"

OBJECTS_DIR = ".objects"
_EXT_TOKEN = b"TORCH_EXTENSION_NAME"
_SYSTEM_LIBS = {
    "libstdc++.so.6", "libgcc_s.so.1", "libc.so.6", "libm.so.6", "libdl.so.2",
    "libpthread.so.0", "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
}
_TORCH_LIBS = ["c10", "torch", "torch_cpu", "torch_cuda", "c10_cuda"]

Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        help="kernel project directory holding build.toml (default: the current directory if "
        "it has one, else this checkout's root)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: <project>/build)"
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=None, help="parallel compile jobs (default: number of CPUs)"
    )
    parser.add_argument(
        "--archs",
        default=None,
        help="comma-separated subset of the build.toml capabilities to compile, e.g. 9.0a,10.0a "
        "(default: all that the installed nvcc supports)",
    )
    parser.add_argument("--force", action="store_true", help="recompile and relink everything")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="print compiler commands and compiler warnings"
    )
    parser.add_argument(
        "--nvcc-threads",
        type=int,
        default=None,
        help="nvcc --threads per .cu file (default: spread --jobs over the .cu files)",
    )


def default_project_dir() -> Path:
    cwd = Path.cwd()
    if (cwd / "build.toml").exists():
        return cwd
    repo = Path(__file__).resolve().parents[2]
    if (repo / "build.toml").exists():
        return repo
    raise CliError("no build.toml in the current directory: pass --project DIR")


def run(args: argparse.Namespace) -> int:
    project = (args.project or default_project_dir()).resolve()
    archs = [a.strip() for a in args.archs.split(",") if a.strip()] if args.archs else None
    if args.jobs is not None and args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    build(
        project,
        out_dir=args.out.resolve() if args.out else None,
        jobs=args.jobs,
        archs=archs,
        force=args.force,
        verbose=args.verbose,
        nvcc_threads=args.nvcc_threads,
    )
    return 0


# ------------------------------------------------------------------------ helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def parse_depfile(text: str) -> list[str]:
    """Prerequisites of a make-style dependency file (as written by gcc/nvcc -MD -MF)."""
    text = text.replace("\\\r\n", " ").replace("\\\n", " ")
    paths: list[str] = []
    for line in text.splitlines():
        # Target part ends at the first ": " (paths on Linux contain no ": ").
        idx = line.find(": ")
        if idx < 0:
            if line.rstrip().endswith(":"):
                continue
            rest = line
        else:
            rest = line[idx + 2 :]
        cur = []
        i = 0
        while i < len(rest):
            ch = rest[i]
            if ch == "\\" and i + 1 < len(rest) and rest[i + 1] in " #\\":
                cur.append(rest[i + 1])
                i += 2
                continue
            if ch == "$" and i + 1 < len(rest) and rest[i + 1] == "$":
                cur.append("$")
                i += 2
                continue
            if ch.isspace():
                if cur:
                    paths.append("".join(cur))
                    cur = []
                i += 1
                continue
            cur.append(ch)
            i += 1
        if cur:
            paths.append("".join(cur))
    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(p, None)
    return list(seen)


@dataclass
class FileInfo:
    mtime_ns: int
    size: int
    sha: str
    mentions_ext: bool


class FileHasher:
    """Content hashes of sources and headers, memoised per build (thread-safe)."""

    def __init__(self) -> None:
        self._cache: dict[str, FileInfo] = {}
        self._lock = threading.Lock()

    def info(self, path: str) -> FileInfo:
        st = os.stat(path)
        with self._lock:
            cached = self._cache.get(path)
        if cached and cached.mtime_ns == st.st_mtime_ns and cached.size == st.st_size:
            return cached
        data = Path(path).read_bytes()
        info = FileInfo(st.st_mtime_ns, st.st_size, sha256_bytes(data), _EXT_TOKEN in data)
        with self._lock:
            self._cache[path] = info
        return info


# ------------------------------------------------------------------------ the plan


@dataclass
class CompileStep:
    section: str
    rel: str  # source path relative to the project
    kind: str  # "nvcc" or "cxx"
    cmd: list[str]
    obj: Path
    depfile: Path
    manifest: Path
    listed_deps: list[str]  # absolute paths of headers build.toml lists for the section
    key_full: str  # hash of the command line (and compiler)
    key_noext: str  # same with the op namespace elided
    label: str

    def key_for(self, mentions_ext: bool) -> str:
        return self.key_full if mentions_ext else self.key_noext


@dataclass
class BuildResult:
    variant: str
    variant_dir: Path
    ext_name: str
    archs: list[str]
    plans: list[SectionPlan]
    compiled: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    linked: bool = False
    written: bool = False
    elapsed_s: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return not self.compiled and not self.linked and not self.written


def _key(cmd: list[str], compiler_id: str, ext_name: str | None, elide: bool) -> str:
    filtered: list[str] = []
    skip = False
    for tok in cmd:
        if skip:
            skip = False
            continue
        if tok in ("--threads", "-t"):
            skip = True
            continue
        if tok.startswith("--threads="):
            continue
        if elide and ext_name and tok == f"-DTORCH_EXTENSION_NAME={ext_name}":
            tok = "-DTORCH_EXTENSION_NAME=<elided>"
        filtered.append(tok)
    return sha256_bytes(json.dumps({"cmd": filtered, "compiler": compiler_id}).encode())


def _obj_name(section: str, rel: str) -> str:
    return f"{section}/{rel.replace('/', '__')}.o"


# ---------------------------------------------------------------------- the build


def build(
    project_dir: Path,
    *,
    out_dir: Path | None = None,
    jobs: int | None = None,
    archs: list[str] | None = None,
    force: bool = False,
    verbose: bool = False,
    nvcc_threads: int | None = None,
    log: Log = _print,
) -> BuildResult:
    from . import nvcc as tc
    from . import variant as vr

    t0 = time.monotonic()
    project_dir = Path(project_dir).resolve()
    config = read_build_config(project_dir)
    if "cuda" not in config.backends:
        raise CliError(f"{project_dir / 'build.toml'}: the local build needs 'cuda' in general.backends")
    if not config.package_dir.joinpath("__init__.py").exists():
        raise CliError(f"{config.package_dir}/__init__.py is missing (the Python package of the kernel)")

    torch = tc.probe_torch()
    toolkit = tc.probe_toolkit()
    cxx = tc.find_host_compiler()
    torch_cuda = tc.cuda_version_tuple(torch.cuda)
    if toolkit.version[0] != torch_cuda[0]:
        raise CliError(
            f"nvcc is CUDA {format_version(toolkit.version)} but torch {torch.version} was built "
            f"with CUDA {torch.cuda}: the major versions must match (set CUDA_HOME)"
        )
    if config.torch.minver and not version_at_least(torch.base_version, config.torch.minver):
        raise CliError(f"torch {torch.version} is older than torch.minver {format_version(config.torch.minver)}")
    if config.torch.maxver and not version_at_least(config.torch.maxver, torch.base_version):
        raise CliError(f"torch {torch.version} is newer than torch.maxver {format_version(config.torch.maxver)}")
    if config.cuda_minver and not version_at_least(toolkit.version, config.cuda_minver):
        raise CliError(f"CUDA {format_version(toolkit.version)} is older than general.cuda.minver")

    variant = vr.variant_name(torch.version, torch.cuda, cxx11_abi=torch.cxx11_abi)
    git = vr.git_state(project_dir)
    if git is not None:
        rev = vr.rev_from_git(git.tree, git.dirty)
    else:
        rev = vr.random_identifier()
        log(f"note: {project_dir} is not a git checkout: random op namespace suffix {rev} "
            "(every build recompiles everything)")
    ext_name = vr.ops_name(config.python_name, rev)

    plans = plan_sections(config, toolkit.version, toolkit.supported_sms, archs)
    archs_built = compiled_archs(plans)
    if not archs_built:
        raise CliError("nothing to compile: every [kernel.*] section was skipped")

    out_dir = (out_dir or project_dir / "build").resolve()
    work = out_dir / OBJECTS_DIR / variant
    work.mkdir(parents=True, exist_ok=True)
    jobs = jobs or vr.default_jobs()

    log(f"static-fp8-mlp build: {config.name} v{config.version} -> {_rel(out_dir / variant)}")
    log(f"  torch {torch.version}, nvcc {toolkit.release} ({toolkit.nvcc}), {cxx.short_version}")
    log(f"  op namespace {ext_name}; {jobs} job(s)")
    for p in plans:
        if p.skipped:
            log(f"  [kernel.{p.kernel.name}] skipped: {p.skipped_reason}")
        else:
            extra = "".join(f"; {c} dropped ({why})" for c, why in p.dropped)
            log(f"  [kernel.{p.kernel.name}] {' '.join(str(c) for c in p.capabilities)}{extra}")

    lock_path = out_dir / OBJECTS_DIR / f"{variant}.lock"
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        result = _build_locked(
            config=config, torch=torch, toolkit=toolkit, cxx=cxx, plans=plans, archs=archs_built,
            variant=variant, ext_name=ext_name, git=git, out_dir=out_dir, work=work, jobs=jobs,
            force=force, verbose=verbose, nvcc_threads=nvcc_threads, log=log,
        )
    result.elapsed_s = time.monotonic() - t0
    where = _rel(result.variant_dir)
    if result.up_to_date:
        log(f"{where} is up to date (nothing to do, {result.elapsed_s:.1f}s)")
    else:
        log(
            f"built {where} in {result.elapsed_s:.1f}s: {len(result.compiled)} compiled, "
            f"{len(result.reused)} up to date, {'relinked' if result.linked else 'link up to date'}; "
            f"archs {', '.join(result.archs)}"
        )
    return result


def _rel(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _build_locked(
    *, config: BuildConfig, torch, toolkit, cxx, plans: list[SectionPlan], archs: list[str],
    variant: str, ext_name: str, git, out_dir: Path, work: Path, jobs: int, force: bool,
    verbose: bool, nvcc_threads: int | None, log: Log,
) -> BuildResult:
    from . import nvcc as tc
    from . import variant as vr

    project = config.project_dir
    result = BuildResult(variant=variant, variant_dir=out_dir / variant, ext_name=ext_name,
                         archs=archs, plans=plans)

    # Leftovers of interrupted builds.
    for stale in out_dir.glob(f".tmp-{variant}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out_dir.glob(f".old-{variant}-*"):
        shutil.rmtree(stale, ignore_errors=True)

    include_dir = work / "include"
    _write_if_changed(include_dir / "registration.h", vr.REGISTRATION_H.encode())

    defines = [
        "-DNDEBUG",
        "-DUSE_CUDA=1",
        "-DCUDA_KERNEL",
        f"-DTORCH_EXTENSION_NAME={ext_name}",
        "-DPy_LIMITED_API=0x03090000",
        f"-D_GLIBCXX_USE_CXX11_ABI={1 if torch.cxx11_abi else 0}",
    ]
    std = torch.cxx_std
    sys_includes: list[str] = []
    for d in torch.include_dirs + [torch.python_include]:
        sys_includes += ["-isystem", d]
    wheel_includes: list[str] = []
    for d in torch.wheel_cuda_include_dirs:
        wheel_includes += ["-isystem", d]
    cuda_includes_for_cxx: list[str] = []
    for d in toolkit.include_dirs + toolkit.system_include_dirs:
        cuda_includes_for_cxx += ["-isystem", d]
    # CUTLASS, like kernel-builder's dep-cutlass.cmake, is a global include directory.
    cutlass_deps = sorted({d for p in plans if not p.skipped for d in p.kernel.depends if d.startswith("cutlass_")})
    for dep in cutlass_deps:
        found = tc.find_cutlass(dep)
        wanted = tuple(int(x) for x in dep.split("_")[1:])
        note = "" if found.version[:2] == wanted[:2] else f" (build.toml asks for {'.'.join(map(str, wanted))})"
        log(f"  {dep}: CUTLASS {'.'.join(map(str, found.version))} from {found.origin}{note}")
        for d in found.include_dirs:
            sys_includes += ["-isystem", d]
    gnu_unique = ["-fno-gnu-unique"] if cxx.is_gcc else []
    ccbin = ["-ccbin", cxx.path] if os.environ.get("CXX") else []
    compiler_ids = {"nvcc": toolkit.version_text, "cxx": cxx.version_text}

    def incs(dirs: list[str]) -> list[str]:
        flags: list[str] = []
        for d in dirs:
            flags += ["-I", str((project / d).resolve())]
        return flags + ["-I", str(include_dir)]

    def nvcc_flags(cuda_flags: list[str]) -> list[str]:
        flags = list(cuda_flags)
        if toolkit.version < (12, 8):  # as kernel-builder: unsupported before CUDA 12.8
            flags = [f for f in flags if not f.startswith("-static-global-template-stub")]
        return flags

    n_cu = sum(
        1 for p in plans if not p.skipped for s in p.kernel.compiled_sources if s.endswith(CUDA_SUFFIXES)
    ) + sum(1 for s in config.torch.src if s.endswith(CUDA_SUFFIXES))
    threads = nvcc_threads if nvcc_threads is not None else max(1, jobs // max(1, n_cu))

    steps: list[CompileStep] = []

    def add_step(section: str, rel: str, kind: str, flags: list[str], listed: list[str],
                 caps: list[Capability] | None) -> None:
        src = project / rel
        if not src.exists():
            raise CliError(f"{rel} (listed in build.toml [{section}]) does not exist")
        name = _obj_name(section, rel)
        obj = work / "obj" / name
        dep = obj.with_suffix(".d")
        if kind == "nvcc":
            cmd = [str(toolkit.nvcc), *ccbin, "-c", rel, "-o", str(obj), "-MD", "-MF", str(dep),
                   "-O3", f"-std={std}", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC"]
            for g in gnu_unique:
                cmd += ["-Xcompiler", g]
            cmd += ["-DENABLE_FP8", *defines, *flags, *sys_includes, *wheel_includes]
            for c in caps or []:
                cmd += c.gencode_flags()
            if threads > 1 and len(caps or []) > 1:
                cmd += ["--threads", str(threads)]
            label = f"nvcc {rel} [{' '.join(str(c) for c in caps or [])}]"
        else:
            cmd = [cxx.path, "-c", rel, "-o", str(obj), "-MD", "-MF", str(dep), "-O3", f"-std={std}",
                   "-fPIC", *gnu_unique, *defines, *flags, *sys_includes, *cuda_includes_for_cxx,
                   *wheel_includes]
            label = f"c++  {rel}"
        listed_abs = [str((project / h).resolve()) for h in listed]
        for h, a in zip(listed, listed_abs):
            if not os.path.exists(a):
                raise CliError(f"{h} (listed in build.toml [{section}]) does not exist")
        steps.append(
            CompileStep(
                section=section, rel=rel, kind=kind, cmd=cmd, obj=obj, depfile=dep,
                manifest=obj.with_suffix(".json"), listed_deps=listed_abs,
                key_full=_key(cmd, compiler_ids[kind], ext_name, elide=False),
                key_noext=_key(cmd, compiler_ids[kind], ext_name, elide=True),
                label=label,
            )
        )

    all_caps = sorted({c for p in plans for c in p.capabilities}, key=lambda c: c.sort_key)
    for p in plans:
        if p.skipped:
            continue
        k = p.kernel
        for rel in k.compiled_sources:
            if rel.endswith(CUDA_SUFFIXES):
                add_step(k.name, rel, "nvcc", incs(k.include) + nvcc_flags(k.cuda_flags),
                         k.header_sources, p.capabilities)
            else:
                add_step(k.name, rel, "cxx", incs(k.include) + k.cxx_flags, k.header_sources, None)
    torch_headers = [s for s in config.torch.src if not s.endswith(CUDA_SUFFIXES + CXX_SUFFIXES)]
    for rel in config.torch.src:
        if rel.endswith(CUDA_SUFFIXES):
            add_step("torch", rel, "nvcc", incs(config.torch.include), torch_headers, all_caps)
        elif rel.endswith(CXX_SUFFIXES):
            add_step("torch", rel, "cxx", incs(config.torch.include) + config.torch.cxx_flags,
                     torch_headers, None)
    if not steps:
        raise CliError("build.toml lists no .cu/.cpp sources to compile")

    hasher = FileHasher()
    todo: list[CompileStep] = []
    for s in steps:
        if force or not _is_fresh(s, hasher):
            todo.append(s)
        else:
            result.reused.append(s.rel)
    # Longest first: nvcc steps, then C++.
    todo.sort(key=lambda s: (s.kind != "nvcc", s.rel))

    if todo:
        _compile_all(todo, project, hasher, jobs, verbose, log, len(steps))
        result.compiled = [s.rel for s in todo]
    else:
        log(f"  all {len(steps)} objects up to date")

    # ---- link
    so_name = f"{ext_name}.abi3.so"
    linked_so = work / so_name
    cudart_dir = tc.find_cudart(torch.cudart_soname, toolkit, torch)
    objs = [str(s.obj) for s in steps]
    link_cmd = [cxx.path, "-shared", "-o", str(linked_so), *objs, "-L", str(torch.lib_dir),
                *[f"-l{lib}" for lib in _TORCH_LIBS], "-L", str(cudart_dir),
                f"-l:{torch.cudart_soname}", "-Wl,-z,noexecstack"]
    link_key = sha256_bytes(json.dumps(
        {"cmd": link_cmd, "objs": [sha256_file(Path(o)) for o in objs], "cxx": cxx.version_text}
    ).encode())
    link_manifest = work / "link.json"
    fresh_link = (
        not force
        and linked_so.exists()
        and link_manifest.exists()
        and json.loads(link_manifest.read_text()).get("key") == link_key
    )
    if not fresh_link:
        for stale in work.glob("*.abi3.so"):
            stale.unlink()
        t = time.monotonic()
        if verbose:
            log("  $ " + " ".join(link_cmd))
        proc = subprocess.run(link_cmd, cwd=project, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            sys.stderr.flush()
            raise CliError(f"linking {so_name} failed (exit {proc.returncode}); linker output above")
        _check_needed(linked_so, torch.cudart_soname)
        _write_atomic(link_manifest, json.dumps({"key": link_key}).encode())
        result.linked = True
        log(f"[link] {so_name} ({linked_so.stat().st_size / 1e6:.1f} MB) {time.monotonic() - t:.1f}s")

    # ---- assemble the variant
    files: dict[str, bytes] = {}
    pkg = config.package_dir
    exts = {".py", ".pyi"} | {f".{e}" for e in config.torch.data_extensions}
    for path in sorted(pkg.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix not in exts:
            continue
        files[path.relative_to(pkg).as_posix()] = path.read_bytes()
    files["_ops.py"] = vr.ops_py(ext_name).encode()
    files[so_name] = linked_so.read_bytes()
    meta = vr.build_metadata(config, ext_name, archs, files=files, git=git)
    files["metadata.json"] = vr.metadata_json(meta)

    variant_dir = out_dir / variant
    if force or not _dir_matches(variant_dir, files):
        tmp = out_dir / f".tmp-{variant}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for rel, data in files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        os.chmod(tmp / so_name, 0o755)
        _swap_in(tmp, variant_dir)
        result.written = True
    return result


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    _write_atomic(path, data)


def _dir_matches(directory: Path, files: dict[str, bytes]) -> bool:
    if not directory.is_dir():
        return False
    present: dict[str, Path] = {}
    for path in directory.rglob("*"):
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        present[path.relative_to(directory).as_posix()] = path
    if set(present) != set(files):
        return False
    return all(present[k].read_bytes() == v for k, v in files.items())


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace `final` with the complete directory `tmp` (two renames; never half-written)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_needed(so: Path, cudart: str) -> None:
    from .nvcc import elf_dynamic

    needed, _ = elf_dynamic(so)
    allowed = {f"lib{n}.so" for n in _TORCH_LIBS} | {cudart} | _SYSTEM_LIBS
    extra = [n for n in needed if n not in allowed]
    if extra:
        raise CliError(
            f"{so.name} depends on {', '.join(extra)}: a Hub kernel may link only torch and the "
            "CUDA libraries torch already depends on"
        )


# ------------------------------------------------------------- freshness & compile


def _is_fresh(step: CompileStep, hasher: FileHasher) -> bool:
    if not step.obj.exists() or not step.manifest.exists():
        return False
    try:
        manifest = json.loads(step.manifest.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("key") != step.key_for(bool(manifest.get("mentions_ext", True))):
        return False
    deps: dict[str, list] = manifest.get("deps", {})
    if any(d not in deps for d in step.listed_deps):
        return False
    for path, (_mtime, _size, sha) in deps.items():
        try:
            if hasher.info(path).sha != sha:
                return False
        except OSError:
            return False
    return True


def _record(step: CompileStep, project: Path, hasher: FileHasher) -> None:
    deps: list[str] = []
    if step.depfile.exists():
        for p in parse_depfile(step.depfile.read_text()):
            deps.append(os.path.normpath(p if os.path.isabs(p) else str(project / p)))
    deps.append(str((project / step.rel).resolve()))
    deps += step.listed_deps
    infos: dict[str, list] = {}
    mentions = False
    for d in dict.fromkeys(deps):
        try:
            info = hasher.info(d)
        except OSError:
            continue
        infos[d] = [info.mtime_ns, info.size, info.sha]
        mentions = mentions or info.mentions_ext
    manifest = {
        "key": step.key_for(mentions),
        "mentions_ext": mentions,
        "source": step.rel,
        "deps": infos,
    }
    _write_atomic(step.manifest, json.dumps(manifest, indent=0).encode())


def _compile_all(
    todo: list[CompileStep], project: Path, hasher: FileHasher, jobs: int, verbose: bool,
    log: Log, total: int,
) -> None:
    abort = threading.Event()
    running: set[subprocess.Popen] = set()
    lock = threading.Lock()
    done = [0]
    failure: list[tuple[CompileStep, int, str]] = []
    n = len(todo)
    if n < total:
        log(f"  {total - n} of {total} objects up to date")

    def work(step: CompileStep) -> None:
        if abort.is_set():
            return
        step.obj.parent.mkdir(parents=True, exist_ok=True)
        for stale in (step.obj, step.manifest):
            if stale.exists():
                stale.unlink()
        if verbose:
            log(f"  $ {' '.join(step.cmd)}")
        t = time.monotonic()
        proc = subprocess.Popen(step.cmd, cwd=project, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        with lock:
            running.add(proc)
        out, _ = proc.communicate()
        with lock:
            running.discard(proc)
        elapsed = time.monotonic() - t
        if abort.is_set():
            return
        if proc.returncode != 0:
            with lock:
                failure.append((step, proc.returncode, out))
                abort.set()
                for other in running:
                    other.terminate()
            return
        _record(step, project, hasher)
        with lock:
            done[0] += 1
            i = done[0]
        warn = ""
        if out.strip():
            lines = out.strip().count("\n") + 1
            warn = "" if verbose else f"  ({lines} line(s) of compiler output; --verbose shows them)"
        log(f"[{i}/{n}] {step.label} {elapsed:.1f}s{warn}")
        if out.strip() and verbose:
            log(out.rstrip())

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(work, s) for s in todo]
        try:
            for f in futures:
                f.result()
        except KeyboardInterrupt:
            abort.set()
            with lock:
                for p in running:
                    p.terminate()
            raise
    if failure:
        step, code, out = failure[0]
        sys.stderr.write(out if out.endswith("\n") else out + "\n")
        sys.stderr.flush()
        tool = "nvcc" if step.kind == "nvcc" else "the C++ compiler"
        raise CliError(f"compiling {step.rel} failed ({tool} exit {code}); compiler output above")
