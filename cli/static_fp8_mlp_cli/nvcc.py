"""The toolchain of a local build: nvcc, the host C++ compiler, torch and Python.

Everything is probed, nothing is assumed: the CUDA include/library directories come
from `nvcc --dryrun`, the SMs nvcc can target from `nvcc --list-gpu-code`, the cudart
soname from the ELF dependencies of torch's own `libtorch_cuda.so`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .buildconfig import parse_version
from .errors import CliError

# -------------------------------------------------------------------------------- ELF

_DT_NEEDED = 1
_DT_SONAME = 14
_SHT_DYNAMIC = 6

FALLBACK_NVCC = "/usr/local/cuda/bin/nvcc"


def elf_dynamic(path: Path) -> tuple[list[str], str | None]:
    """(DT_NEEDED entries, DT_SONAME) of a 64-bit ELF shared object."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    if data[4] != 2:
        raise ValueError(f"{path}: only 64-bit ELF files are supported")
    end = "<" if data[5] == 1 else ">"
    e_shoff = struct.unpack_from(end + "Q", data, 0x28)[0]
    e_shentsize, e_shnum = struct.unpack_from(end + "HH", data, 0x3A)
    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        sh_type, = struct.unpack_from(end + "I", data, off + 4)
        sh_offset, sh_size = struct.unpack_from(end + "QQ", data, off + 0x18)
        sh_link, = struct.unpack_from(end + "I", data, off + 0x28)
        sections.append((sh_type, sh_offset, sh_size, sh_link))
    needed: list[str] = []
    soname = None
    for sh_type, sh_offset, sh_size, sh_link in sections:
        if sh_type != _SHT_DYNAMIC:
            continue
        str_off = sections[sh_link][1]

        def cstr(i: int) -> str:
            j = data.index(b"\0", str_off + i)
            return data[str_off + i : j].decode()

        for pos in range(sh_offset, sh_offset + sh_size, 16):
            tag, val = struct.unpack_from(end + "qQ", data, pos)
            if tag == 0:
                break
            if tag == _DT_NEEDED:
                needed.append(cstr(val))
            elif tag == _DT_SONAME:
                soname = cstr(val)
    return needed, soname


# ------------------------------------------------------------------------------- CUDA


@dataclass
class CudaToolkit:
    nvcc: Path
    version: tuple[int, ...]  # (13, 0) from "release 13.0"
    version_text: str  # full `nvcc --version`
    include_dirs: list[str] = field(default_factory=list)
    system_include_dirs: list[str] = field(default_factory=list)
    lib_dirs: list[str] = field(default_factory=list)
    supported_sms: set[str] | None = None

    @property
    def release(self) -> str:
        m = re.search(r"V(\d+\.\d+\.\d+)", self.version_text)
        return m.group(1) if m else ".".join(map(str, self.version))


def find_nvcc() -> Path:
    candidates: list[str] = []
    if os.environ.get("NVCC"):
        candidates.append(os.environ["NVCC"])
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "nvcc"))
    which = shutil.which("nvcc")
    if which:
        candidates.append(which)
    candidates.append(FALLBACK_NVCC)
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(c)
    raise CliError(
        "nvcc not found (looked at $NVCC, $CUDA_HOME/bin, $PATH, /usr/local/cuda/bin): "
        "install the CUDA toolkit matching torch's CUDA version, or set CUDA_HOME"
    )


def _dryrun_vars(nvcc: Path) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cu"
        src.write_text("int main() { return 0; }\n")
        proc = subprocess.run(
            [str(nvcc), "--dryrun", "-c", str(src), "-o", str(Path(tmp) / "probe.o")],
            capture_output=True,
            text=True,
        )
    out: dict[str, str] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"#\$ (\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _flag_values(text: str, flag: str) -> list[str]:
    """Directories after `-I`/`-L`/`-isystem` in a shell-quoted flag string."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    dirs: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == flag and i + 1 < len(tokens):
            dirs.append(tokens[i + 1])
            i += 2
            continue
        if flag in ("-I", "-L") and t.startswith(flag) and len(t) > len(flag):
            dirs.append(t[len(flag) :])
        i += 1
    return [os.path.normpath(d) for d in dirs]


def probe_toolkit(nvcc: Path | None = None) -> CudaToolkit:
    nvcc = nvcc or find_nvcc()
    try:
        proc = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CliError(f"{nvcc} --version failed: {exc}") from None
    m = re.search(r"release (\d+)\.(\d+)", proc.stdout)
    if not m:
        raise CliError(f"cannot read the CUDA version from `{nvcc} --version`")
    version = (int(m.group(1)), int(m.group(2)))

    variables = _dryrun_vars(nvcc)
    # Canonical paths, so that the same toolkit reached through a wrapper script or a
    # symlink (/usr/local/bin/nvcc, /usr/local/cuda -> cuda-13.0) gives the same commands.
    here = variables.get("_HERE_")
    if here and os.path.isfile(os.path.join(here, "nvcc")):
        nvcc = Path(os.path.realpath(os.path.join(here, "nvcc")))
    else:
        nvcc = Path(os.path.realpath(nvcc))
    real = os.path.realpath
    include_dirs = [real(d) for d in _flag_values(variables.get("INCLUDES", ""), "-I")]
    system_include_dirs = [real(d) for d in _flag_values(variables.get("SYSTEM_INCLUDES", ""), "-isystem")]
    lib_dirs = [
        real(d) for d in _flag_values(variables.get("LIBRARIES", ""), "-L") if not d.endswith("stubs")
    ]
    if not include_dirs:
        top = Path(nvcc).resolve().parent.parent
        include_dirs = [str(top / "include")]
        lib_dirs = lib_dirs or [str(top / "lib64"), str(top / "lib")]

    supported: set[str] | None = None
    try:
        codes = subprocess.run(
            [str(nvcc), "--list-gpu-code"], capture_output=True, text=True, check=True
        ).stdout.split()
        supported = {c for c in codes if c.startswith("sm_")} or None
    except (OSError, subprocess.CalledProcessError):
        supported = None  # old nvcc without --list-gpu-code: let nvcc itself complain

    return CudaToolkit(
        nvcc=Path(nvcc),
        version=version,
        version_text=proc.stdout.strip(),
        include_dirs=include_dirs,
        system_include_dirs=system_include_dirs,
        lib_dirs=lib_dirs,
        supported_sms=supported,
    )


# ------------------------------------------------------------------------ host compiler


@dataclass
class HostCompiler:
    path: str
    version_text: str

    @property
    def is_gcc(self) -> bool:
        return "Free Software Foundation" in self.version_text or "g++" in self.version_text.split("\n")[0]

    @property
    def short_version(self) -> str:
        return self.version_text.split("\n")[0]


def find_host_compiler() -> HostCompiler:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise CliError("no C++ compiler found (set CXX or install g++)")
    try:
        text = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CliError(f"{cxx} --version failed: {exc}") from None
    return HostCompiler(path=cxx, version_text=text.strip())


# ------------------------------------------------------------------------------ torch


@dataclass
class TorchInfo:
    version: str  # "2.11.0+cu130"
    cuda: str  # "13.0"
    cxx11_abi: bool
    root: Path
    include_dirs: list[str]
    lib_dir: Path
    cudart_soname: str  # what libtorch_cuda.so depends on, e.g. "libcudart.so.13"
    python_include: str
    wheel_cuda_include_dirs: list[str]

    @property
    def base_version(self) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.version.split("+")[0])[:3])

    @property
    def cxx_std(self) -> str:
        """kernel-builder compiles with C++17 for torch < 2.12 and C++20 from 2.12 on."""
        return "c++17" if self.base_version[:2] < (2, 12) else "c++20"


def probe_torch() -> TorchInfo:
    try:
        import torch
    except ImportError:
        raise CliError("torch is not installed in this Python environment") from None
    if torch.version.cuda is None:
        raise CliError(
            f"torch {torch.__version__} is a CPU-only build: install a CUDA build of torch "
            "(e.g. the PyPI wheel torch==2.11.0, which is cu130) to build CUDA kernels"
        )
    root = Path(torch.__file__).resolve().parent
    lib_dir = root / "lib"
    libtorch_cuda = lib_dir / "libtorch_cuda.so"
    if not libtorch_cuda.exists():
        raise CliError(f"{libtorch_cuda} is missing: this torch install has no CUDA library")
    needed, _ = elf_dynamic(libtorch_cuda)
    cudart = [n for n in needed if n.startswith("libcudart.so")]
    if not cudart:
        raise CliError(f"{libtorch_cuda} does not depend on libcudart; cannot pick the cudart to link")

    python_include = sysconfig.get_paths()["include"]
    if not (Path(python_include) / "Python.h").exists():
        raise CliError(
            f"Python.h not found in {python_include}: install the Python development headers "
            f"(e.g. python{sys.version_info.major}.{sys.version_info.minor}-dev)"
        )

    wheel_includes: list[str] = []
    try:
        import nvidia  # namespace package of the nvidia-* CUDA wheels torch depends on

        for base in getattr(nvidia, "__path__", []):
            for inc in sorted(Path(base).glob("*/include")):
                wheel_includes.append(str(inc))
    except ImportError:
        pass

    return TorchInfo(
        version=torch.__version__,
        cuda=torch.version.cuda,
        cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        root=root,
        include_dirs=[str(root / "include"), str(root / "include" / "torch" / "csrc" / "api" / "include")],
        lib_dir=lib_dir,
        cudart_soname=cudart[0],
        python_include=python_include,
        wheel_cuda_include_dirs=wheel_includes,
    )


def find_cudart(soname: str, toolkit: CudaToolkit, torch: TorchInfo) -> Path:
    """The directory to link `soname` (e.g. libcudart.so.13) from: the toolkit's, else the
    nvidia wheel's that torch itself loads."""
    dirs = list(toolkit.lib_dirs)
    for inc in torch.wheel_cuda_include_dirs:
        dirs.append(str(Path(inc).parent / "lib"))
    for d in dirs:
        cand = Path(d) / soname
        if cand.exists():
            return Path(d)
    raise CliError(
        f"{soname} (the cudart torch links against) not found in {', '.join(dirs) or 'no directory'}"
    )


def cuda_version_tuple(text: str) -> tuple[int, ...]:
    return parse_version(text)


# ----------------------------------------------------------------------------- CUTLASS


@dataclass
class Cutlass:
    include_dirs: list[str]
    version: tuple[int, ...]
    origin: str


def _cutlass_version(include: Path) -> tuple[int, ...]:
    text = (include / "cutlass" / "version.h").read_text(errors="replace")
    parts = []
    for key in ("CUTLASS_MAJOR", "CUTLASS_MINOR", "CUTLASS_PATCH"):
        m = re.search(rf"#define\s+{key}\s+(\d+)", text)
        parts.append(int(m.group(1)) if m else 0)
    return tuple(parts)


def find_cutlass(dependency: str) -> Cutlass:
    """Headers for a `cutlass_X_Y` dependency: `$CUTLASS_SRC_DIR` (as kernel-builder
    honours it), else the `nvidia-cutlass` wheel's bundled source tree."""
    wanted = tuple(int(x) for x in dependency.split("_")[1:])
    roots: list[tuple[Path, str]] = []
    if os.environ.get("CUTLASS_SRC_DIR"):
        roots.append((Path(os.environ["CUTLASS_SRC_DIR"]), "$CUTLASS_SRC_DIR"))
    try:
        import importlib.util

        spec = importlib.util.find_spec("cutlass_library")
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                roots.append((Path(loc) / "source", "the nvidia-cutlass wheel"))
    except (ImportError, ValueError):
        pass
    for root, origin in roots:
        include = root / "include"
        if (include / "cutlass" / "cutlass.h").exists():
            dirs = [str(include)]
            util = root / "tools" / "util" / "include"
            if util.is_dir():
                dirs.append(str(util))
            version = _cutlass_version(include)
            return Cutlass(dirs, version, f"{origin} ({root})")
    raise CliError(
        f"build.toml depends on {dependency} (CUTLASS {'.'.join(map(str, wanted))}): install the "
        "headers with `pip install nvidia-cutlass` or point CUTLASS_SRC_DIR at a CUTLASS checkout"
    )
