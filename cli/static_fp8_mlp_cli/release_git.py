"""Commit a publish plan into a plain git repository (the layout a Hub mirror serves).

A self-hosted mirror such as olah serves `<mirrors-path>/kernels/<owner>/<name>` as the
kernel repo `<owner>/<name>`: its branches are the Hub branches, so `v1` holding
`build/<variant>/...` is what `get_kernel(..., version=1)` loads. This module writes
that with git plumbing only (hash-object, a private index, write-tree, commit-tree,
update-ref with the old value as a compare-and-swap), so it works on bare and non-bare
repositories alike and never touches a work tree or the user's index.

It follows the Hub's semantics step for step (see publish.py): a new repository starts
with an empty initial commit on `main`; a missing version branch is created from
`main`; the version branch then gets one commit that replaces the uploaded variants
(a new branch keeps no other `build/` files, an existing one keeps other variants);
finally the card is committed to `main` as README.md.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError

_ZERO = "0" * 40
_IDENTITY = {
    "GIT_AUTHOR_NAME": "static-fp8-mlp publish",
    "GIT_AUTHOR_EMAIL": "publish@static-fp8-mlp.invalid",
    "GIT_COMMITTER_NAME": "static-fp8-mlp publish",
    "GIT_COMMITTER_EMAIL": "publish@static-fp8-mlp.invalid",
}


class GitRepo:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._env = dict(os.environ)
        for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
            self._env.pop(k, None)
        probe = subprocess.run(
            ["git", "var", "GIT_COMMITTER_IDENT"], cwd=self.path if self.path.exists() else None,
            capture_output=True, text=True, env=self._env,
        )
        if probe.returncode != 0:
            for k, v in _IDENTITY.items():
                self._env.setdefault(k, v)

    def git(self, *args: str, input: str | None = None, env: dict | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=input,
            capture_output=True,
            text=True,
            env={**self._env, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise CliError(f"git {' '.join(args[:3])} in {self.path} failed: {proc.stderr.strip()}")
        return proc.stdout

    @classmethod
    def open_or_init(cls, path: Path, *, create: bool = True) -> "GitRepo":
        path = Path(path).absolute()
        empty_dir = path.is_dir() and not any(path.iterdir())
        if not path.exists() or empty_dir:
            if not create:
                raise CliError(f"{path} does not exist")
            path.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, capture_output=True)
            subprocess.run(
                ["git", "symbolic-ref", "HEAD", "refs/heads/main"], cwd=path, check=True, capture_output=True
            )
        if not path.is_dir():
            raise CliError(f"{path} is not a directory")
        repo = cls(path)
        # DIR must *be* a repository (bare, or with .git in it), not a directory that
        # happens to lie inside one: we would rewrite the enclosing repo's branches.
        git_dir = repo.git("rev-parse", "--absolute-git-dir", check=False).strip()
        if not git_dir:
            raise CliError(f"{path} exists but is not a git repository (use a new or empty directory)")
        if Path(git_dir).resolve() not in (path.resolve(), (path / ".git").resolve()):
            raise CliError(
                f"{path} is not a git repository itself but lies inside {git_dir}; "
                "use a new or empty directory (it is created as a bare repository)"
            )
        return repo

    @property
    def is_bare(self) -> bool:
        return self.git("rev-parse", "--is-bare-repository").strip() == "true"

    def checked_out_branch(self) -> str | None:
        if self.is_bare:
            return None
        out = self.git("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        return out or None

    def head(self, branch: str) -> str | None:
        out = self.git("rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}", check=False).strip()
        return out or None

    def branches(self) -> list[str]:
        out = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return [b for b in out.splitlines() if b]

    def files(self, commit: str) -> list[str]:
        out = self.git("ls-tree", "-r", "-z", "--name-only", commit)
        return [p for p in out.split("\0") if p]

    def read(self, commit: str, path: str) -> bytes | None:
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{path}"], cwd=self.path, capture_output=True, env=self._env
        )
        return proc.stdout if proc.returncode == 0 else None

    def tree_of(self, commit: str) -> str:
        return self.git("rev-parse", f"{commit}^{{tree}}").strip()

    def commit(
        self,
        *,
        parent: str | None,
        adds: dict[str, Path | bytes],
        deletes: list[str],
        message: str,
    ) -> tuple[str, bool]:
        """Commit parent's tree minus `deletes` plus `adds`; returns (sha, changed)."""
        with tempfile.TemporaryDirectory() as tmp:
            # Build the new tree in a private, initially empty index from the full entry
            # list (parent's entries minus deletes and overwritten paths, plus adds):
            # `update-index --index-info` works in bare repositories, removals don't.
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            entries: dict[str, str] = {}
            if parent:
                listing = self.git("ls-tree", "-r", "-z", "--full-tree", parent)
                for item in filter(None, listing.split("\0")):
                    meta, path = item.split("\t", 1)
                    mode, _type, sha = meta.split()
                    entries[path] = f"{mode} {sha}"
            for path in deletes:
                entries.pop(path, None)
            for path_in_repo, src in sorted(adds.items()):
                if isinstance(src, bytes):
                    blob_file = Path(tmp) / "blob"
                    blob_file.write_bytes(src)
                    src = blob_file
                sha = self.git("hash-object", "-w", "--no-filters", str(src)).strip()
                # The Hub keeps no file modes; neither do we.
                entries[path_in_repo] = f"100644 {sha}"
            self.git("read-tree", "--empty", env=env)
            if entries:
                lines = "".join(f"{v}\t{k}\0" for k, v in sorted(entries.items()))
                self.git("update-index", "--add", "-z", "--index-info", input=lines, env=env)
            tree = self.git("write-tree", env=env).strip()
        if parent and self.tree_of(parent) == tree:
            return parent, False
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args[2:2] = ["-p", parent]
        return self.git(*args).strip(), True

    def set_branch(self, branch: str, new: str, old: str | None) -> None:
        self.git("update-ref", f"refs/heads/{branch}", new, old or _ZERO)


@dataclass
class GitOutcome:
    repo: Path
    branch: str
    branch_created: bool
    build_commit: str | None
    card_commit: str | None
    added: list[str]
    deleted: list[str]
    kept_variants: list[str]


def plan_deletes(existing: list[str], uploading: set[str], variants: list[str], new_branch: bool) -> list[str]:
    """Files to delete from the version branch: kernel-builder's rule.

    A new branch holds only this build (every `build/` file not uploaded goes); an
    existing branch loses only stale files inside the variants being replaced.
    """
    prefixes = ["build/"] if new_branch else [f"build/{v}/" for v in variants]
    return sorted(f for f in existing if any(f.startswith(p) for p in prefixes) and f not in uploading)


def kept_variants(existing: list[str], deletes: list[str], uploading_variants: list[str]) -> list[str]:
    remaining = set(existing) - set(deletes)
    names = {f.split("/")[1] for f in remaining if f.startswith("build/") and f.count("/") >= 2}
    return sorted(names - set(uploading_variants))


def publish_to_git(
    repo_dir: Path,
    *,
    branch: str,
    files: dict[str, Path],
    variants: list[str],
    card_for: "callable",
    message: str,
    dry_run: bool = False,
) -> GitOutcome:
    """Commit `files` (path_in_repo -> local file) to `branch` and the card to `main`.

    `card_for(kept_variants, repo)` renders README.md once the surviving variants are known.
    """
    if dry_run and not Path(repo_dir).exists():
        deletes: list[str] = []
        return GitOutcome(Path(repo_dir), branch, True, None, None, sorted(files), deletes, [])
    repo = GitRepo.open_or_init(Path(repo_dir), create=not dry_run)
    checked_out = repo.checked_out_branch()

    main = repo.head("main")
    if main is None and not dry_run:
        main, _ = repo.commit(parent=None, adds={}, deletes=[], message="initial commit")
        repo.set_branch("main", main, None)

    head = repo.head(branch)
    created = head is None
    base = head or main
    existing = repo.files(base) if base else []
    deletes = plan_deletes(existing, set(files), variants, created)
    kept = kept_variants(existing, deletes, variants)
    if dry_run:
        return GitOutcome(repo.path, branch, created, None, None, sorted(files), deletes, kept)

    # A new branch starts at main; it appears only once its build commit exists.
    parent = main if created else head
    build_commit, changed = repo.commit(parent=parent, adds=dict(files), deletes=deletes, message=message)
    if created:
        repo.set_branch(branch, build_commit, None)
        changed = True
    elif changed:
        repo.set_branch(branch, build_commit, head)

    card = card_for(kept, repo)
    main_now = repo.head("main")
    card_commit, card_changed = repo.commit(
        parent=main_now, adds={"README.md": card.encode()}, deletes=[], message="Update kernel card"
    )
    if card_changed:
        repo.set_branch("main", card_commit, main_now)
    if checked_out in ("main", branch):
        import sys

        print(
            f"warning: {repo.path} has {checked_out} checked out; its work tree now lags the branch "
            "(use a bare repository for a mirror)",
            file=sys.stderr,
        )
    return GitOutcome(
        repo.path,
        branch,
        created,
        build_commit if changed else None,
        card_commit if card_changed else None,
        sorted(files),
        deletes,
        kept,
    )
