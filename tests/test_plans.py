"""The prepared GPU calls (benchmarks/plans/): each script parses as bash, names the
builds it carries in its header, and every build it uses is one rebuild_variants.sh can
rebuild (.gpu-tune/ is local: a new machine must be able to recreate it)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PLANS = Path(__file__).resolve().parents[1] / "benchmarks" / "plans"
CALLS = sorted(PLANS.glob("call*.sh"))


def known_variants() -> set[str]:
    text = (PLANS / "rebuild_variants.sh").read_text()
    return set(re.search(r"^all=\(([^)]*)\)", text, re.M).group(1).split())


PROBES = "probes"  # .gpu-tune/probes: standalone probe binaries, not a kernel build


def used_builds(text: str) -> set[str]:
    """Build names a call uses: .gpu-tune/NAME/ paths and the loop lists ($v, $b)."""
    names = set(re.findall(r"\.gpu-tune/([a-z0-9]+)/", text)) - {PROBES}
    lists = re.findall(r"for [vb] in ([a-z0-9 ]+);", text)
    lists += re.findall(r'^V="([a-z0-9 ]+)"', text, re.M)
    for listed in lists:
        names |= set(listed.split())
    return names


def test_there_are_calls():
    assert len(CALLS) >= 5


@pytest.mark.parametrize("script", [*CALLS, PLANS / "rebuild_variants.sh"], ids=lambda p: p.name)
def test_script_parses(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", CALLS, ids=lambda p: p.name)
def test_every_build_is_rebuildable_and_carried(script):
    text = script.read_text()
    used = used_builds(text)
    assert used, "a call that uses no build"
    assert used <= known_variants(), used - known_variants()
    carried = carried_builds(header_of(script))
    assert used <= carried, f"used but not in the carry list: {used - carried}"


def header_of(script: Path) -> str:
    """A call's comment lines: what it does and what it carries."""
    return "".join(line for line in script.read_text().splitlines(keepends=True) if line.startswith("#"))


def carried_builds(header: str) -> set[str]:
    """Build names a call's header carries: .gpu-tune/NAME/ and .gpu-tune/{A,B}/."""
    carried = set(re.findall(r"\.gpu-tune/([a-z0-9]+)/", header)) - {PROBES}
    for group in re.findall(r"\.gpu-tune/\{([a-z0-9,]+)\}", header):
        carried |= set(group.split(","))
    return carried


SCRIPT_CALL = re.compile(r"python3 ((?:scripts|benchmarks)/[a-z_]+\.py)([^;>|\n]*)")
# scripts/memcheck.sh BUILD NAME passes the rest to scripts/memcheck_sweep.py.
MEMCHECK_CALL = re.compile(r"bash scripts/memcheck\.sh \S+ \S+([^;>|\n]*)")


def script_calls() -> list[tuple[str, str, str]]:
    """(call file, script path, its arguments) for every python3 command in the calls, and
    for the memcheck sweeps they run through scripts/memcheck.sh."""
    calls = []
    for call in CALLS:
        text = call.read_text().replace("\\\n", " ")
        calls += [(call.name, script, args) for script, args in SCRIPT_CALL.findall(text)]
        calls += [(call.name, "scripts/memcheck_sweep.py", args) for args in MEMCHECK_CALL.findall(text)]
    return calls


def option_values(args: str, option: str) -> list[str]:
    return [v for value in re.findall(rf"{option}[ =]([a-z0-9_,/]+)", args) for v in value.split(",")]


def test_the_calls_run_scripts():
    assert len(script_calls()) >= 10


@pytest.mark.parametrize("call,script,args", script_calls(), ids=lambda v: v if v.endswith(".sh") else "")
def test_every_option_is_one_the_script_takes(call, script, args):
    """A misspelt option or an unknown shape or path would cost a device call: the script
    exits at once, and the whole call's minutes go to the rest of its commands."""
    source = script_source(PLANS.parents[1] / script)
    for option in set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", args)):
        assert f'"{option}"' in source, f"{call}: {script} has no option {option}"

    for kind in option_values(args, "--kinds?"):
        assert kind in literal_in("scripts/perf_probe.py", "SHAPES"), f"{call}: unknown shape {kind!r}"
    gemm_paths = literal_in("torch-ext/static_fp8_mlp/__init__.py", "GEMM_PATHS")
    for path in option_values(args, "--paths?"):
        for gemm_path in path.split("/"):
            assert gemm_path in gemm_paths, f"{call}: unknown path {gemm_path!r}"


def script_source(script: Path) -> str:
    """A script's text and that of the modules beside it that it imports (options may be
    added by a shared helper: perf_probe.add_sweep_args)."""
    text = script.read_text()
    local = [script.parent / f"{name}.py" for name in re.findall(r"^from (\w+) import", text, re.M)]
    return "\n".join([text] + [f.read_text() for f in local if f.exists()])


def literal_in(file: str, name: str):
    """The literal assigned to NAME at the top of FILE, read without importing it (the
    scripts import torch; the package needs a build)."""
    tree = ast.parse((PLANS.parents[1] / file).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{file} assigns no {name}")


def variant_recipes() -> dict[str, tuple[list[str], list[str]]]:
    """rebuild_variants.sh's variants: name -> (patch files in order, macro names)."""
    text = (PLANS / "rebuild_variants.sh").read_text()
    results = "benchmarks/results"
    patches = {k: f"{results}/{v}" for k, v in re.findall(r"^(P\w*)=\$R/(\S+)$", text, re.M)}
    macros = {k: v for k, v in re.findall(r"^(\w+)='#define (\w+) [^']*'$", text, re.M)}
    recipes = {}
    for name, args in re.findall(r"^\s+(\w+)\) variant \1 (.*) ;;$", text, re.M):
        quoted = re.findall(r'"([^"]*)"', args)
        recipes[name] = ([patches[p.lstrip("$")] for p in quoted[0].split()],
                         [macros[m.lstrip("$")] for m in quoted[1:]])
    return recipes


def test_every_variant_has_a_recipe():
    assert set(variant_recipes()) == known_variants()


@pytest.mark.parametrize("name", sorted(known_variants()))
def test_each_variant_patches_apply_to_this_tree_and_its_macros_exist(name, tmp_path):
    """A patch that no longer applies stops rebuild_variants.sh; a misspelt macro is
    worse: the variant builds as the release kernels and its A/B reads "even"."""
    root = PLANS.parents[1]
    patches, macros = variant_recipes()[name]
    shutil.copytree(root / "kernels-src", tmp_path / "kernels-src")
    for patch in patches:
        proc = subprocess.run(["git", "apply", str(root / patch)], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, f"{patch} does not apply: {proc.stderr}"
    source = "\n".join(f.read_text() for f in (tmp_path / "kernels-src").rglob("*") if f.suffix in (".cu", ".cuh", ".h"))
    for macro in macros:
        assert re.search(rf"#\s*if(?:n?def)?\b[^\n]*\b{macro}\b", source), f"no kernel source tests {macro}"


CARRY_LIMIT = 64 * 2**20  # the device tool's limit on the tree plus the carried paths


def carried_paths(header: str) -> list[str]:
    T = "torch211-cxx11-cu130-x86_64-linux"
    paths = [f".gpu-tune/{n}/{T}" for n in sorted(carried_builds(header))]
    paths += [f".gpu-tune/{PROBES}"] if f".gpu-tune/{PROBES}" in header else []
    return paths + ([".whl"] if re.search(r"carry \.whl", header) else [])


@pytest.mark.parametrize("script", CALLS, ids=lambda p: p.name)
def test_every_probe_a_call_runs_is_carried_and_rebuilt(script):
    """A call that runs .gpu-tune/probes/NAME carries that folder, and rebuild_variants.sh
    `probes` compiles NAME from benchmarks/NAME.cu."""
    text = script.read_text()
    probes = set(re.findall(rf"\.gpu-tune/{PROBES}/(\w+)", text))
    if not probes:
        pytest.skip("runs no probe")
    assert f".gpu-tune/{PROBES}" in header_of(script)
    recipe = (PLANS / "rebuild_variants.sh").read_text()
    for name in probes:
        assert (PLANS.parents[1] / "benchmarks" / f"{name}.cu").exists()
        assert f"-o .gpu-tune/{PROBES}/{name} benchmarks/{name}.cu" in recipe


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


@pytest.mark.parametrize("script", CALLS, ids=lambda p: p.name)
def test_the_carry_list_fits_the_device_tool(script):
    """The tree and the carried builds must fit in 64 MiB, or the call is refused before it
    starts (call2 named five builds: 73 MB with the tree, found on the GPU in the thirtieth
    session). The builds are local: skipped where they are not built."""
    root = PLANS.parents[1]
    paths = carried_paths(header_of(script))
    assert paths, "no carry list in the header"
    if not all((root / p).exists() for p in paths):
        pytest.skip("builds not here (bash benchmarks/plans/rebuild_variants.sh)")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    tree = sum((root / f).stat().st_size for f in tracked.decode().split("\0") if f and (root / f).is_file())
    total = tree + sum(tree_bytes(root / p) for p in paths)
    assert total <= CARRY_LIMIT, f"tree {tree / 2**20:.1f} MiB + builds = {total / 2**20:.1f} MiB > 64 MiB"
