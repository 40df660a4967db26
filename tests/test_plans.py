"""The prepared GPU calls (benchmarks/plans/): each script parses as bash, names the
builds it carries in its header, and every build it uses is one rebuild_variants.sh can
rebuild (.gpu-tune/ is local: a new machine must be able to recreate it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

PLANS = Path(__file__).resolve().parents[1] / "benchmarks" / "plans"
CALLS = sorted(PLANS.glob("call*.sh"))


def known_variants() -> set[str]:
    text = (PLANS / "rebuild_variants.sh").read_text()
    return set(re.search(r"^all=\(([^)]*)\)", text, re.M).group(1).split())


def used_builds(text: str) -> set[str]:
    """Build names a call uses: .gpu-tune/NAME/ paths and the loop lists ($v, $b)."""
    names = set(re.findall(r"\.gpu-tune/([a-z0-9]+)/", text))
    lists = re.findall(r"for [vb] in ([a-z0-9 ]+);", text)
    lists += re.findall(r'^V="([a-z0-9 ]+)"', text, re.M)
    for listed in lists:
        names |= set(listed.split())
    return names


def test_there_are_calls():
    assert len(CALLS) >= 6


@pytest.mark.parametrize("script", [*CALLS, PLANS / "rebuild_variants.sh"], ids=lambda p: p.name)
def test_script_parses(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", CALLS, ids=lambda p: p.name)
def test_every_build_is_rebuildable_and_carried(script):
    text = script.read_text()
    used = used_builds(text)
    assert used, "a call that uses no build"
    assert used <= known_variants(), used - known_variants()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    carried = set(re.findall(r"\.gpu-tune/([a-z0-9]+)/", header))
    for group in re.findall(r"\.gpu-tune/\{([a-z0-9,]+)\}", header):
        carried |= set(group.split(","))
    assert used <= carried, f"used but not in the carry list: {used - carried}"
