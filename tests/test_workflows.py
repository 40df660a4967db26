"""The GitHub workflows cannot run here (no Nix, no GitHub), so check what can be
checked on a CPU: they parse, their jobs hang together, the flake outputs they build
exist in the pinned kernel-builder, and every `static-fp8-mlp` command line they run
names a real subcommand and real flags (from `static-fp8-mlp <cmd> --help`)."""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest

from test_release_support import REPO, run_cli

yaml = pytest.importorskip("yaml")

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))

# kernel-builder commit pinned in flake.nix, and the per-system package outputs that
# its nix-builder/lib/gen-flake-outputs.nix defines (`packages = { ... }`). Re-read that
# file when the pin moves; test_pin_matches_recorded_outputs fails until then.
PINNED_KERNEL_BUILDER = "8ac69fc542a4306eade0759ef7c45b4f2ae57df0"
GEN_FLAKE_PACKAGE_OUTPUTS = frozenset(
    {
        "bundle",
        "ciTests",
        "backendBundle",
        "default",
        "build-and-copy",
        "build-and-upload",
        "ci",
        "backendCi",
        "ci-test",
        "kernels",
        "pkgs",
        "redistributable",  # attrset: variant name -> one redistributable variant
        "variants",  # list of variant names (nix eval)
        "archVariants",
    }
)
# Outputs keyed by variant name (the matrix passes a variant as the second component).
PER_VARIANT_OUTPUTS = frozenset({"redistributable", "pkgs"})


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in doc and "on" not in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, job, step


def _commands(run: str) -> list[list[str]]:
    """Shell words of each command line in a `run:` block (continuations joined,
    heredoc bodies skipped, `${{ }}` expressions kept as one word)."""
    text = run.replace("\\\n", " ")
    out, heredoc_end = [], None
    for line in text.splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        m = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        if m:
            heredoc_end = m.group(1)
            line = line[: m.start()]
        line = re.sub(r"\$\{\{.*?\}\}", "EXPR", line)
        line = re.sub(r"(^|\s)#.*$", "", line)  # a comment, not `.#output`
        # command substitutions `$(...)` are commands too
        pieces = re.findall(r"\$\(([^()]*)\)", line) + [line]
        for piece in pieces:
            try:
                words = shlex.split(piece)
            except ValueError:
                words = piece.split()
            for part in _split_pipelines(words):
                if part:
                    out.append(part)
    return out


def _split_pipelines(words: list[str]) -> list[list[str]]:
    parts, cur = [], []
    for w in words:
        if w in ("|", "||", "&&", ";"):
            parts.append(cur)
            cur = []
        else:
            cur.append(w)
    parts.append(cur)
    return parts


@lru_cache(maxsize=None)
def cli_flags(subcommand: str) -> frozenset:
    proc = run_cli(subcommand, "--help")
    assert proc.returncode == 0, f"static-fp8-mlp {subcommand} --help failed: {proc.stderr}"
    return frozenset(re.findall(r"(--[a-z][a-z0-9-]*)", proc.stdout))


@lru_cache(maxsize=None)
def cli_subcommands() -> frozenset:
    proc = run_cli("--help")
    assert proc.returncode == 0
    # subcommands are listed under COMMAND, indented by four spaces
    names = re.findall(r"^    ([a-z][a-z-]*)(?:\s|$)", proc.stdout, re.M)
    assert names, proc.stdout
    return frozenset(names)


def test_there_are_workflows():
    assert WORKFLOWS, "no workflow files in .github/workflows"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_parses_and_is_well_formed(path):
    doc = _load(path)
    assert doc.get("name")
    assert doc.get("on"), "no triggers"
    assert doc.get("jobs")
    for job_name, job in doc["jobs"].items():
        assert "runs-on" in job, job_name
        for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert need in doc["jobs"], f"{job_name} needs unknown job {need}"
        for step in job.get("steps", []):
            assert ("uses" in step) != ("run" in step), f"{job_name}: step must have exactly one of uses/run: {step}"
            if "uses" in step:
                action, _, ref = step["uses"].partition("@")
                assert ref, f"{step['uses']}: pin a version"


def _static_fp8_mlp_invocations():
    for path in WORKFLOWS:
        for job_name, job, step in _steps(_load(path)):
            for words in _commands(step.get("run", "")):
                if words and words[0] == "static-fp8-mlp":
                    yield path.name, job_name, words


def test_cli_invocations_name_real_subcommands_and_flags():
    seen = list(_static_fp8_mlp_invocations())
    assert {w[1] for _, _, w in seen} >= {"validate", "publish"}, "workflows must validate and publish"
    for wf, job, words in seen:
        sub = words[1]
        assert sub in cli_subcommands(), f"{wf}/{job}: unknown subcommand {sub}"
        flags = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
        unknown = flags - cli_flags(sub)
        assert not unknown, f"{wf}/{job}: static-fp8-mlp {sub} has no {sorted(unknown)}"


def _flake_refs():
    for path in WORKFLOWS:
        for job_name, job, step in _steps(_load(path)):
            for words in _commands(step.get("run", "")):
                if words[:1] == ["nix"]:
                    for w in words:
                        if w.startswith(".#"):
                            yield path.name, job_name, words, w[2:]


def test_nix_commands_use_outputs_that_gen_flake_outputs_provides():
    refs = list(_flake_refs())
    assert refs, "workflows run no nix build/eval"
    for wf, job, words, attr in refs:
        parts = attr.split(".")
        assert parts[0] in GEN_FLAKE_PACKAGE_OUTPUTS, f"{wf}/{job}: .#{attr} is not a genKernelFlakeOutputs output"
        if parts[0] in PER_VARIANT_OUTPUTS:
            assert len(parts) == 2, f"{wf}/{job}: .#{attr} must name one variant"
        assert words[1] in ("build", "eval", "run"), words
        if parts[0] == "variants":
            assert words[1] == "eval" and "--json" in words, "list variants with nix eval --json .#variants"


def test_pin_matches_recorded_outputs():
    flake = (REPO / "flake.nix").read_text()
    assert f"github:huggingface/kernels/{PINNED_KERNEL_BUILDER}" in flake, (
        "flake.nix pins another kernel-builder: re-read its nix-builder/lib/gen-flake-outputs.nix "
        "and update GEN_FLAKE_PACKAGE_OUTPUTS / PINNED_KERNEL_BUILDER"
    )
    assert "genKernelFlakeOutputs" in flake


def test_matrix_builds_each_listed_variant_then_validates_and_uploads_it():
    doc = _load(REPO / ".github" / "workflows" / "build-and-release.yml")
    jobs = doc["jobs"]
    lister = jobs["variants"]
    assert "variants" in lister["outputs"]
    build = jobs["build"]
    assert build["needs"] == "variants"
    assert "fromJSON(needs.variants.outputs.variants)" in build["strategy"]["matrix"]["variant"]
    runs = " ".join(s.get("run", "") for s in build["steps"])
    assert ".#redistributable.${{ matrix.variant }}" in runs
    assert 'validate out --variants "${{ matrix.variant }}"' in runs
    order = [s.get("uses", s.get("run", ""))[:40] for s in build["steps"]]
    i_build = next(i for i, s in enumerate(order) if "nix build" in s)
    i_val = next(i for i, s in enumerate(order) if "static-fp8-mlp validate" in s)
    i_up = next(i for i, s in enumerate(order) if s.startswith("actions/upload-artifact"))
    assert i_build < i_val < i_up


def test_release_job_publishes_only_on_version_tags_with_the_token():
    doc = _load(REPO / ".github" / "workflows" / "build-and-release.yml")
    assert "v*" in doc["on"]["push"]["tags"]
    rel = doc["jobs"]["release"]
    assert rel["needs"] == "build"
    assert rel["if"] == "startsWith(github.ref, 'refs/tags/v')"
    publish = [s for s in rel["steps"] if "static-fp8-mlp publish" in s.get("run", "") and "--dry-run" not in s["run"]]
    assert len(publish) == 1
    assert publish[0]["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    # the full required set is validated before publishing (no --variants narrowing)
    validate = [s for s in rel["steps"] if "static-fp8-mlp validate" in s.get("run", "")]
    assert validate and "--variants" not in validate[0]["run"]
    names = [s.get("run", s.get("uses", "")) for s in rel["steps"]]
    assert names.index(validate[0]["run"]) < names.index(publish[0]["run"])
    # only the release job sees the token
    for name, job in doc["jobs"].items():
        if name != "release":
            assert "secrets.HF_TOKEN" not in yaml.safe_dump(job)


def test_the_checks_catch_mistakes():
    """The parsers above see through continuations, heredocs and expressions, and the
    flag check would reject a flag the CLI does not have."""
    run = (
        'static-fp8-mlp validate out \\\n  --variants "${{ matrix.variant }}" --bogus-flag\n'
        "python - <<'EOF'\nstatic-fp8-mlp not-a-command\nEOF\n"
        'nix build -L ".#redistributable.${{ matrix.variant }}" && nix eval --json .#variants\n'
    )
    cmds = _commands(run)
    assert cmds[0] == ["static-fp8-mlp", "validate", "out", "--variants", "EXPR", "--bogus-flag"]
    assert ["static-fp8-mlp", "not-a-command"] not in cmds
    assert ["nix", "build", "-L", ".#redistributable.EXPR"] in cmds
    assert ["nix", "eval", "--json", ".#variants"] in cmds
    assert "--bogus-flag" not in cli_flags("validate")
    assert {"--variants", "--dev-build", "--json", "--no-import", "--build-toml"} <= cli_flags("validate")
    assert "not-a-command" not in cli_subcommands()
