"""`static-fp8-mlp validate` on stand-in builds: good builds pass, each broken rule is
refused (and `publish` refuses the same builds: see test_publish_refuses_bad_builds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_release_support import (
    ENDPOINTS,
    local_variant_name,
    make_dummy_lib,
    make_project,
    make_variant,
    requires_cc,
    run_cli,
)

pytestmark = requires_cc

OTHER = "torch212-cxx11-cu130-x86_64-linux"  # required, never the local torch's variant
CU126 = "torch212-cxx11-cu126-x86_64-linux"


def _needs_local():
    if local_variant_name() is None:
        pytest.skip("needs a CUDA build of torch (for the local variant's name)")
    return local_variant_name()


def _report(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "report.json"
    proc = run_cli("validate", *args, "--json", str(out))
    data = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, data, proc.stdout + proc.stderr


def _row(data: dict, name: str) -> dict:
    return next(v for v in data["variants"] if v["name"] == name)


def test_good_build_imports_local_variant_and_checks_others_statically(tmp_path):
    local = _needs_local()
    proj, build = make_project(tmp_path)
    make_variant(build, local)
    make_variant(build, CU126)
    rc, data, text = _report(tmp_path, str(build), "--variants", "present")
    assert rc == 0, text
    assert _row(data, local)["status"] == "OK"
    assert _row(data, local)["checks"]["import"]["status"] == "ok"
    assert _row(data, CU126)["status"] == "OK"
    assert _row(data, CU126)["checks"]["import"]["status"] == "skip"
    assert "10.0a" not in _row(data, CU126)["archs"]  # Blackwell needs CUDA >= 12.8
    assert "10.0a" in _row(data, local)["archs"]
    # one table row per variant, with a header
    lines = [ln for ln in text.splitlines() if ln.startswith("torch")]
    assert len(lines) == 2 and "VARIANT" in text
    # the variant dir was imported without leaving bytecode behind
    assert not list((build / local).rglob("__pycache__"))


def test_project_dir_is_accepted_and_finds_build_toml(tmp_path):
    proj, build = make_project(tmp_path)
    make_variant(build, OTHER)
    rc, data, text = _report(tmp_path, str(proj), "--variants", OTHER, "--no-import")
    assert rc == 0, text
    assert data["build_dir"] == str(build)


def test_missing_required_variants_fail_unless_narrowed(tmp_path):
    proj, build = make_project(tmp_path)
    make_variant(build, OTHER)
    rc, data, text = _report(tmp_path, str(build), "--no-import")
    assert rc == 1
    missing = [v["name"] for v in data["variants"] if v["status"] == "MISSING"]
    assert sorted(missing) == sorted(
        [
            "torch212-cxx11-cu126-x86_64-linux",
            "torch212-cxx11-cu132-x86_64-linux",
            "torch213-cxx11-cu126-x86_64-linux",
            "torch213-cxx11-cu130-x86_64-linux",
            "torch213-cxx11-cu132-x86_64-linux",
        ]
    )
    assert "MISSING" in text
    rc, data, text = _report(tmp_path, str(build), "--variants", OTHER, "--no-import")
    assert rc == 0, text


def test_full_required_set_passes_by_default(tmp_path):
    proj, build = make_project(tmp_path)
    for name in (
        "torch212-cxx11-cu126-x86_64-linux",
        "torch212-cxx11-cu130-x86_64-linux",
        "torch212-cxx11-cu132-x86_64-linux",
        "torch213-cxx11-cu126-x86_64-linux",
        "torch213-cxx11-cu130-x86_64-linux",
        "torch213-cxx11-cu132-x86_64-linux",
    ):
        make_variant(build, name)
    rc, data, text = _report(tmp_path, str(build), "--no-import")
    assert rc == 0, text
    assert {v["status"] for v in data["variants"]} == {"OK"}


def test_variants_local_selects_only_the_local_torch_variant(tmp_path):
    local = _needs_local()
    proj, build = make_project(tmp_path)
    make_variant(build, local)
    make_variant(build, OTHER, version=2)  # broken, but not selected
    rc, data, text = _report(tmp_path, str(build), "--variants", "local")
    assert rc == 0, text
    assert _row(data, local)["status"] == "OK"
    assert _row(data, OTHER)["status"] == "SKIP"


def test_variants_local_missing_is_reported(tmp_path):
    _needs_local()
    proj, build = make_project(tmp_path)
    make_variant(build, OTHER)
    rc, data, text = _report(tmp_path, str(build), "--variants", "local")
    assert rc == 1
    assert _row(data, local_variant_name())["status"] == "MISSING"


def test_usage_errors_exit_2(tmp_path):
    proj, build = make_project(tmp_path)
    make_variant(build, OTHER)
    proc = run_cli("validate", str(build), "--variants", "torch-bogus", "--no-import")
    assert proc.returncode == 2 and "--variants" in proc.stderr
    proc = run_cli("validate", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("validate", str(empty))
    assert proc.returncode == 2 and "no build variants" in proc.stderr


# --- broken builds: (make_variant kwargs, check that must FAIL, text in its detail)
def _bad_cases(tmp_path: Path) -> dict:
    missing = [n for n in ENDPOINTS if n != "fp8_geglu_mlp_bf16"]
    wrong = {
        "fp8_swiglu_mlp_bf16": "fp8_swiglu_mlp_bf16(Tensor! out, Tensor input, Tensor down_weight, "
        "Tensor gate_up_weight, Tensor input_scale, Tensor gate_up_weight_scale, Tensor hidden_scale, "
        "Tensor down_weight_scale) -> ()"
    }
    return {
        "missing_endpoint": (dict(endpoints=missing), "ops", "fp8_geglu_mlp_bf16"),
        "wrong_schema": (dict(schema_overrides=wrong), "ops", "fp8_swiglu_mlp_bf16"),
        "metadata_lacks_arch": (dict(archs=["8.9", "9.0a", "12.0"]), "archs", "lacks 10.0a"),
        "metadata_extra_arch": (dict(archs=["7.5", "8.9", "9.0a", "10.0a", "12.0"]), "archs", "7.5"),
        "no_abi3_tag": (dict(abi3_tag=False), "abi3", "no .abi3 tag"),
        "non_abi3_symbol": (dict(bad_abi=True), "abi3", "_PyObject_GetDictPtr"),
        "disallowed_library": (
            dict(link_libs=[make_dummy_lib(tmp_path / "libs")]),
            "deps",
            "libevil.so.1",
        ),
        "not_manylinux": (dict(new_glibc=True), "manylinux", "GLIBC"),
        "version_mismatch": (dict(version=2), "meta", "version 2"),
        "two_native_modules": (dict(extra_so=True), "layout", "exactly one native module"),
    }


BAD = [
    "missing_endpoint",
    "wrong_schema",
    "metadata_lacks_arch",
    "metadata_extra_arch",
    "no_abi3_tag",
    "non_abi3_symbol",
    "disallowed_library",
    "not_manylinux",
    "version_mismatch",
    "two_native_modules",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_build_is_refused_statically(tmp_path, case):
    kwargs, check, needle = _bad_cases(tmp_path)[case]
    proj, build = make_project(tmp_path)
    make_variant(build, OTHER, **kwargs)
    rc, data, text = _report(tmp_path, str(build), "--variants", OTHER, "--no-import")
    assert rc == 1, text
    row = _row(data, OTHER)
    assert row["status"] == "FAIL"
    assert row["checks"][check]["status"] == "fail", row["checks"]
    assert needle in row["checks"][check]["detail"]
    assert "FAIL" in text and "validate: FAILED" in text


@pytest.mark.parametrize("case", ["missing_endpoint", "wrong_schema"])
def test_bad_local_variant_fails_the_import_check_too(tmp_path, case):
    local = _needs_local()
    kwargs, check, needle = _bad_cases(tmp_path)[case]
    proj, build = make_project(tmp_path)
    make_variant(build, local, **kwargs)
    rc, data, text = _report(tmp_path, str(build), "--variants", "local")
    assert rc == 1, text
    row = _row(data, local)
    assert row["checks"]["ops"]["status"] == "fail"
    assert row["checks"]["import"]["status"] == "fail"
    assert needle in row["checks"]["import"]["detail"]


def test_registered_ops_are_compared_with_torch_schema_parser(tmp_path):
    """The .so literal is right but the op the package registers is not: only the
    import check can see that."""
    local = _needs_local()
    proj, build = make_project(tmp_path)
    from test_release_support import schemas_for

    registered = schemas_for()
    registered["fp8_gelu_mlp_bf16"] = registered["fp8_gelu_mlp_bf16"].replace("Tensor! out", "Tensor out")
    make_variant(build, local, registered=registered)
    rc, data, text = _report(tmp_path, str(build), "--variants", "local")
    assert rc == 1, text
    row = _row(data, local)
    assert row["checks"]["ops"]["status"] == "ok"
    assert row["checks"]["import"]["status"] == "fail"
    assert "fp8_gelu_mlp_bf16" in row["checks"]["import"]["detail"]


def test_dev_build_flag_accepts_only_manylinux_problems(tmp_path):
    proj, build = make_project(tmp_path)
    make_variant(build, OTHER, new_glibc=True)
    rc, data, text = _report(tmp_path, str(build), "--variants", OTHER, "--no-import", "--dev-build")
    assert rc == 0, text
    row = _row(data, OTHER)
    assert row["status"] == "DEV" and data["dev"] is True
    assert "DEV" in text and "development build" in text
    # --dev-build does not excuse anything else
    proj2, build2 = make_project(tmp_path / "2")
    make_variant(build2, OTHER, new_glibc=True, bad_abi=True)
    rc, data, text = _report(tmp_path, str(build2), "--variants", OTHER, "--no-import", "--dev-build")
    assert rc == 1
    assert _row(data, OTHER)["checks"]["abi3"]["status"] == "fail"


def test_missing_package_file_is_a_layout_failure(tmp_path):
    proj, build = make_project(tmp_path)
    pkg = proj / "torch-ext" / "static_fp8_mlp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text("")
    make_variant(build, OTHER)
    rc, data, text = _report(tmp_path, str(build), "--variants", OTHER, "--no-import")
    assert rc == 1
    assert "layers.py" in _row(data, OTHER)["checks"]["layout"]["detail"]


def test_elf_reader_matches_the_real_dependencies(tmp_path):
    from static_fp8_mlp_cli.release_elf import read_dynamic, schema_literals

    lib = make_dummy_lib(tmp_path / "libs")
    proj, build = make_project(tmp_path)
    vdir = make_variant(build, OTHER, link_libs=[lib])
    so = next(vdir.glob("*.so"))
    info = read_dynamic(so)
    assert "libevil.so.1" in info.needed
    assert read_dynamic(lib).soname == "libevil.so.1"
    found = schema_literals(so)
    assert set(found) == set(ENDPOINTS)


def test_dependency_allowlist():
    from static_fp8_mlp_cli.validate import dependency_allowed

    for ok in ("libc.so.6", "libstdc++.so.6", "libc10.so", "libtorch_cuda.so", "libcudart.so.12",
               "libcudart.so.13", "libcublasLt.so.13", "libcuda.so.1"):
        assert dependency_allowed(ok), ok
    for bad in ("libz.so.1", "libtorch_python.so", "libpython3.11.so.1.0", "/abs/libc10.so",
                "libcudart_static.a", "libevil.so.1"):
        assert not dependency_allowed(bad), bad


def test_expected_archs_follow_cuda_minver_and_maxver(tmp_path):
    from static_fp8_mlp_cli.release_variants import read_build_toml

    toml = tmp_path / "build.toml"
    toml.write_text(
        '[general]\nname = "k"\nversion = 1\n'
        '[kernel.a]\nbackend = "cuda"\ncuda-capabilities = ["8.9", "9.0a"]\n'
        '[kernel.b]\nbackend = "cuda"\ncuda-capabilities = ["10.0a", "12.0"]\ncuda-minver = "12.8"\n'
        '[kernel.c]\nbackend = "cuda"\ncuda-capabilities = ["7.5"]\ncuda-maxver = "12.9"\n'
        '[kernel.d]\nbackend = "rocm"\n'
    )
    spec = read_build_toml(toml)
    assert spec.expected_archs((12, 6)) == ["7.5", "8.9", "9.0a"]
    assert spec.expected_archs((12, 8)) == ["10.0a", "12.0", "7.5", "8.9", "9.0a"]
    assert spec.expected_archs((13, 0)) == ["10.0a", "12.0", "8.9", "9.0a"]


def test_repo_build_toml_covers_the_contract_architectures_at_cuda_13():
    """CONTRACT.md: compiled for 8.9, 9.0a, 10.0a and 12.0."""
    from static_fp8_mlp_cli.release_variants import read_build_toml

    from test_release_support import REPO

    spec = read_build_toml(REPO / "build.toml")
    assert sorted(spec.expected_archs((13, 0))) == sorted(["8.9", "9.0a", "10.0a", "12.0"])
    assert set(spec.expected_archs((12, 6))) <= {"8.9", "9.0a"}


def test_local_variant_that_kernels_does_not_resolve_fails_the_import_check(tmp_path):
    """The local torch's variant is in the build, but kernels does not pick it (here a
    stand-in kernels that rejects every variant): a caller's get_kernel would not load
    it, so the import check fails instead of being skipped."""
    import os

    from test_release_support import REPO

    local = _needs_local()
    proj, build = make_project(tmp_path)
    make_variant(build, local)
    fake = tmp_path / "fake-kernels" / "kernels"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "0.0.0"\n')
    (fake / "variants.py").write_text(
        "def get_variants_local(path):\n    return []\n\n"
        "def resolve_variant(variants):\n    return None, ['every variant rejected by a stand-in kernels']\n"
    )
    path = os.pathsep.join([str(fake.parent), str(REPO / "cli"), str(REPO / "registry")])
    out = tmp_path / "report.json"
    proc = run_cli("validate", str(build), "--variants", "local", "--json", str(out), env={"PYTHONPATH": path})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = _row(json.loads(out.read_text()), local)
    assert row["checks"]["import"]["status"] == "fail"
    assert "rejected by a stand-in kernels" in row["checks"]["import"]["detail"]
