"""The local build (`static-fp8-mlp build`): layout, metadata, loading through `kernels`,
op schemas, and incremental rebuilds. CPU only: importing the built kernel needs no GPU.

Skips (with the reason) where nvcc or a CUDA-enabled torch is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from static_fp8_mlp_cli import buildconfig as bc
from static_fp8_mlp_cli.errors import CliError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _so(variant: Path) -> Path:
    sos = sorted(variant.glob("*.abi3.so"))
    assert len(sos) == 1, f"expected exactly one .abi3.so in {variant}, found {[s.name for s in sos]}"
    return sos[0]


def _ext_name(variant: Path) -> str:
    return _so(variant).name[: -len(".abi3.so")]


def _expected_archs() -> list[str]:
    from static_fp8_mlp_cli import nvcc

    toolkit = nvcc.probe_toolkit()
    config = bc.read_build_config(REPO)
    return bc.compiled_archs(bc.plan_sections(config, toolkit.version, toolkit.supported_sms))


# --------------------------------------------------------------------------- layout


def test_layout(built_variant: Path):
    import torch

    from static_fp8_mlp_cli import variant as vr

    assert built_variant.parent == REPO / "build"
    assert built_variant.name == vr.variant_name(
        torch.__version__, torch.version.cuda, cxx11_abi=torch._C._GLIBCXX_USE_CXX11_ABI
    )
    pkg = REPO / "torch-ext" / "static_fp8_mlp"
    sources = {p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if "__pycache__" not in p.parts}
    assert "__init__.py" in sources
    for rel in sources - {"_ops.py"}:
        assert (built_variant / rel).read_bytes() == (pkg / rel).read_bytes(), f"{rel} differs"
    present = {
        p.relative_to(built_variant).as_posix()
        for p in built_variant.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert present == sources | {"_ops.py", "metadata.json", _so(built_variant).name}


def test_metadata(built_variant: Path):
    import kernels_data

    config = bc.read_build_config(REPO)
    meta = kernels_data.Metadata.read_from_file(built_variant / "metadata.json")
    assert str(meta.name) == config.name
    assert meta.version == config.version
    assert meta.license == config.license
    assert meta.id == _ext_name(built_variant)
    assert meta.python_depends == config.python_depends + config.cuda_python_depends
    assert meta.backend.backend_type == kernels_data.Backend.CUDA
    assert meta.backend.archs == _expected_archs()
    assert set(meta.backend.archs) == set(config.all_capabilities())  # nvcc 13 builds them all
    digest = kernels_data.Digest.hash_variant(kernels_data.DigestAlgorithm.SHA256, built_variant)
    meta.digest.validate(digest)
    # the loader's own (newer) metadata parser accepts it too
    from kernels._rust import Metadata

    assert Metadata.read_from_file(built_variant / "metadata.json").id == meta.id


def test_ops_namespace_matches_native_module(built_variant: Path):
    ext = _ext_name(built_variant)
    assert ext.startswith("_static_fp8_mlp_cuda_")
    text = (built_variant / "_ops.py").read_text()
    assert f"from . import {ext}\n" in text
    assert f"ops = torch.ops.{ext}\n" in text
    assert f'return f"{ext}::{{op_name}}"' in text


def test_native_module_is_abi3_and_links_only_torch_and_cudart(built_variant: Path):
    from static_fp8_mlp_cli.nvcc import elf_dynamic, probe_torch

    needed, _ = elf_dynamic(_so(built_variant))
    cudart = probe_torch().cudart_soname
    allowed = {"libc10.so", "libtorch.so", "libtorch_cpu.so", "libtorch_cuda.so", "libc10_cuda.so", cudart}
    system = {"libstdc++.so.6", "libgcc_s.so.1", "libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2",
              "ld-linux-aarch64.so.1", "libdl.so.2", "libpthread.so.0", "librt.so.1"}
    assert set(needed) <= allowed | system, needed
    assert not any("python" in n for n in needed)
    kac = pytest.importorskip("kernel_abi_check")
    assert kac.ObjectFile(str(_so(built_variant))).check_python_abi("3.9") == []


# --------------------------------------------------------------------------- loading

_LOAD_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import kernels
    from static_fp8_mlp_registry import contract

    how, arg = sys.argv[1], sys.argv[2]
    if how == "local":
        module = kernels.get_local_kernel(Path(arg))
    else:
        module = kernels.get_kernel(arg, version=1)
    out = {
        "file": module.__file__,
        "ns": module.ops._ops._op_namespace if hasattr(module.ops, "_ops") else None,
        "schemas": {},
        "functions": {},
        "prefix": module._ops.add_op_namespace_prefix("x") if hasattr(module, "_ops") else None,
    }
    import torch
    for name, ep in contract.ENDPOINTS.items():
        op = getattr(module.ops, name)
        schema = str(op.default._schema)
        normalized = contract.normalize_schema(schema)
        # torch prints an anonymous `Tensor!` as `Tensor($0! -> )`; canonicalise the expected
        # schema through the same parser so both spell it the same way.
        canonical = contract.normalize_schema(str(torch._C.parse_schema("x::y" + ep.op_schema)))
        out["schemas"][name] = [normalized, canonical]
        out["functions"][name] = callable(getattr(module, name, None))
    print("RESULT " + json.dumps(out))
    """
)


def _load_in_subprocess(how: str, arg: str, env_extra: dict[str, str]) -> dict:
    env = dict(os.environ)
    env.update(env_extra)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["CUDA_VISIBLE_DEVICES"] = ""  # importing must not need a GPU
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, how, arg],
        capture_output=True, text=True, env=env, timeout=300, cwd=str(REPO),
    )
    assert proc.returncode == 0, f"loading failed:\n{proc.stdout}\n{proc.stderr}"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _check_loaded(result: dict, variant: Path) -> None:
    from static_fp8_mlp_registry import contract

    assert Path(result["file"]).resolve() == (variant / "__init__.py").resolve()
    ext = _ext_name(variant)
    if result["prefix"] is not None:
        assert result["prefix"] == f"{ext}::x"
    for name, ep in contract.ENDPOINTS.items():
        normalized, canonical = result["schemas"][name]
        assert normalized in (ep.op_schema, canonical), f"{name}: {normalized} != {ep.op_schema}"
        assert result["functions"][name], f"the package does not export {name}"


def test_loads_with_get_local_kernel(built_variant: Path):
    _check_loaded(_load_in_subprocess("local", str(REPO / "build"), {}), built_variant)


def test_loads_with_local_kernels_override(built_variant: Path):
    config = bc.read_build_config(REPO)
    repo_id = config.repo_id or "static-fp8-mlp/static-fp8-mlp"
    result = _load_in_subprocess("hub", repo_id, {"LOCAL_KERNELS": f"{repo_id}={REPO}"})
    _check_loaded(result, built_variant)


# ----------------------------------------------------------------------- incremental


def test_second_build_is_a_no_op(built_variant: Path):
    from static_fp8_mlp_cli.build import build

    before = _ext_name(built_variant)
    lines: list[str] = []
    result = build(REPO, log=lines.append)
    if result.ext_name != before:
        pytest.skip("the git state of the checkout changed during the test session")
    assert result.up_to_date, "\n".join(lines)
    assert result.compiled == [] and not result.linked and not result.written
    assert any("is up to date" in ln for ln in lines)
    assert not any(ln.startswith("[") for ln in lines), "\n".join(lines)


def _requires_toolchain():
    import torch

    if torch.version.cuda is None:
        pytest.skip("torch is CPU-only")
    from static_fp8_mlp_cli import nvcc

    try:
        nvcc.find_nvcc()
    except CliError as exc:
        pytest.skip(str(exc))


_TINY_TOML = """\
[general]
name = "tiny-kernel"
version = 1
edition = 5
license = "apache-2.0"
backends = ["cuda"]

[torch]
src = ["torch-ext/binding.cpp"]

[kernel.add]
backend = "cuda"
depends = ["torch"]
cuda-capabilities = ["8.9"]
src = ["k/add.cu", "k/add.cuh", "k/listed_only.cuh"]

[kernel.scale]
backend = "cuda"
depends = ["torch"]
cuda-capabilities = ["8.9"]
src = ["k/scale.cu"]
"""

_TINY_FILES = {
    "build.toml": _TINY_TOML,
    "k/add.cuh": "#pragma once\n__device__ inline float add_one(float x) { return x + 1.0f; }\n",
    "k/listed_only.cuh": "#pragma once\n// listed in build.toml, included by nobody\n",
    "k/add.cu": '#include "add.cuh"\n__global__ void add_k(float* x) { x[0] = add_one(x[0]); }\n'
    "void launch_add(float* x) { add_k<<<1, 1>>>(x); }\n",
    "k/scale.cu": "__global__ void scale_k(float* x) { x[0] *= 2.0f; }\n"
    "void launch_scale(float* x) { scale_k<<<1, 1>>>(x); }\n",
    "torch-ext/binding.cpp": '#include "registration.h"\n'
    "void launch_add(float*);\nvoid launch_scale(float*);\n"
    "void* keep[] = {(void*)&launch_add, (void*)&launch_scale};\n"
    "REGISTER_EXTENSION(TORCH_EXTENSION_NAME)\n",
    "torch-ext/tiny_kernel/__init__.py": "from ._ops import ops\n__all__ = []\n",
    "README.md": "tiny\n",
}


@pytest.fixture()
def tiny_project(tmp_path: Path) -> Path:
    """A small git-tracked kernel project: two .cu files, one header, a binding that needs
    no torch headers (so each compile takes about a second)."""
    _requires_toolchain()
    _write_tiny(tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tiny"], check=True)
    # Dirty from the start, so editing a header below keeps the op namespace (<tree>_dirty).
    (tmp_path / "README.md").write_text("tiny, edited\n")
    return tmp_path


def _build(project: Path, **kw):
    from static_fp8_mlp_cli.build import build

    lines: list[str] = []
    result = build(project, jobs=2, log=lines.append, **kw)
    return result, lines


def test_touched_header_rebuilds_only_dependent_objects(tiny_project: Path):
    first, lines = _build(tiny_project)
    assert sorted(first.compiled) == ["k/add.cu", "k/scale.cu", "torch-ext/binding.cpp"]
    assert first.ext_name.endswith("_dirty")
    variant = first.variant_dir
    assert (variant / "metadata.json").exists() and (variant / f"{first.ext_name}.abi3.so").exists()
    assert sum(ln.startswith("[") and "/3] " in ln for ln in lines) == 3  # [i/n] progress lines

    again, lines = _build(tiny_project)
    assert again.up_to_date and again.compiled == []

    # Same mtime-only touch: content unchanged -> nothing to do.
    os.utime(tiny_project / "k/add.cuh")
    assert _build(tiny_project)[0].up_to_date

    with open(tiny_project / "k/add.cuh", "a") as f:
        f.write("// changed\n")
    changed, lines = _build(tiny_project)
    assert changed.compiled == ["k/add.cu"], lines
    assert changed.ext_name == first.ext_name

    with open(tiny_project / "k/listed_only.cuh", "a") as f:  # listed in build.toml only
        f.write("// changed\n")
    assert _build(tiny_project)[0].compiled == ["k/add.cu"]

    forced, _ = _build(tiny_project, force=True)
    assert len(forced.compiled) == 3 and forced.linked and forced.written

    # A commit changes the op namespace: only the object that uses TORCH_EXTENSION_NAME
    # recompiles, and the variant holds just the new module.
    git = ["git", "-C", str(tiny_project), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "commit", "-qam", "edit"], check=True)
    committed, lines = _build(tiny_project)
    assert committed.ext_name != first.ext_name and not committed.ext_name.endswith("_dirty")
    assert committed.compiled == ["torch-ext/binding.cpp"], lines
    assert [p.name for p in variant.glob("*.abi3.so")] == [f"{committed.ext_name}.abi3.so"]
    assert f"ops = torch.ops.{committed.ext_name}" in (variant / "_ops.py").read_text()


def test_failed_compile_keeps_previous_variant(tiny_project: Path, capsys):
    first, _ = _build(tiny_project)
    before = {p.name: p.read_bytes() for p in first.variant_dir.iterdir() if p.is_file()}
    with open(tiny_project / "k/scale.cu", "a") as f:
        f.write("this is not C++;\n")
    with pytest.raises(CliError, match=r"compiling k/scale.cu failed \(nvcc exit"):
        _build(tiny_project)
    assert "error" in capsys.readouterr().err  # the compiler's output is shown first
    after = {p.name: p.read_bytes() for p in first.variant_dir.iterdir() if p.is_file()}
    assert after == before
    assert not list((tiny_project / "build").glob(".tmp-*"))


def test_archs_option_and_minver_skip(tiny_project: Path):
    text = (tiny_project / "build.toml").read_text()
    text = text.replace(
        'cuda-capabilities = ["8.9"]\nsrc = ["k/scale.cu"]',
        'cuda-capabilities = ["10.0a"]\ncuda-minver = "99.0"\nsrc = ["k/scale.cu"]',
    )
    text = text.replace('cuda-capabilities = ["8.9"]', 'cuda-capabilities = ["8.9", "9.0a"]', 1)
    (tiny_project / "build.toml").write_text(text)
    (tiny_project / "torch-ext/binding.cpp").write_text(
        '#include "registration.h"\nvoid launch_add(float*);\n'
        "void* keep = (void*)&launch_add;\nREGISTER_EXTENSION(TORCH_EXTENSION_NAME)\n"
    )
    result, lines = _build(tiny_project, archs=["9.0a"])
    assert result.archs == ["9.0a"]
    assert any("[kernel.scale] skipped: cuda-minver 99" in ln for ln in lines)
    meta = json.loads((result.variant_dir / "metadata.json").read_text())
    assert meta["backend"]["archs"] == ["9.0a"]


def _write_tiny(root: Path) -> Path:
    for rel, text in _TINY_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_cli_reports_missing_nvcc(tmp_path: Path, monkeypatch, capsys):
    pytest.importorskip("torch")
    import torch

    from static_fp8_mlp_cli import nvcc
    from static_fp8_mlp_cli.__main__ import main

    if torch.version.cuda is None:
        pytest.skip("torch is CPU-only (covered by the CPU-only test)")
    for var in ("NVCC", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(nvcc, "FALLBACK_NVCC", str(tmp_path / "no-cuda" / "nvcc"))
    assert main(["build", "--project", str(_write_tiny(tmp_path / "p"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("static-fp8-mlp build: error: nvcc not found")


def test_cli_reports_cpu_only_torch(tmp_path: Path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from static_fp8_mlp_cli.__main__ import main

    monkeypatch.setattr(torch.version, "cuda", None)
    assert main(["build", "--project", str(_write_tiny(tmp_path / "p"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CPU-only" in err[0]
