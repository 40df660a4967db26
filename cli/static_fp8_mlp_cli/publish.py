"""`static-fp8-mlp publish BUILD_DIR --repo-id OWNER/NAME`: validate, then publish.

Refuses anything `validate` rejects (same checks, same `--variants`). Then, on the Hub
(huggingface_hub >= 2.3 uploads to `kernel` repos; HF_ENDPOINT / HF_TOKEN are read),
the same sequence as `kernel-builder upload`:

1. `create_repo(repo_id, repo_type="kernel", exist_ok=True)`;
2. `list_repo_refs`; `create_branch("v<version>")` from `main` when it is missing;
3. one `create_commit` on the version branch (with `parent_commit` = the head we listed)
   that adds every file of the selected variants under `build/<variant>/` and deletes
   stale files: on a new branch every `build/` file not uploaded, on an existing
   branch only stale files inside the replaced variants (other variants stay);
4. one `create_commit` of README.md (the card) on `main`, after the build landed.

`--git DIR` commits the same trees to a git repository instead (a Hub mirror's layout;
created bare when missing); `--mirror-root ROOT` means `--git ROOT/kernels/OWNER/NAME`.
`--dry-run` prints the plan and changes nothing. A development build (`--dev-build`,
not manylinux) only goes to a git target, never to the Hub.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CliError
from .validate import add_common_arguments, is_bytecode, validate_and_print

HELP = "Validate a build, then publish its variants to a Hub kernel repo (or a git mirror)."

MAIN_BRANCH = "main"
COMMIT_BATCH = 1000  # kernel-builder's BUILD_COMMIT_BATCH_SIZE
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Plan:
    repo_id: str
    branch: str
    variants: dict[str, list[str]]  # variant -> archs
    files: dict[str, Path]  # path_in_repo -> local file
    dev_build: bool
    spec: object
    notes: list[str] = field(default_factory=list)

    def card(self, kept: list[str] = ()) -> str:
        from .release_card import render_card

        return render_card(
            spec=self.spec,
            repo_id=self.repo_id,
            variants=self.variants,
            kept_variants=list(kept),
            dev_build=self.dev_build,
        )

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


def make_plan(report, repo_id: str) -> Plan:
    files: dict[str, Path] = {}
    variants: dict[str, list[str]] = {}
    for v in report.selected:
        vdir = (report.build_dir / v.name).absolute()
        variants[v.name] = v.archs
        for p in sorted(vdir.rglob("*")):
            rel = p.relative_to(vdir)
            if p.is_file() and not is_bytecode(rel):
                files[f"build/{v.name}/{rel.as_posix()}"] = p
    return Plan(
        repo_id=repo_id,
        branch=f"v{report.spec.version}",
        variants=variants,
        files=files,
        dev_build=report.is_dev,
        spec=report.spec,
    )


# ---------------------------------------------------------------------------------
# Hub


def make_hf_api():
    """HfApi for HF_ENDPOINT (default huggingface.co) with HF_TOKEN (else the stored login)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=os.environ.get("HF_TOKEN") or None)


def _check_hub_version() -> None:
    import huggingface_hub

    major, minor = (int(x) for x in huggingface_hub.__version__.split(".")[:2])
    if (major, minor) < (2, 3):
        raise CliError(
            f"huggingface_hub {huggingface_hub.__version__} cannot upload to kernel repos; "
            "install huggingface_hub>=2.3"
        )


def publish_to_hub(api, plan: Plan, *, private: bool = False, out=None) -> dict:
    """Run the upload sequence on `api` (an HfApi); returns a summary."""
    out = out or sys.stdout
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id, branch = plan.repo_id, plan.branch
    api.create_repo(repo_id, repo_type="kernel", exist_ok=True, private=private)

    refs = api.list_repo_refs(repo_id, repo_type="kernel")
    heads = {b.name: b.target_commit for b in refs.branches}
    created = branch not in heads
    if created:
        api.create_branch(repo_id, repo_type="kernel", branch=branch, revision=MAIN_BRANCH)
        refs = api.list_repo_refs(repo_id, repo_type="kernel")
        heads = {b.name: b.target_commit for b in refs.branches}
        if branch not in heads:
            raise CliError(f"created branch {branch} on {repo_id} but the Hub does not list it")
    head = heads[branch]
    existing = api.list_repo_files(repo_id, repo_type="kernel", revision=head)

    from .release_git import kept_variants, plan_deletes

    deletes = plan_deletes(existing, set(plan.files), list(plan.variants), created)
    kept = kept_variants(existing, deletes, list(plan.variants))
    operations = [CommitOperationDelete(path_in_repo=p) for p in deletes] + [
        CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(src)) for p, src in sorted(plan.files.items())
    ]
    batches = [operations[i : i + COMMIT_BATCH] for i in range(0, len(operations), COMMIT_BATCH)]
    parent = head
    for i, batch in enumerate(batches):
        suffix = f" (batch {i + 1}/{len(batches)})" if len(batches) > 1 else ""
        info = api.create_commit(
            repo_id,
            batch,
            commit_message=f"Upload {len(plan.variants)} build variant(s) of {plan.spec.name} v{plan.spec.version}{suffix}",
            repo_type="kernel",
            revision=branch,
            parent_commit=parent,
        )
        parent = getattr(info, "oid", None) or None
    print(f"uploaded {len(plan.files)} files ({len(deletes)} stale removed) to {repo_id}@{branch}", file=out)

    card = plan.card(kept)
    api.create_commit(
        repo_id,
        [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode())],
        commit_message="Update kernel card",
        repo_type="kernel",
        revision=MAIN_BRANCH,
    )
    print(f"card (README.md) updated on {repo_id}@{MAIN_BRANCH}", file=out)
    return {"branch_created": created, "deleted": deletes, "kept_variants": kept}


# ---------------------------------------------------------------------------------


def _print_plan(plan: Plan, target: str, deletes: list[str] | None, kept: list[str], created: bool | None) -> None:
    mb = plan.total_bytes / 1e6
    print(f"publish plan (dry run): {plan.repo_id}, branch {plan.branch}, target {target}")
    if plan.dev_build:
        print("  development build: only a git target accepts it")
    step = 1
    if target.startswith("hub"):
        print(f"  {step}. create_repo({plan.repo_id!r}, repo_type='kernel', exist_ok=True)")
        step += 1
        print(f"  {step}. create branch {plan.branch} from {MAIN_BRANCH} if it is missing")
    else:
        state = "new" if created else "existing" if created is not None else "new or existing"
        print(f"  {step}. branch {plan.branch} ({state}; a new one starts from {MAIN_BRANCH})")
    step += 1
    print(
        f"  {step}. one commit on {plan.branch}: {len(plan.files)} files, {mb:.1f} MB, "
        f"variants {', '.join(sorted(plan.variants))}"
    )
    if deletes is None:
        print(
            "     deletes: on a new branch every build/ file not uploaded; on an existing one "
            "the stale files inside these variants (other variants stay)"
        )
    elif deletes:
        print(f"     deletes {len(deletes)} stale file(s):")
        for d in deletes:
            print(f"       - {d}")
    if kept:
        print(f"     keeps variants: {', '.join(kept)}")
    for p in sorted(plan.files):
        print(f"       + {p}")
    step += 1
    print(f"  {step}. commit README.md (card) to {MAIN_BRANCH}:")
    print("     " + plan.card(kept).replace("\n", "\n     "))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--repo-id",
        default=None,
        metavar="OWNER/NAME",
        help="kernel repo to publish to (default: [general.hub] repo-id of build.toml)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--git",
        type=Path,
        default=None,
        metavar="DIR",
        help="commit to branch v<version> of this git repository instead of the Hub (created bare if missing)",
    )
    target.add_argument(
        "--mirror-root",
        type=Path,
        default=None,
        metavar="ROOT",
        help="same as --git ROOT/kernels/OWNER/NAME (the layout a self-hosted Hub mirror serves)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")


def run(args: argparse.Namespace) -> int:
    report = validate_and_print(args)
    if not report.ok:
        failures = report.failures()
        raise CliError(
            "refusing to publish: validate rejects this build ("
            + "; ".join(failures[:3])
            + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
            + ")"
        )

    repo_id = args.repo_id or report.spec.repo_id
    if not repo_id:
        raise CliError("no --repo-id and no [general.hub] repo-id in build.toml")
    if not _REPO_ID_RE.match(repo_id):
        raise CliError(f"--repo-id {repo_id!r} is not OWNER/NAME")
    plan = make_plan(report, repo_id)

    git_dir = args.git
    if args.mirror_root is not None:
        owner, name = repo_id.split("/")
        git_dir = args.mirror_root / "kernels" / owner / name

    if git_dir is None:
        if plan.dev_build:
            raise CliError(
                "refusing to publish a development build to the Hub (not manylinux_2_28); "
                "build all variants with Nix (see docs/release.md), or use --git/--mirror-root "
                "for a local mirror"
            )
        if args.dry_run:
            endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
            _print_plan(plan, f"hub {endpoint}", None, [], None)
            return 0
        _check_hub_version()
        from huggingface_hub.errors import HfHubHTTPError

        try:
            publish_to_hub(make_hf_api(), plan, private=args.private)
        except HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            hint = (
                " (no write access: check HF_TOKEN, and that the Hub lets this namespace publish kernels)"
                if status in (401, 403)
                else ""
            )
            raise CliError(f"Hub request failed{hint}: {exc}") from exc
        return 0

    from .release_git import publish_to_git

    outcome = publish_to_git(
        git_dir,
        branch=plan.branch,
        files=plan.files,
        variants=list(plan.variants),
        card_for=lambda kept, _repo: plan.card(kept),
        message=f"Upload {len(plan.variants)} build variant(s) of {report.spec.name} v{report.spec.version}",
        dry_run=args.dry_run,
    )
    if args.dry_run:
        _print_plan(plan, f"git {git_dir}", outcome.deleted, outcome.kept_variants, outcome.branch_created)
        return 0
    state = "created" if outcome.branch_created else "updated"
    print(
        f"published {len(plan.files)} files ({len(outcome.deleted)} stale removed) to "
        f"{outcome.repo} branch {plan.branch} ({state}"
        + (", unchanged" if outcome.build_commit is None else f", {outcome.build_commit[:12]}")
        + ")"
    )
    if outcome.kept_variants:
        print(f"kept variants already on {plan.branch}: {', '.join(outcome.kept_variants)}")
    print(f"card (README.md) {'updated' if outcome.card_commit else 'unchanged'} on {MAIN_BRANCH}")
    return 0
