"""Stand-in build variants for the release tests (validate / publish).

`make_variant` writes a variant directory with the same layout kernel-builder produces:
the package's `.py` files, a kernel-builder style `_ops.py`, `metadata.json` and one
native module `_static_fp8_mlp_cuda_<rev>.abi3.so`. The native module is a tiny
Py_LIMITED_API C extension compiled with the system C compiler (well under a second);
it carries the op schema strings as literals, exactly where the static check looks
for them in a real build. Because it cannot register torch ops itself, the stand-in's
`_ops.py` registers the same schemas through `torch.library` after importing it, so
the import check sees registered ops too.

Each knob breaks one rule, to test that validate and publish refuse it.
This module has no tests of its own; the others import it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "registry"))
sys.path.insert(0, str(REPO / "cli"))

from static_fp8_mlp_registry.contract import ENDPOINTS  # noqa: E402



def expected_archs(variant: str) -> list[str]:
    """What the repo's build.toml asks a variant to advertise (fakes advertise exactly that)."""
    from static_fp8_mlp_cli.release_variants import parse_variant, read_build_toml

    return read_build_toml(REPO / "build.toml").expected_archs(parse_variant(variant).cuda)


@lru_cache(maxsize=None)
def local_variant_name() -> str | None:
    """The variant name of this environment's torch (None without CUDA torch)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch, platform;"
            "print(torch.__version__.split('+')[0], torch.version.cuda, torch.compiled_with_cxx11_abi(), platform.machine())",
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return None
    ver, cuda, cxx11, machine = out.stdout.split()
    if cuda == "None":
        return None
    maj, minor = ver.split(".")[:2]
    cmaj, cmin = cuda.split(".")[:2]
    return f"torch{maj}{minor}-{'cxx11' if cxx11 == 'True' else 'cxx98'}-cu{cmaj}{cmin}-{machine}-linux"


def have_cc() -> bool:
    return shutil.which("gcc") is not None or shutil.which("cc") is not None


requires_cc = pytest.mark.skipif(not have_cc(), reason="needs a C compiler for stand-in native modules")


def schemas_for(endpoints=None, overrides=None) -> dict[str, str]:
    overrides = overrides or {}
    names = list(ENDPOINTS) if endpoints is None else list(endpoints)
    return {n: overrides.get(n, f"{n}{ENDPOINTS[n].op_schema}") for n in names}


def _compile_so(path: Path, module: str, schemas: dict[str, str], *, bad_abi=False, new_glibc=False,
                link_libs: list[Path] = ()) -> None:
    inc = sysconfig.get_paths()["include"]
    literals = ",\n".join("  " + json.dumps(s) for s in schemas.values()) or '  ""'
    src = path.with_suffix(".c")
    src.write_text(
        textwrap.dedent(
            f"""\
            #define Py_LIMITED_API 0x03090000
            #include <Python.h>
            #include <stdlib.h>
            __attribute__((used)) static const char *op_schemas[] = {{
            {literals}
            }};
            """
        )
        + ("extern void *_PyObject_GetDictPtr(void *);\n" if bad_abi else "")
        + textwrap.dedent(
            f"""\
            static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "{module}", NULL, 0, NULL}};
            PyMODINIT_FUNC PyInit_{module}(void) {{
            """
        )
        + ("  if (getenv(\"NEVER_SET_XYZ\")) _PyObject_GetDictPtr(NULL);\n" if bad_abi else "")
        + ("  if (getenv(\"NEVER_SET_XYZ\")) (void)arc4random();\n" if new_glibc else "")
        + "  return PyModule_Create(&def);\n}\n"
    )
    cmd = [shutil.which("gcc") or "cc", "-shared", "-fPIC", "-O1", f"-I{inc}", str(src), "-o", str(path)]
    for lib in link_libs:
        cmd += ["-Wl,--no-as-needed", f"-L{lib.parent}", f"-l:{lib.name}"]
    subprocess.run(cmd, check=True, capture_output=True)
    src.unlink()


def make_dummy_lib(dirpath: Path, name: str = "libevil.so.1") -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    src = dirpath / "evil.c"
    src.write_text("int evil_symbol(void) { return 42; }\n")
    out = dirpath / name
    subprocess.run(
        [shutil.which("gcc") or "cc", "-shared", "-fPIC", f"-Wl,-soname,{name}", str(src), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def make_variant(
    variants_dir: Path,
    name: str,
    *,
    rev: str = "abc1234",
    endpoints=None,
    schema_overrides: dict[str, str] | None = None,
    registered: dict[str, str] | None = None,
    archs: list[str] | None = None,
    version: int = 1,
    abi3_tag: bool = True,
    bad_abi: bool = False,
    new_glibc: bool = False,
    link_libs: list[Path] = (),
    extra_so: bool = False,
) -> Path:
    """Write a stand-in variant `variants_dir/name`; returns its path."""
    vdir = variants_dir / name
    vdir.mkdir(parents=True)
    ns = f"_static_fp8_mlp_cuda_{rev}"
    schemas = schemas_for(endpoints, schema_overrides)
    registered = schemas if registered is None else registered
    if archs is None:
        archs = expected_archs(name)

    so_name = f"{ns}.abi3.so" if abi3_tag else f"{ns}.cpython-311-x86_64-linux-gnu.so"
    _compile_so(vdir / so_name, ns, schemas, bad_abi=bad_abi, new_glibc=new_glibc, link_libs=link_libs)
    if extra_so:
        _compile_so(vdir / "_helper.abi3.so", "_helper", {})

    (vdir / "_ops.py").write_text(
        textwrap.dedent(
            f"""\
            import torch
            from . import {ns}
            ops = torch.ops.{ns}

            # Stand-in only: a real build registers these from C++ (TORCH_LIBRARY).
            _lib = torch.library.Library("{ns}", "DEF")
            for _schema in {list(registered.values())!r}:
                _lib.define(_schema)


            def add_op_namespace_prefix(op_name: str):
                return f"{ns}::{{op_name}}"
            """
        )
    )
    funcs = []
    for ep in ENDPOINTS.values():
        params = ", ".join(ep.params)
        funcs.append(
            f"def {ep.name}({params}, *, out=None):\n"
            f"    raise NotImplementedError('stand-in variant')\n"
        )
    (vdir / "__init__.py").write_text(
        "from ._ops import ops, add_op_namespace_prefix\n\n"
        + "\n\n".join(funcs)
        + f"\n\n__all__ = {list(ENDPOINTS)!r}\n"
    )
    (vdir / "metadata.json").write_text(
        json.dumps(
            {
                "name": "static-fp8-mlp",
                "id": ns,
                "version": version,
                "license": "apache-2.0",
                "python-depends": [],
                "backend": {"type": "cuda", "archs": archs},
            },
            indent=2,
        )
        + "\n"
    )
    return vdir


def make_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project dir holding the repo's build.toml and an empty build/; returns both."""
    proj = tmp_path / "proj"
    (proj / "build").mkdir(parents=True)
    shutil.copy(REPO / "build.toml", proj / "build.toml")
    return proj, proj / "build"


def child_pythonpath() -> str:
    """PYTHONPATH for a child process: the project's packages, then this process's own
    (scripts/kernels_compat.sh puts another kernels release there, and children must load
    that one)."""
    import os

    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return os.pathsep.join([str(REPO / "cli"), str(REPO / "registry")] + inherited)


def run_cli(*argv: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `static-fp8-mlp ARGV...` in a child process (never loads a kernel here)."""
    import os

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = child_pythonpath()
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "static_fp8_mlp_cli", *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
