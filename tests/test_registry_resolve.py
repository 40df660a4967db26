"""Resolution through `kernels`: local builds, LOCAL_KERNELS, the offline cache, the Hub
protocol (faked at the HfApi level), error messages, and one load per artifact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("kernels")
from registry_helpers import (  # noqa: F401 - fixture
    FakeHub,
    fresh_registry,
    make_offline_cache,
    make_standin,
    real_build_dir,
    standin_loads,
    use_offline_cache,
    variant_dir,
)

from static_fp8_mlp_registry.errors import (
    ArchitectureNotSupportedError,
    DuplicateArtifactError,
    LocalArtifactError,
    NetworkUnreachableError,
    NoBuildVariantError,
    NotInCacheError,
    RepoNotFoundError,
    RevisionNotFoundError,
    UntrustedPublisherError,
    VersionNotFoundError,
)
from static_fp8_mlp_registry.loader import expected_variant, resolve_kernel, resolved_from_module

pytestmark = pytest.mark.usefixtures("fresh_registry")

REPO = "owner/static-fp8-mlp"


def loads_of(path: Path) -> int:
    init = str(variant_dir(path) / "__init__.py")
    return sum(1 for p in standin_loads() if os.path.realpath(p) == os.path.realpath(init))


# ----------------------------------------------------------------------- local builds


@pytest.mark.parametrize("level", ["project", "build", "variant"])
def test_path_spec_at_every_level(tmp_path, level):
    proj = make_standin(tmp_path / "k")
    target = {"project": proj, "build": proj / "build", "variant": variant_dir(proj)}[level]
    rk = resolve_kernel({"path": str(target)})
    assert rk.source == "path"
    assert rk.variant == expected_variant()
    assert rk.variant_path == variant_dir(proj).resolve()
    assert rk.archs == ("8.9", "9.0a", "10.0a", "12.0")
    assert rk.ops_namespace == rk.kernel_id
    assert callable(rk.module.fp8_swiglu_mlp_bf16)
    assert rk.describe()["source"] == "path"


def test_local_kernels_override(tmp_path, monkeypatch):
    proj = make_standin(tmp_path / "k")
    monkeypatch.setenv("LOCAL_KERNELS", f"{REPO}={proj}")
    rk = resolve_kernel(REPO)
    assert rk.source == "local-override"
    assert rk.repo_id == REPO and rk.requested == "v1" and rk.revision is None
    assert rk.variant_path == variant_dir(proj).resolve()
    # resolution is cached per (repo, version, trust)
    assert resolve_kernel(REPO) is rk


def test_local_kernels_bad_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_KERNELS", "no-equals-sign")
    with pytest.raises(LocalArtifactError, match="LOCAL_KERNELS is 'owner/name=/path"):
        resolve_kernel(REPO)


def test_missing_path_and_no_variant(tmp_path):
    with pytest.raises(LocalArtifactError, match="does not exist"):
        resolve_kernel({"path": str(tmp_path / "nope")})
    proj = make_standin(tmp_path / "old", variant="torch27-cxx11-cu126-x86_64-linux")
    with pytest.raises(NoBuildVariantError) as info:
        resolve_kernel({"path": str(proj)})
    msg = str(info.value)
    assert expected_variant() in msg and "torch27-cxx11-cu126-x86_64-linux" in msg
    assert "Torch version (2.7) does not match" in msg


def test_architecture_not_covered(tmp_path, monkeypatch):
    import torch

    if torch.version.cuda is None:
        pytest.skip("a CPU build of torch: kernels checks CUDA architectures only with a CUDA build")
    proj = make_standin(tmp_path / "k", archs=("9.0a",))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    with pytest.raises(ArchitectureNotSupportedError, match=r"CUDA capability 8\.0 .* not supported .* 9\.0a"):
        resolve_kernel({"path": str(proj)})
    # check_arch=False lets it through (the caller takes responsibility)
    assert resolve_kernel({"path": str(proj)}, check_arch=False).archs == ("9.0a",)


# ------------------------------------------------------------------- offline cache


def test_offline_cache_refs_v1_in_process(tmp_path, monkeypatch):
    proj = make_standin(tmp_path / "k")
    cache = tmp_path / "cache"
    sha = make_offline_cache(cache, REPO, proj / "build")
    use_offline_cache(monkeypatch, cache)
    rk = resolve_kernel(REPO)
    assert rk.source == "hub-cache"
    assert rk.revision == sha
    assert str(rk.variant_path).startswith(str(cache.resolve()))
    # a pinned revision resolves offline too
    assert resolve_kernel({"repo_id": REPO, "revision": sha}).module is rk.module


def test_offline_cache_missing_version_lists_available(tmp_path, monkeypatch):
    proj = make_standin(tmp_path / "k")
    cache = tmp_path / "cache"
    make_offline_cache(cache, REPO, proj / "build", versions=(1, 3))
    use_offline_cache(monkeypatch, cache)
    with pytest.raises(VersionNotFoundError) as info:
        resolve_kernel({"repo_id": REPO, "version": 2})
    assert info.value.available == [1, 3]
    assert "has no version 2 (branch v2); available versions: 1, 3" in str(info.value)


def test_offline_cache_miss(tmp_path, monkeypatch):
    use_offline_cache(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(NotInCacheError) as info:
        resolve_kernel(REPO)
    msg = str(info.value)
    assert "HF_HUB_OFFLINE=1" in msg and "snapshot_download" in msg and "refs/v1" in msg


def _cli(args, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_KERNELS",)}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "static_fp8_mlp_cli", "resolve", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )


def test_offline_cache_subprocess_real_env(tmp_path):
    """The real thing: HF_HUB_OFFLINE=1 and KERNELS_CACHE set before anything is imported."""
    proj = make_standin(tmp_path / "k")
    cache = tmp_path / "cache"
    sha = make_offline_cache(cache, REPO, proj / "build")
    r = _cli([REPO, "--no-smoke"], {"HF_HUB_OFFLINE": "1", "KERNELS_CACHE": str(cache)}, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "source:     hub-cache" in r.stdout
    assert f"revision:   {sha}" in r.stdout
    assert "validation: OK" in r.stdout


# ------------------------------------------------------------- Hub protocol (faked)


def test_hub_trusted_publisher_version_1(tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    shas = hub.add_repo(REPO, {"v1": make_standin(tmp_path / "k1"), "main": make_standin(tmp_path / "km")}, trusted=True)
    rk = resolve_kernel(REPO)
    assert rk.source == "hub" and rk.revision == shas["v1"]
    assert rk.variant_path == variant_dir(tmp_path / "k1").resolve()
    assert ("org", "owner") in hub.calls


def test_hub_untrusted_publisher(tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    hub.add_repo(REPO, {"v1": make_standin(tmp_path / "k")}, trusted=False)
    with pytest.raises(UntrustedPublisherError) as info:
        resolve_kernel(REPO)
    assert "trust_remote_code: true" in str(info.value)
    # trusting it explicitly works, and is a separate cache entry
    rk = resolve_kernel({"repo_id": REPO, "trust_remote_code": True})
    assert rk.spec.trust_remote_code


def test_hub_repo_not_found(tmp_path, monkeypatch):
    FakeHub().install(monkeypatch)
    with pytest.raises(RepoNotFoundError, match="'owner/missing' was not found"):
        resolve_kernel({"repo_id": "owner/missing", "trust_remote_code": True})
    # unknown organization: the trust lookup fails with 404
    with pytest.raises(RepoNotFoundError, match="publisher 'nobody' of kernel repo 'nobody/missing' was not found"):
        resolve_kernel("nobody/missing")


def test_hub_version_not_found_lists_versions(tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    hub.add_repo(REPO, {"v1": make_standin(tmp_path / "a"), "v3": make_standin(tmp_path / "b"), "main": tmp_path / "a"}, trusted=True)
    with pytest.raises(VersionNotFoundError) as info:
        resolve_kernel({"repo_id": REPO, "version": 2})
    assert info.value.available == [1, 3]
    assert "available versions: 1, 3" in str(info.value)


def test_hub_revision_not_found_lists_versions(tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    hub.add_repo(REPO, {"v1": make_standin(tmp_path / "a")}, trusted=True)
    with pytest.raises(RevisionNotFoundError) as info:
        resolve_kernel({"repo_id": REPO, "revision": "no-such-branch"})
    assert "available versions: 1" in str(info.value)


def test_hub_no_variant_for_this_torch(tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    hub.add_repo(REPO, {"v1": make_standin(tmp_path / "a", variant="torch29-cxx11-cu128-x86_64-linux")}, trusted=True)
    with pytest.raises(NoBuildVariantError) as info:
        resolve_kernel(REPO)
    assert "torch29-cxx11-cu128-x86_64-linux" in str(info.value)
    assert expected_variant() in str(info.value)


def test_hub_network_unreachable(tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    hub.add_repo(REPO, {"v1": make_standin(tmp_path / "a")}, trusted=True)
    hub.network_down = True
    for spec in (REPO, {"repo_id": REPO, "trust_remote_code": True}):
        with pytest.raises(NetworkUnreachableError) as info:
            resolve_kernel(spec)
        assert "HF_HUB_OFFLINE=1" in str(info.value) and "LOCAL_KERNELS" in str(info.value)


def test_get_kernel_called_with_keywords_only(tmp_path, monkeypatch):
    import kernels

    hub = FakeHub().install(monkeypatch)
    shas = hub.add_repo(REPO, {"v1": make_standin(tmp_path / "a")}, trusted=True)
    seen = []
    real = kernels.get_kernel

    def spy(*args, **kwargs):
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "get_kernel", spy)
    resolve_kernel(REPO)
    assert seen == [((), {"repo_id": REPO, "revision": shas["v1"], "trust_remote_code": False, "check_arch": True})]


# ------------------------------------------------------------ one load per artifact


def test_two_repo_ids_same_directory_load_once(tmp_path, monkeypatch):
    proj = make_standin(tmp_path / "k", op_schemas={"probe": "(Tensor x) -> Tensor"})
    link = tmp_path / "link"
    link.symlink_to(proj)
    monkeypatch.setenv("LOCAL_KERNELS", f"a/one={proj}:b/two={link}:c/three={tmp_path}/./k")
    mods = {resolve_kernel(r).module for r in ("a/one", "b/two", "c/three")}
    mods.add(resolve_kernel({"path": str(link / "build")}).module)
    assert len(mods) == 1
    assert loads_of(proj) == 1
    assert resolve_kernel("b/two").shared_with.startswith("same build directory")


def test_copies_of_one_build_load_once(tmp_path, monkeypatch):
    """A local build, the same build in the offline cache and on a Hub mirror: one import."""
    proj = make_standin(tmp_path / "k", op_schemas={"probe": "(Tensor x) -> Tensor"})
    copy = tmp_path / "copy"
    shutil.copytree(proj, copy)
    first = resolve_kernel({"path": str(proj)})
    second = resolve_kernel({"path": str(copy)})
    assert second.module is first.module
    assert "same build id" in second.shared_with

    hub = FakeHub().install(monkeypatch)
    mirror = tmp_path / "mirror"
    shutil.copytree(proj, mirror)
    hub.add_repo("mirror/static-fp8-mlp", {"v1": mirror}, trusted=True)
    assert resolve_kernel("mirror/static-fp8-mlp").module is first.module
    assert loads_of(proj) == 1 and loads_of(copy) == 0 and loads_of(mirror) == 0


def test_without_the_registry_a_second_copy_would_be_registered_twice(tmp_path):
    """Why de-duplication matters: kernels 0.17 imports a copy at another path again, and
    the op namespace cannot be registered twice. From 0.18 kernels reuses the module of a
    build id it already imported; the registry's answer must be the same either way."""
    import kernels
    from packaging.version import Version

    proj = make_standin(tmp_path / "k", op_schemas={"probe": "(Tensor x) -> Tensor"})
    copy = tmp_path / "copy"
    shutil.copytree(proj, copy)
    first = kernels.get_local_kernel(repo_path=proj)
    if Version(kernels.__version__) < Version("0.18"):
        with pytest.raises(RuntimeError):
            kernels.get_local_kernel(repo_path=copy)
    else:
        assert kernels.get_local_kernel(repo_path=copy) is first
    # the registry still resolves both, to the first module
    assert resolve_kernel({"path": str(copy)}).module is resolve_kernel({"path": str(proj)}).module


def test_same_id_different_files_warns_and_reuses(tmp_path):
    proj = make_standin(tmp_path / "k", kernel_id="_static_fp8_mlp_standin_same_id_x1")
    other = make_standin(tmp_path / "other", kernel_id="_static_fp8_mlp_standin_same_id_x1", extra="VARIANT_B = True")
    a = resolve_kernel({"path": str(proj)})
    with pytest.warns(RuntimeWarning, match="same id/op namespace"):
        b = resolve_kernel({"path": str(other)})
    assert b.module is a.module and not hasattr(a.module, "VARIANT_B")


def test_module_imported_directly_is_reused(tmp_path):
    """A build imported by a plain loader (like tests/kernel_loader.py) under another name."""
    import importlib.util

    proj = make_standin(tmp_path / "k", op_schemas={"probe": "(Tensor x) -> Tensor"})
    vdir = variant_dir(proj)
    name = "directly_loaded_kernel_" + vdir.parent.parent.parent.name
    spec = importlib.util.spec_from_file_location(name, vdir / "__init__.py", submodule_search_locations=[str(vdir)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    rk = resolve_kernel({"path": str(proj)})
    assert rk.module is mod
    assert loads_of(proj) == 1


def test_foreign_namespace_registration_is_refused(tmp_path):
    import torch

    proj = make_standin(tmp_path / "k", kernel_id="_static_fp8_mlp_standin_foreign_ns")
    lib = torch.library.Library("_static_fp8_mlp_standin_foreign_ns", "DEF")  # noqa: F841
    lib.define("probe(Tensor x) -> Tensor")
    with pytest.raises(DuplicateArtifactError, match="already registered"):
        resolve_kernel({"path": str(proj)})


def test_resolved_from_module_registers_the_artifact(tmp_path):
    import importlib.util

    proj = make_standin(tmp_path / "k")
    vdir = variant_dir(proj)
    name = "mod_for_wrap_" + vdir.parent.parent.parent.name
    spec = importlib.util.spec_from_file_location(name, vdir / "__init__.py", submodule_search_locations=[str(vdir)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    rk = resolved_from_module(mod)
    assert rk.source == "module" and rk.variant_path == vdir.resolve() and rk.archs
    assert resolve_kernel({"path": str(proj)}).module is mod


# ------------------------------------------------------------------ the real build


def test_real_build_via_path_local_kernels_and_offline_cache(request, tmp_path, monkeypatch):
    build = real_build_dir(request)
    a = resolve_kernel({"path": str(build)})
    assert a.name == "static-fp8-mlp" and a.ops_namespace and a.archs
    monkeypatch.setenv("LOCAL_KERNELS", f"{REPO}={build}")
    b = resolve_kernel(REPO)
    assert b.source == "local-override" and b.module is a.module
    monkeypatch.delenv("LOCAL_KERNELS")
    cache = tmp_path / "cache"
    variant = a.variant_path
    src = tmp_path / "src"
    (src / variant.name).parent.mkdir(parents=True)
    shutil.copytree(variant, src / variant.name, ignore=shutil.ignore_patterns("__pycache__"))
    sha = make_offline_cache(cache, REPO, src)
    use_offline_cache(monkeypatch, cache)
    c = resolve_kernel(REPO)
    assert c.source == "hub-cache" and c.revision == sha
    assert c.module is a.module  # the same artifact is never imported twice


# ------------------------------------------------------------ kernels releases


def test_kernels_internals_found_in_this_release():
    """kernels_api finds the private modules the loader uses, in whichever layout this
    kernels release has (scripts/kernels_compat.sh runs this under 0.17.2 and 0.18.3)."""
    from static_fp8_mlp_registry.kernels_api import internal, loaded_kernels, metadata_validator

    resolver = internal("resolver")
    assert all(hasattr(resolver, n) for n in ("HubResolver", "HubCacheResolver", "resolve_local_kernel", "LocalKernel"))
    assert hasattr(internal("deps"), "resolve_kernel_tree")
    assert isinstance(loaded_kernels(), dict)
    assert len(metadata_validator(check_arch=True).validators) == len(metadata_validator(check_arch=False).validators) + 1


def test_unknown_kernels_layout_fails_loudly(tmp_path, monkeypatch):
    """A kernels release that keeps its resolvers elsewhere must not load a build
    unchecked: resolution fails and says which module it looked for."""
    import kernels

    from static_fp8_mlp_registry import kernels_api
    from static_fp8_mlp_registry.errors import KernelResolutionError

    with pytest.raises(ModuleNotFoundError, match=rf"kernels {kernels.__version__} has no module 'no_such_module'"):
        kernels_api.internal("no_such_module")
    proj = make_standin(tmp_path / "k")
    monkeypatch.setattr(kernels_api, "_PREFIXES", ("kernels.moved_elsewhere.",))
    with pytest.raises(KernelResolutionError, match=r"has no module 'resolver'.*0\.17\.2 to 0\.19"):
        resolve_kernel({"path": str(proj)})
