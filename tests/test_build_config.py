"""build.toml / flake.nix checks and unit tests of the local build's pure logic.

Runs anywhere (no GPU, no nvcc needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from static_fp8_mlp_cli import buildconfig as bc
from static_fp8_mlp_cli import variant as vr
from static_fp8_mlp_cli.build import parse_depfile
from static_fp8_mlp_cli.errors import CliError

REPO = Path(__file__).resolve().parents[1]
REQUIRED_CAPABILITIES = {"8.9", "9.0a", "10.0a", "12.0"}

# Oldest CUDA toolkit in kernel-builder's required build set (nix-builder/build-variants.json:
# cu126, cu130, cu132); a section without cuda-minver must compile with it.
OLDEST_BUILDER_CUDA = (12, 6)

# First CUDA release whose nvcc targets each SM (NVIDIA release notes).
FIRST_CUDA_FOR_SM = {
    (8, 0): (11, 0), (8, 6): (11, 1), (8, 7): (11, 4), (8, 9): (11, 8), (9, 0): (11, 8),
    (10, 0): (12, 8), (10, 1): (12, 8), (10, 3): (12, 9), (11, 0): (13, 0),
    (12, 0): (12, 8), (12, 1): (12, 9),
}


@pytest.fixture(scope="module")
def config() -> bc.BuildConfig:
    return bc.read_build_config(REPO)


# ----------------------------------------------------------------- build.toml itself


def _kernels_data_build():
    """kernels-data's build.toml parser: `kernels_data.Build` in releases that export it,
    else the same Rust bindings as bundled in `kernels` (0.17.x: `kernels._rust.Build`)."""
    import kernels_data

    if hasattr(kernels_data, "Build"):
        return kernels_data.Build, kernels_data.Backend
    try:
        from kernels._rust import Backend, Build
    except ImportError:
        pytest.skip("neither kernels_data nor kernels exposes the build.toml parser")
    return Build, Backend


def test_build_toml_parses_with_kernels_data():
    Build, Backend = _kernels_data_build()
    build = Build.open(REPO)
    assert build.general.backends == [Backend.CUDA]


def test_kernels_data_parser_rejects_unknown_keys(tmp_path):
    Build, _ = _kernels_data_build()
    text = (REPO / "build.toml").read_text().replace("[general.hub]", "[general.hub]\nbogus = 1", 1)
    (tmp_path / "build.toml").write_text(text)
    with pytest.raises(ValueError):
        Build.open(tmp_path)
    with pytest.raises(CliError, match="bogus"):
        bc.read_build_config(tmp_path)


def test_general_section(config):
    assert config.name == "static-fp8-mlp"
    assert config.python_name == "static_fp8_mlp"
    assert config.version == 1
    assert config.edition == 5
    assert config.license == "apache-2.0"
    assert config.backends == ["cuda"]
    assert config.repo_id and re.fullmatch(r"[\w.-]+/static-fp8-mlp", config.repo_id)


def test_sources_exist_and_are_listed(config):
    for rel in config.torch.src + [s for k in config.kernels for s in k.src]:
        if (REPO / rel).parent.exists():  # the CUDA sources may land in a later commit
            assert (REPO / rel).exists(), f"{rel} is listed in build.toml but missing"
    for k in config.cuda_kernels():
        assert "torch" in k.depends
        assert k.compiled_sources, f"[kernel.{k.name}] compiles nothing"


def repo_includes(path: Path, seen: set[str]) -> set[str]:
    """The repository files that `path` includes with #include "...", transitively
    (resolved against its own folder, then kernels-src/)."""
    for name in re.findall(r'#include "([^"]+)"', path.read_text()):
        for base in (path.parent, REPO / "kernels-src"):
            found = base / name
            if found.is_file():
                rel = found.resolve().relative_to(REPO).as_posix()
                if rel not in seen:
                    seen.add(rel)
                    repo_includes(found, seen)
                break
    return seen


def test_every_included_header_is_listed(config):
    """kernel-builder builds each [kernel.*] from its `src` list: a header a listed .cu
    includes but the list omits may be missing from that build (hopper_dispatch.cuh,
    fp8_gemm_swap.cuh, fp8_gemm_warp.cuh and tma_util.cuh were, until the fifteenth
    session)."""
    for k in config.cuda_kernels():
        listed = set(k.src)
        for cu in (s for s in k.src if s.endswith(".cu")):
            missing = repo_includes(REPO / cu, set()) - listed
            assert not missing, f"[kernel.{k.name}] src lacks {sorted(missing)} (included by {cu})"


def test_capabilities_cover_the_supported_architectures(config):
    assert REQUIRED_CAPABILITIES <= set(config.all_capabilities())


def test_arch_specific_capabilities_are_guarded_by_cuda_minver(config):
    for k in config.cuda_kernels():
        floor = k.cuda_minver or OLDEST_BUILDER_CUDA
        for text in k.capabilities:
            cap = bc.Capability.parse(text)
            need = FIRST_CUDA_FOR_SM[(cap.major, cap.minor)]
            assert bc.version_at_least(floor, need), (
                f"[kernel.{k.name}] builds {text}, which needs CUDA >= {bc.format_version(need)}, "
                f"for CUDA {bc.format_version(floor)}: set cuda-minver"
            )
            if cap.is_arch_specific and (cap.major, cap.minor) > (9, 0):
                assert k.cuda_minver is not None, f"[kernel.{k.name}] {text} needs an explicit cuda-minver"


def test_every_section_builds_with_cuda_13_and_128(config):
    for cuda in ((12, 8), (13, 0)):
        plans = bc.plan_sections(config, cuda, None)
        assert set(bc.compiled_archs(plans)) == set(config.all_capabilities())


# -------------------------------------------------------------------------- flake.nix


def test_flake_pins_kernel_builder_to_a_commit():
    text = (REPO / "flake.nix").read_text()
    m = re.search(r'kernel-builder\.url\s*=\s*"github:huggingface/kernels/([^"]+)"', text)
    assert m, "flake.nix must take kernel-builder from github:huggingface/kernels/<commit>"
    assert re.fullmatch(r"[0-9a-f]{40}", m.group(1)), f"not a full commit: {m.group(1)}"
    assert "genKernelFlakeOutputs" in text


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="nix-instantiate not installed")
def test_flake_nix_parses():
    proc = subprocess.run(
        ["nix-instantiate", "--parse", str(REPO / "flake.nix")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------- variant naming


@pytest.mark.parametrize(
    "torch_version, cuda, machine, expected",
    [
        ("2.11.0+cu130", "13.0", "x86_64", "torch211-cxx11-cu130-x86_64-linux"),
        ("2.11.0", "13.0", "aarch64", "torch211-cxx11-cu130-aarch64-linux"),
        ("2.12.1+cu126", "12.6", "x86_64", "torch212-cxx11-cu126-x86_64-linux"),
        ("2.13.0.dev20260101+cu132", "12.10", "arm64", "torch213-cxx11-cu1210-aarch64-linux"),
        ("2.9.0", "12.8", "AMD64", "torch29-cxx11-cu128-x86_64-linux"),
        ("2.11.0", "13", "x86_64", "torch211-cxx11-cu130-x86_64-linux"),
    ],
)
def test_variant_name(torch_version, cuda, machine, expected):
    name = vr.variant_name(torch_version, cuda, machine=machine, system="Linux")
    assert name == expected
    from static_fp8_mlp_registry.kernels_api import internal

    assert internal("variants").parse_variant(name).variant_str == name  # the loader reads it back unchanged


def test_variant_name_cxx98_and_errors():
    assert vr.variant_name("2.11.0", "13.0", cxx11_abi=False, machine="x86_64", system="Linux") == (
        "torch211-cxx98-cu130-x86_64-linux"
    )
    with pytest.raises(CliError):
        vr.variant_name("2.11.0", "13.0", machine="riscv64", system="Linux")
    with pytest.raises(CliError):
        vr.variant_name("2.11.0", "13.0", machine="x86_64", system="Darwin")


# --------------------------------------------------------------------- rev / _dirty


def test_rev_and_ops_name():
    tree = "0123456789abcdef0123456789abcdef01234567"
    assert vr.rev_from_git(tree, dirty=False) == "0123456"
    assert vr.rev_from_git(tree, dirty=True) == "0123456_dirty"
    assert vr.ops_name("static_fp8_mlp", "0123456") == "_static_fp8_mlp_cuda_0123456"
    rid = vr.random_identifier()
    assert re.fullmatch(r"[a-z2-7]{13}", rid) and rid != vr.random_identifier()


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_state_tracks_tree_and_dirtiness(tmp_path):
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t", *args],
            check=True, capture_output=True, text=True,
        ).stdout.strip()

    assert vr.git_state(tmp_path) is None  # not a repository
    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "one")
    state = vr.git_state(tmp_path)
    assert state is not None and not state.dirty
    assert state.tree == git("rev-parse", "HEAD^{tree}")
    assert state.commit == git("rev-parse", "HEAD")
    assert vr.rev_from_git(state.tree, state.dirty) == state.tree[:7]

    (tmp_path / "untracked.txt").write_text("x\n")  # untracked files do not count
    assert not vr.git_state(tmp_path).dirty

    (tmp_path / "a.txt").write_text("two\n")  # a modified tracked file does
    dirty = vr.git_state(tmp_path)
    assert dirty.dirty and dirty.tree == state.tree
    assert vr.rev_from_git(dirty.tree, dirty.dirty) == state.tree[:7] + "_dirty"

    git("commit", "-qam", "two")  # same content as another tree -> another id
    assert vr.git_state(tmp_path).tree != state.tree


# -------------------------------------------------------- capabilities and sections


@pytest.mark.parametrize(
    "cap, flags",
    [
        ("8.9", ["-gencode=arch=compute_89,code=sm_89"]),
        ("9.0a", ["-gencode=arch=compute_90a,code=sm_90a"]),
        ("10.0a", ["-gencode=arch=compute_100a,code=sm_100a"]),
        ("12.0", ["-gencode=arch=compute_120,code=sm_120"]),
        ("10.0f", ["-gencode=arch=compute_100f,code=sm_100f"]),
        ("8.0+PTX", ["-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_80,code=compute_80"]),
    ],
)
def test_gencode_flags(cap, flags):
    assert bc.gencode_flags(cap) == flags


@pytest.mark.parametrize("bad", ["9", "9.0b", "sm_90", "9.0a+ptx", ""])
def test_invalid_capability(bad):
    with pytest.raises(ValueError):
        bc.Capability.parse(bad)


def _synthetic(tmp_path: Path, extra: str = "") -> bc.BuildConfig:
    text = f"""
[general]
name = "demo-kernel"
version = 2
edition = 5
license = "mit"
backends = ["cuda"]

[torch]
src = ["torch-ext/b.cpp"]

[kernel.old]
backend = "cuda"
depends = ["torch"]
cuda-capabilities = ["8.0", "8.9", "9.0a"]
src = ["k/old.cu"]

[kernel.blackwell]
backend = "cuda"
depends = ["torch"]
cuda-capabilities = ["10.0a", "12.0"]
cuda-minver = "12.8"
src = ["k/new.cu"]
{extra}
"""
    (tmp_path / "build.toml").write_text(text)
    return bc.read_build_config(tmp_path)


def test_sections_skipped_by_cuda_minver(tmp_path):
    config = _synthetic(tmp_path)
    old_cuda = bc.plan_sections(config, (12, 6), None)
    assert [p.kernel.name for p in old_cuda if p.skipped] == ["blackwell"]
    assert "cuda-minver 12.8" in old_cuda[1].skipped_reason
    assert bc.compiled_archs(old_cuda) == ["8.0", "8.9", "9.0a"]

    new_cuda = bc.plan_sections(config, (13, 0), None)
    assert not any(p.skipped for p in new_cuda)
    # sorted like kernel-builder's add_build_metadata.py (plain string sort)
    assert bc.compiled_archs(new_cuda) == ["10.0a", "12.0", "8.0", "8.9", "9.0a"]
    assert bc.plan_sections(config, (12, 8), None)[1].capabilities  # minver is inclusive


def test_capabilities_nvcc_lacks_are_dropped(tmp_path):
    config = _synthetic(tmp_path)
    cuda13_sms = {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120"}
    plans = bc.plan_sections(config, (13, 0), cuda13_sms - {"sm_80"})
    assert [str(c) for c in plans[0].capabilities] == ["8.9", "9.0a"]
    assert plans[0].dropped and plans[0].dropped[0][0] == "8.0"
    with pytest.raises(CliError, match="guard the section with cuda-minver"):
        bc.plan_sections(config, (13, 0), {"sm_89", "sm_90"})  # blackwell: nothing left


def test_archs_option_restricts_sections(tmp_path):
    config = _synthetic(tmp_path)
    plans = bc.plan_sections(config, (13, 0), None, ["9.0a"])
    assert bc.compiled_archs(plans) == ["9.0a"]
    assert plans[1].skipped
    with pytest.raises(CliError, match="not a capability"):
        bc.plan_sections(config, (13, 0), None, ["7.5"])


def test_strict_keys_and_required_fields(tmp_path):
    with pytest.raises(CliError, match="unknown key"):
        _synthetic(tmp_path, '\n[kernel.extra]\nbackend = "cuda"\ndepends = []\nsrc = []\ncuda-capabilites = ["8.9"]\n')
    (tmp_path / "build.toml").write_text('[general]\nname = "x-y"\nversion = 1\nedition = 4\n')
    with pytest.raises(CliError):
        bc.read_build_config(tmp_path)


# ---------------------------------------------------------------- generated files


def test_ops_py_and_registration_header():
    text = vr.ops_py("_demo_cuda_abc1234")
    ns: dict = {}
    assert "from . import _demo_cuda_abc1234" in text
    assert "ops = torch.ops._demo_cuda_abc1234" in text
    exec(compile(text.replace("from . import _demo_cuda_abc1234\n", ""), "_ops.py", "exec"), ns)
    assert ns["add_op_namespace_prefix"]("f") == "_demo_cuda_abc1234::f"
    for macro in ("TORCH_LIBRARY_EXPAND", "TORCH_LIBRARY_IMPL_EXPAND", "REGISTER_EXTENSION", "CONCAT", "STRINGIFY"):
        assert f"#define {macro}" in vr.REGISTRATION_H


def test_metadata_parses_with_kernels_data(tmp_path):
    import kernels_data

    config = _synthetic(tmp_path)
    files = {"__init__.py": b"x = 1\n", "_ops.py": b"", "_demo_kernel_cuda_abc1234.abi3.so": b"\x7fELF"}
    git = vr.GitState(commit="ab" * 20, tree="cd" * 20, dirty=True)
    meta = vr.build_metadata(config, "_demo_kernel_cuda_abc1234", ["9.0a", "8.9", "10.0a"], files=files, git=git)
    parsed = kernels_data.Metadata.from_bytes(vr.metadata_json(meta))
    assert parsed.id == "_demo_kernel_cuda_abc1234"
    assert str(parsed.name) == "demo-kernel" and parsed.name.python_name == "demo_kernel"
    assert parsed.version == 2 and parsed.license == "mit"
    assert parsed.backend.backend_type == kernels_data.Backend.CUDA
    assert parsed.backend.archs == ["10.0a", "8.9", "9.0a"]
    assert parsed.python_depends == []
    # the digest has the format `kernel-builder hash` writes
    for rel, data in files.items():
        (tmp_path / "v" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "v" / rel).write_bytes(data)
    actual = kernels_data.Digest.hash_variant(kernels_data.DigestAlgorithm.SHA256, tmp_path / "v")
    parsed.digest.validate(actual)


def test_parse_depfile():
    text = (
        "obj/a.o: src/a.cu /usr/include/stdio.h \\\n"
        "  kernels-src/common.cuh /opt/with\\ space/x.h \\\n"
        " kernels-src/common.cuh\n"
        "kernels-src/common.cuh:\n"
    )
    assert parse_depfile(text) == [
        "src/a.cu", "/usr/include/stdio.h", "kernels-src/common.cuh", "/opt/with space/x.h",
    ]


def test_find_cutlass_from_env(tmp_path, monkeypatch):
    from static_fp8_mlp_cli import nvcc

    inc = tmp_path / "cutlass" / "include" / "cutlass"
    inc.mkdir(parents=True)
    (inc / "cutlass.h").write_text("#pragma once\n")
    (inc / "version.h").write_text(
        "#define CUTLASS_MAJOR 4\n#define CUTLASS_MINOR 2\n#define CUTLASS_PATCH 0\n"
    )
    (tmp_path / "cutlass" / "tools" / "util" / "include").mkdir(parents=True)
    monkeypatch.setenv("CUTLASS_SRC_DIR", str(tmp_path / "cutlass"))
    found = nvcc.find_cutlass("cutlass_4_4")
    assert found.version == (4, 2, 0)
    assert found.include_dirs == [
        str(tmp_path / "cutlass" / "include"), str(tmp_path / "cutlass" / "tools" / "util" / "include")
    ]
    monkeypatch.setenv("CUTLASS_SRC_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(CliError, match="nvidia-cutlass"):
        nvcc.find_cutlass("cutlass_4_4")
