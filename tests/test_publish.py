"""`static-fp8-mlp publish`: the exact Hub request sequence (HfApi methods recorded; no
local server accepts uploads to kernel repos), the git/mirror target, dry runs, and
refusal of everything validate rejects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

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

A = "torch212-cxx11-cu130-x86_64-linux"
B = "torch213-cxx11-cu130-x86_64-linux"
C = "torch212-cxx11-cu126-x86_64-linux"
REPO_ID = "acme/static-fp8-mlp"


class HubRecorder:
    """Stands in for the Hub behind huggingface_hub.HfApi: records every call in order
    and keeps a tiny model of branches/files so list calls answer consistently."""

    def __init__(self, branches: dict[str, list[str]] | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.branches = {"main": [".gitattributes"]} if branches is None else branches
        self.heads = {b: f"sha-{b}-0" for b in self.branches}
        self.instances: list[dict] = []

    def install(self, monkeypatch):
        import huggingface_hub
        from huggingface_hub.hf_api import GitRefInfo, GitRefs

        rec = self
        orig_init = huggingface_hub.HfApi.__init__

        def init(api_self, *args, **kwargs):
            rec.instances.append(dict(kwargs))
            orig_init(api_self, *args, **kwargs)

        def create_repo(api_self, repo_id, **kw):
            rec.calls.append(("create_repo", dict(repo_id=repo_id, **kw)))
            return f"https://hub.invalid/kernels/{repo_id}"

        def list_repo_refs(api_self, repo_id, **kw):
            rec.calls.append(("list_repo_refs", dict(repo_id=repo_id, **kw)))
            branches = [GitRefInfo(name=b, ref=f"refs/heads/{b}", target_commit=rec.heads[b]) for b in rec.branches]
            return GitRefs(branches=branches, converts=[], tags=[])

        def create_branch(api_self, repo_id, **kw):
            rec.calls.append(("create_branch", dict(repo_id=repo_id, **kw)))
            src = kw.get("revision") or "main"
            rec.branches[kw["branch"]] = list(rec.branches[src])
            rec.heads[kw["branch"]] = rec.heads[src]

        def list_repo_files(api_self, repo_id, **kw):
            rec.calls.append(("list_repo_files", dict(repo_id=repo_id, **kw)))
            rev = kw["revision"]
            branch = next(b for b, h in rec.heads.items() if h == rev or b == rev)
            return list(rec.branches[branch])

        def create_commit(api_self, repo_id, operations, **kw):
            ops = list(operations)
            rec.calls.append(("create_commit", dict(repo_id=repo_id, operations=ops, **kw)))
            branch = kw["revision"]
            files = set(rec.branches[branch])
            for op in ops:
                if type(op).__name__ == "CommitOperationDelete":
                    files.discard(op.path_in_repo)
                else:
                    files.add(op.path_in_repo)
            rec.branches[branch] = sorted(files)
            n = int(rec.heads[branch].rsplit("-", 1)[1]) + 1
            rec.heads[branch] = f"sha-{branch}-{n}"
            return SimpleNamespace(oid=rec.heads[branch])

        monkeypatch.setattr(huggingface_hub.HfApi, "__init__", init)
        for name, fn in dict(
            create_repo=create_repo,
            list_repo_refs=list_repo_refs,
            create_branch=create_branch,
            list_repo_files=list_repo_files,
            create_commit=create_commit,
        ).items():
            monkeypatch.setattr(huggingface_hub.HfApi, name, fn)
        return self

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def cli(*argv: str) -> int:
    from static_fp8_mlp_cli.__main__ import main

    return main(list(argv))


def _ops(call) -> tuple[list[str], list[str]]:
    adds = [op.path_in_repo for op in call["operations"] if type(op).__name__ == "CommitOperationAdd"]
    dels = [op.path_in_repo for op in call["operations"] if type(op).__name__ == "CommitOperationDelete"]
    return adds, dels


def _files_of(build: Path, *variants: str) -> list[str]:
    out = []
    for v in variants:
        for p in (build / v).rglob("*"):
            if p.is_file():
                out.append(f"build/{v}/{p.relative_to(build / v).as_posix()}")
    return sorted(out)


@pytest.fixture
def two_variant_build(tmp_path):
    proj, build = make_project(tmp_path)
    make_variant(build, A)
    make_variant(build, C)
    return build


def test_hub_new_branch_request_sequence(two_variant_build, monkeypatch, capsys):
    build = two_variant_build
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    rec = HubRecorder({"main": [".gitattributes", "README.md", "build/stale/x.py"]}).install(monkeypatch)

    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", "present", "--no-import")
    assert rc == 0, capsys.readouterr()
    assert rec.instances[-1] == {"endpoint": "https://hub.invalid", "token": "hf_test_token"}
    assert rec.names() == [
        "create_repo",
        "list_repo_refs",
        "create_branch",
        "list_repo_refs",
        "list_repo_files",
        "create_commit",
        "create_commit",
    ]
    calls = [c[1] for c in rec.calls]
    assert calls[0] == {"repo_id": REPO_ID, "repo_type": "kernel", "exist_ok": True, "private": False}
    assert calls[1]["repo_type"] == "kernel"
    assert calls[2] == {"repo_id": REPO_ID, "repo_type": "kernel", "branch": "v1", "revision": "main"}
    assert calls[4] == {"repo_id": REPO_ID, "repo_type": "kernel", "revision": "sha-main-0"}

    build_commit = calls[5]
    assert build_commit["repo_type"] == "kernel"
    assert build_commit["revision"] == "v1"
    assert build_commit["parent_commit"] == "sha-main-0"  # the head we listed files of
    adds, dels = _ops(build_commit)
    assert sorted(adds) == _files_of(build, A, C)
    # a new branch holds only this build: build/ files inherited from main go
    assert dels == ["build/stale/x.py"]
    # the uploaded bytes are the local files
    add = next(op for op in build_commit["operations"] if op.path_in_repo.endswith("metadata.json"))
    assert Path(add.path_or_fileobj).read_bytes() == (build / Path(add.path_in_repo).relative_to("build")).read_bytes()

    card_commit = calls[6]
    assert card_commit["revision"] == "main" and card_commit["repo_type"] == "kernel"
    (card_op,) = card_commit["operations"]
    assert card_op.path_in_repo == "README.md"
    card = card_op.path_or_fileobj.decode()
    assert card.startswith("---\nlibrary_name: kernels\nlicense: apache-2.0\n")
    assert f'get_kernel("{REPO_ID}", version=1' in card
    for name in ENDPOINTS:
        assert f"`{name}`" in card
    from static_fp8_mlp_cli.validate import _arch_key
    from test_release_support import expected_archs

    for variant, torch_v, cuda_v in ((A, "2.12", "13.0"), (C, "2.12", "12.6")):
        archs = ", ".join(sorted(expected_archs(variant), key=_arch_key))
        assert f"`{variant}` | {torch_v} | {cuda_v} | {archs} |" in card
    assert "Development build" not in card
    # the card's fusion_config example is one the registry accepts, all entries at this repo
    block = card[card.index("fusion_config = {"):]
    block = block[: block.index("```")]
    scope: dict = {}
    exec(block, scope)
    from static_fp8_mlp_registry import parse_fusion_config

    families = parse_fusion_config(scope["fusion_config"]).families()
    assert set(families) == {"input_quant", "gated_mlp", "dense_gelu_mlp"}
    assert {spec.repo_id for spec in families.values()} == {REPO_ID}
    assert rec.branches["v1"] == sorted([".gitattributes", "README.md"] + _files_of(build, A, C))


def test_hub_existing_branch_replaces_only_uploaded_variants(tmp_path, monkeypatch, capsys):
    proj, build = make_project(tmp_path)
    make_variant(build, A)
    existing = [
        ".gitattributes",
        f"build/{A}/__init__.py",
        f"build/{A}/_static_fp8_mlp_cuda_old.abi3.so",  # stale: replaced by this upload
        f"build/{B}/__init__.py",  # another variant: kept
        f"build/{B}/metadata.json",
    ]
    rec = HubRecorder({"main": [".gitattributes", "README.md"], "v1": existing}).install(monkeypatch)
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import")
    assert rc == 0, capsys.readouterr()
    assert rec.names() == ["create_repo", "list_repo_refs", "list_repo_files", "create_commit", "create_commit"]
    calls = [c[1] for c in rec.calls]
    assert calls[2]["revision"] == "sha-v1-0"
    adds, dels = _ops(calls[3])
    assert dels == [f"build/{A}/_static_fp8_mlp_cuda_old.abi3.so"]
    assert sorted(adds) == _files_of(build, A)
    assert calls[3]["parent_commit"] == "sha-v1-0"
    card = calls[4]["operations"][0].path_or_fileobj.decode()
    assert f"`{B}`" in card and "earlier upload" in card
    assert f"build/{B}/metadata.json" in rec.branches["v1"]


def test_hub_dry_run_makes_no_requests(two_variant_build, monkeypatch, capsys):
    rec = HubRecorder().install(monkeypatch)
    rc = cli("publish", str(two_variant_build), "--repo-id", REPO_ID, "--variants", "present", "--no-import", "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0
    assert rec.calls == []
    assert "publish plan (dry run)" in out
    assert "create_repo('acme/static-fp8-mlp', repo_type='kernel', exist_ok=True)" in out
    assert f"+ build/{A}/metadata.json" in out
    assert "README.md" in out and "library_name: kernels" in out


def test_hub_refuses_development_builds(tmp_path, monkeypatch, capsys):
    proj, build = make_project(tmp_path)
    make_variant(build, A, new_glibc=True)
    rec = HubRecorder().install(monkeypatch)
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--dev-build")
    err = capsys.readouterr().err
    assert rc == 2
    assert "development build" in err
    assert rec.calls == []


def test_repo_id_defaults_to_build_toml(two_variant_build, monkeypatch, capsys):
    rec = HubRecorder().install(monkeypatch)
    rc = cli("publish", str(two_variant_build), "--variants", "present", "--no-import")
    assert rc == 0
    assert rec.calls[0][1]["repo_id"] == "static-fp8-mlp/static-fp8-mlp"


# ---- bad builds: refused by publish (Hub and git targets) with nothing written


BAD_PUBLISH = {
    "missing_endpoint": lambda tmp: dict(endpoints=[n for n in ENDPOINTS if n != "fp8_gelu_mlp_bf16"]),
    "wrong_schema": lambda tmp: dict(
        schema_overrides={"channel_scale_quantize_fp8_static_bf16": "channel_scale_quantize_fp8_static_bf16("
                          "Tensor! out, Tensor input, Tensor scale, Tensor channel_scale) -> ()"}
    ),
    "metadata_lacks_arch": lambda tmp: dict(archs=["8.9", "10.0a", "12.0"]),
    "no_abi3_tag": lambda tmp: dict(abi3_tag=False),
    "non_abi3_symbol": lambda tmp: dict(bad_abi=True),
    "disallowed_library": lambda tmp: dict(link_libs=[make_dummy_lib(tmp / "libs")]),
    "not_manylinux": lambda tmp: dict(new_glibc=True),
}


@pytest.mark.parametrize("case", sorted(BAD_PUBLISH))
def test_publish_refuses_bad_builds(tmp_path, monkeypatch, capsys, case):
    proj, build = make_project(tmp_path)
    make_variant(build, A, **BAD_PUBLISH[case](tmp_path))
    rec = HubRecorder().install(monkeypatch)
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import")
    captured = capsys.readouterr()
    assert rc == 2
    assert "refusing to publish" in captured.err
    assert "FAIL" in captured.out
    assert rec.calls == []
    mirror = tmp_path / "mirror"
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--mirror-root", str(mirror))
    assert rc == 2
    assert not mirror.exists()


def test_publish_subprocess_refuses_bad_local_variant_with_import_check(tmp_path):
    """As users run it: the CLI in its own process, default checks (import included)."""
    local = local_variant_name()
    if local is None:
        pytest.skip("needs a CUDA build of torch")
    proj, build = make_project(tmp_path)
    make_variant(build, local, endpoints=[n for n in ENDPOINTS if n != "fp8_swiglu_mlp_bf16"])
    mirror = tmp_path / "mirror"
    proc = run_cli("publish", str(build), "--repo-id", REPO_ID, "--variants", "local", "--mirror-root", str(mirror))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refusing to publish" in proc.stderr and "fp8_swiglu_mlp_bf16" in proc.stderr
    assert not mirror.exists()


# ---- git / mirror target


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_git_target_new_repo_then_replace_one_variant(tmp_path, capsys):
    proj, build = make_project(tmp_path)
    make_variant(build, A)
    make_variant(build, C)
    mirror = tmp_path / "mirror"
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", "present", "--no-import", "--mirror-root", str(mirror))
    assert rc == 0, capsys.readouterr()
    repo = mirror / "kernels" / "acme" / "static-fp8-mlp"
    assert git(repo, "rev-parse", "--is-bare-repository").strip() == "true"
    assert sorted(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()) == ["main", "v1"]
    assert sorted(git(repo, "ls-tree", "-r", "--name-only", "v1").split()) == _files_of(build, A, C)
    assert git(repo, "ls-tree", "-r", "--name-only", "main").split() == ["README.md"]
    card = git(repo, "show", "main:README.md")
    assert f"`{A}`" in card and f"`{C}`" in card
    # the blobs are the built files, byte for byte
    so = next((build / A).glob("*.so"))
    blob = subprocess.run(["git", "cat-file", "blob", f"v1:build/{A}/{so.name}"], cwd=repo, capture_output=True, check=True).stdout
    assert blob == so.read_bytes()

    # a second build of A only (new rev => new .so name) replaces A and keeps C
    proj2, build2 = make_project(tmp_path / "second")
    make_variant(build2, A, rev="def5678")
    rc = cli("publish", str(build2), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--git", str(repo))
    out = capsys.readouterr().out
    assert rc == 0, out
    files = sorted(git(repo, "ls-tree", "-r", "--name-only", "v1").split())
    assert files == sorted(_files_of(build2, A) + _files_of(build, C))
    assert f"build/{A}/_static_fp8_mlp_cuda_abc1234.abi3.so" not in files
    assert "1 stale removed" in out and f"kept variants already on v1: {C}" in out
    assert len(git(repo, "rev-list", "v1").split()) == 3  # initial, first build, second build
    card = git(repo, "show", "main:README.md")
    assert f"`{C}`" in card and "earlier upload" in card

    # publishing the same build again changes nothing on v1
    head = git(repo, "rev-parse", "v1").strip()
    rc = cli("publish", str(build2), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--git", str(repo))
    assert rc == 0
    assert git(repo, "rev-parse", "v1").strip() == head
    assert "unchanged" in capsys.readouterr().out


def test_git_new_branch_drops_build_files_inherited_from_main(tmp_path, capsys):
    repo = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True, capture_output=True)
    (work / "build" / "old").mkdir(parents=True)
    (work / "build" / "old" / "x.py").write_text("x = 1\n")
    (work / "notes.txt").write_text("keep me\n")
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", *env, "add", "."], cwd=work, check=True)
    subprocess.run(["git", *env, "commit", "-qm", "seed"], cwd=work, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=work, check=True, capture_output=True)

    proj, build = make_project(tmp_path)
    make_variant(build, A)
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--git", str(repo))
    assert rc == 0, capsys.readouterr()
    files = sorted(git(repo, "ls-tree", "-r", "--name-only", "v1").split())
    assert files == sorted(["notes.txt"] + _files_of(build, A))
    assert git(repo, "merge-base", "main", "v1").strip() == git(repo, "rev-parse", "main~1").strip()


def test_git_dry_run_lists_exact_deletes_and_writes_nothing(tmp_path, capsys):
    proj, build = make_project(tmp_path)
    make_variant(build, A)
    mirror = tmp_path / "mirror"
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--mirror-root", str(mirror), "--dry-run")
    assert rc == 0
    assert not mirror.exists()
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--mirror-root", str(mirror))
    assert rc == 0
    repo = mirror / "kernels" / "acme" / "static-fp8-mlp"
    head = git(repo, "rev-parse", "v1").strip()
    proj2, build2 = make_project(tmp_path / "second")
    make_variant(build2, A, rev="fff0000")
    capsys.readouterr()
    rc = cli("publish", str(build2), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--mirror-root", str(mirror), "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0
    assert f"- build/{A}/_static_fp8_mlp_cuda_abc1234.abi3.so" in out
    assert f"+ build/{A}/_static_fp8_mlp_cuda_fff0000.abi3.so" in out
    assert "(existing;" in out
    assert git(repo, "rev-parse", "v1").strip() == head


def test_git_target_accepts_development_build_and_marks_card(tmp_path, capsys):
    proj, build = make_project(tmp_path)
    make_variant(build, A, new_glibc=True)
    mirror = tmp_path / "mirror"
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--dev-build", "--mirror-root", str(mirror))
    assert rc == 0, capsys.readouterr()
    card = git(mirror / "kernels" / "acme" / "static-fp8-mlp", "show", "main:README.md")
    assert "Development build" in card


def test_publish_help_lists_flags():
    proc = run_cli("publish", "--help")
    assert proc.returncode == 0
    for flag in ("--repo-id", "--git", "--mirror-root", "--dry-run", "--variants", "--dev-build", "--private"):
        assert flag in proc.stdout


def test_hub_permission_error_is_a_clear_cli_error(two_variant_build, monkeypatch, capsys):
    import importlib

    import huggingface_hub
    import huggingface_hub.errors as hf_errors
    from huggingface_hub.errors import HfHubHTTPError

    # whichever httpx flavour this huggingface_hub is built on
    httpx2 = importlib.import_module(hf_errors.Response.__module__.split(".")[0])

    rec = HubRecorder().install(monkeypatch)

    def forbidden(api_self, repo_id, **kw):
        rec.calls.append(("create_repo", dict(repo_id=repo_id, **kw)))
        request = httpx2.Request("POST", "https://hub.invalid/api/repos/create")
        raise HfHubHTTPError("403 Forbidden", response=httpx2.Response(403, request=request))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", forbidden)
    rc = cli("publish", str(two_variant_build), "--repo-id", REPO_ID, "--variants", "present", "--no-import")
    err = capsys.readouterr().err
    assert rc == 2
    assert "no write access" in err and "403" in err
    assert rec.names() == ["create_repo"]  # nothing after the refusal


def test_git_target_never_writes_into_an_enclosing_repository(tmp_path, capsys):
    outer = tmp_path / "outer"
    (outer / "mirror").mkdir(parents=True)
    (outer / "mirror" / "notes.txt").write_text("not a repo\n")
    subprocess.run(["git", "init", "-q", str(outer)], check=True)
    proj, build = make_project(tmp_path)
    make_variant(build, A)
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--git", str(outer / "mirror"))
    assert rc == 2
    assert "inside" in capsys.readouterr().err
    assert git(outer, "for-each-ref").strip() == ""  # no branch was written
    # an existing empty directory is fine: it becomes a bare repository
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = cli("publish", str(build), "--repo-id", REPO_ID, "--variants", A, "--no-import", "--git", str(empty))
    assert rc == 0
    assert git(empty, "rev-parse", "--is-bare-repository").strip() == "true"
