"""Source checks of the programmatic dependent launches (CPU; no build needed).

A kernel launched with the programmatic-serialization attribute may be scheduled while
the kernel before it still runs. If it read that kernel's output (or wrote what that
kernel reads) before `griddepcontrol.wait`, it would race: a silent wrong answer that
no GPU test is sure to catch. `launch_maybe_programmatic` (kernels-src/common.cuh) is the
launcher for such kernels; every kernel it launches with a flag other than a literal
`false` must reach `griddepcontrol.wait` in its own body or in a device helper it calls.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "kernels-src"
WAIT = "griddepcontrol.wait"


def _sources() -> str:
    return "\n".join(p.read_text() for p in sorted(SRC.glob("*.cuh")))


def _body(text: str, start: int) -> str:
    """The brace-balanced block that opens at the first '{' from `start`."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j + 1]
    raise AssertionError("unbalanced braces")


def _function_body(text: str, name: str, *, kernel: bool) -> str:
    marker = r"__global__[^;{]*?\b" if kernel else r"SFM_DEVICE[^;{]*?\b"
    m = re.search(marker + re.escape(name) + r"\s*\(", text, re.S)
    assert m, f"no {'kernel' if kernel else 'device function'} named {name}"
    return _body(text, m.end())


def _waits(text: str, body: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether `body` runs the wait itself or through argument-less device helpers it
    calls, followed to any depth (chain_programmatic_launches -> pdl_wait)."""
    if WAIT in body:
        return True
    helpers = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(\s*\)\s*;", body)) - seen
    for helper in helpers:
        if re.search(r"SFM_DEVICE[^;{]*?\b" + helper + r"\s*\(", text, re.S):
            if _waits(text, _function_body(text, helper, kernel=False), seen | {helper}):
                return True
    return False


def programmatic_launches(text: str) -> list[tuple[str, str]]:
    """(kernel name, flag) of every launch_maybe_programmatic call outside common.cuh."""
    calls = re.findall(
        r"launch_maybe_programmatic\(\s*([A-Za-z_][A-Za-z0-9_]*)(?:<[^>]*>)?\s*,"
        r"\s*[^,]+,\s*[^,]+,\s*([^,]+),", text)
    return [(name, flag.strip()) for name, flag in calls if name != "kernel"]


def test_every_programmatic_launch_waits_for_its_predecessor():
    text = _sources()
    launches = programmatic_launches(text)
    # The quant kernels (three) and the split-K reduce (twice: programmatic or not).
    assert len(launches) >= 6, launches
    checked = 0
    for name, flag in launches:
        if flag == "false":
            continue
        assert _waits(text, _function_body(text, name, kernel=True)), (
            f"{name} is launched with launch_maybe_programmatic({flag}) but never runs "
            f"{WAIT}: it could read its predecessor's output too early")
        checked += 1
    assert checked >= 4


def test_the_check_catches_a_kernel_without_wait():
    """The checker itself: a programmatic launch of a kernel without the wait fails."""
    text = """
    SFM_DEVICE void helper() { asm volatile("griddepcontrol.wait;"); }
    SFM_DEVICE void outer() { helper(); }
    SFM_DEVICE void no_wait() { no_wait(); }
    __global__ void good_kernel(int* p) { helper(); p[0] = 1; }
    __global__ void nested_kernel(int* p) { outer(); p[0] = 1; }
    __global__ void bad_kernel(int* p) { p[0] = 1; }
    __global__ void bad_nested_kernel(int* p) { no_wait(); p[0] = 1; }
    launch_maybe_programmatic(good_kernel, grid, dim3(32), pdl, stream, p);
    launch_maybe_programmatic(nested_kernel, grid, dim3(32), pdl, stream, p);
    launch_maybe_programmatic(bad_kernel, grid, dim3(32), pdl, stream, p);
    launch_maybe_programmatic(bad_nested_kernel, grid, dim3(32), pdl, stream, p);
    """
    verdicts = {name: _waits(text, _function_body(text, name, kernel=True))
                for name, _ in programmatic_launches(text)}
    assert verdicts == {"good_kernel": True, "nested_kernel": True, "bad_kernel": False,
                        "bad_nested_kernel": False}
