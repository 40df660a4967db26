"""Release end to end, offline: build -> validate -> publish --mirror-root -> a local Hub
(olah, 127.0.0.1 only) -> `kernels.get_kernel(..., version=1)` -> registry resolution of
a fusion_config -> version=2 refused with the available versions -> snapshot_download
of v1 -> reload with HF_HUB_OFFLINE=1 and the server gone.

Every kernel load happens in a child interpreter, so this process never imports the
kernel (the same op namespace is never registered from two paths in one process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_release_support import REPO, child_pythonpath, local_variant_name, run_cli

pytestmark = pytest.mark.slow

OWNER = "e2e-owner"
REPO_ID = f"{OWNER}/static-fp8-mlp"
CHILD_TIMEOUT = 300

CHILD = r'''
import json, logging, os, sys, traceback

mode, repo_id = sys.argv[1], sys.argv[2]
out = {"mode": mode, "kernels_warnings": []}


class _Warnings(logging.Handler):
    """What kernels logs at WARNING and above while loading (0.18+: a missing digest,
    a dirty tree, a failed signature check)."""

    def emit(self, record):
        out["kernels_warnings"].append(record.getMessage())


logging.getLogger("kernels").addHandler(_Warnings(level=logging.WARNING))


def contract_check(module):
    """Fallback when the registry is not importable: names, signatures, op schemas."""
    import inspect
    import torch
    from static_fp8_mlp_registry.contract import ENDPOINTS

    problems = []
    ns = module._ops.ops.name if hasattr(module, "_ops") else None
    for ep in ENDPOINTS.values():
        fn = getattr(module, ep.name, None)
        if fn is None:
            problems.append(f"missing {ep.name}")
            continue
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if tuple(params[: len(ep.params)]) != ep.params:
            problems.append(f"{ep.name} signature {params}")
        want = torch._C.parse_schema(f"{ns}::{ep.name}{ep.op_schema}")
        got = getattr(getattr(torch.ops, ns), ep.name).default._schema
        if got != want:
            problems.append(f"{ep.name} schema {got}")
    return {"ok": not problems, "problems": problems, "by": "contract"}


def endpoint_check(module):
    try:
        from static_fp8_mlp_registry import validate_endpoints
    except ImportError:
        return contract_check(module)
    r = validate_endpoints(module)
    return {"ok": r.ok, "problems": r.problems, "by": "registry", "summary": r.summary()}


def resolve_fusion_config():
    try:
        from static_fp8_mlp_registry import parse_fusion_config, resolve_kernel, validate_endpoints
    except ImportError as exc:
        return {"skipped": f"registry not importable: {exc}"}
    entry = {"repo_id": repo_id, "version": 1, "trust_remote_code": True}
    cfg = parse_fusion_config(
        {"static_quantized_mlp": {"input_quant": entry, "gated_mlp": entry, "dense_gelu_mlp": entry}}
    )
    res = {}
    for family, spec in cfg.families().items():
        rk = resolve_kernel(spec)
        v = validate_endpoints(rk)
        res[family] = {
            "repo_id": rk.repo_id, "source": rk.source, "variant": rk.variant,
            "variant_path": str(rk.variant_path), "kernel_id": rk.kernel_id,
            "archs": list(rk.archs), "ok": v.ok, "problems": v.problems,
        }
    return res


try:
    if mode in ("load", "offline"):
        import kernels
        out["kernels_version"] = kernels.__version__
        m = kernels.get_kernel(repo_id, version=1, trust_remote_code=True)
        out["module"] = m.__name__
        out["file"] = m.__file__
        out["endpoints"] = endpoint_check(m)
        out["fusion"] = resolve_fusion_config()
    elif mode == "v2":
        import kernels
        try:
            kernels.get_kernel(repo_id, version=2, trust_remote_code=True)
            out["error"] = None
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        try:
            from static_fp8_mlp_registry import parse_kernel_spec, resolve_kernel
            try:
                resolve_kernel(parse_kernel_spec({"repo_id": repo_id, "version": 2, "trust_remote_code": True}))
                out["registry_error"] = None
            except Exception as exc:
                out["registry_error"] = f"{type(exc).__name__}: {exc}"
        except ImportError:
            pass
    elif mode == "snapshot":
        from huggingface_hub import snapshot_download
        out["path"] = snapshot_download(repo_id, repo_type="kernel", revision="v1")
except Exception:
    out["traceback"] = traceback.format_exc()
print("RESULT " + json.dumps(out))
'''


def _olah_or_skip():
    from static_fp8_mlp_cli.hub_mirror import HubMirrorError, find_olah

    try:
        return find_olah()
    except HubMirrorError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide olah (tools/install_olah.sh): {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def release_variant(request) -> Path:
    """The local build's variant dir (conftest's built_variant / STATIC_FP8_MLP_BUILD)."""
    try:
        return Path(request.getfixturevalue("kernel_variant_dir"))
    except pytest.FixtureLookupError as exc:
        pytest.skip(f"no local build fixture: {exc.msg}")


def _child(script: Path, mode: str, env: dict) -> dict:
    full = dict(os.environ)
    for k in ("HF_HUB_OFFLINE", "LOCAL_KERNELS", "KERNELS_CACHE", "HF_HOME", "HF_TOKEN"):
        full.pop(k, None)
    full.update(env)
    full["PYTHONPATH"] = child_pythonpath()
    full["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, str(script), mode, REPO_ID],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=full,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"{mode}: rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert "traceback" not in result, f"{mode}:\n{result['traceback']}\n{proc.stderr[-3000:]}"
    return result


def test_release_end_to_end(tmp_path, release_variant):
    olah = _olah_or_skip()
    from static_fp8_mlp_cli.hub_mirror import client_env, mirror_repo_dir, serve_local_hub

    timings = {}
    t0 = time.monotonic()
    local = local_variant_name()
    if release_variant.name != local:
        pytest.skip(f"the build under test ({release_variant.name}) is not the local torch's variant ({local})")

    # A build dir holding only the built variant (the lead's build/ may hold more).
    build = tmp_path / "build"
    build.mkdir()
    shutil.copytree(release_variant, build / release_variant.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    # 1. validate: a local build is a development build (not manylinux_2_28)
    proc = run_cli("validate", str(build), "--variants", "local", "--dev-build", "--build-toml", str(REPO / "build.toml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith(local))
    assert row.split()[1] in ("OK", "DEV"), row
    assert row.split()[-1] == "ok", f"import check did not run: {row}"
    timings["validate"] = time.monotonic() - t0

    # 2. publish into a mirror directory (branch v1 of a git repo)
    mirror = tmp_path / "mirror"
    proc = run_cli(
        "publish", str(build), "--variants", "local", "--dev-build", "--build-toml", str(REPO / "build.toml"),
        "--repo-id", REPO_ID, "--mirror-root", str(mirror),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    git_dir = mirror_repo_dir(mirror, REPO_ID)
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "v1"], cwd=git_dir, capture_output=True, text=True, check=True).stdout.split()
    assert f"build/{local}/metadata.json" in files
    timings["publish"] = time.monotonic() - t0

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cache_online = tmp_path / "cache-online"
    cache_offline = tmp_path / "cache-offline"

    # 3. the local Hub, loopback only, stopped by the context manager
    with serve_local_hub(mirror, olah_bin=olah) as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        timings["server_up"] = time.monotonic() - t0

        loaded = _child(script, "load", client_env(endpoint, cache_online))
        import kernels

        assert loaded.get("kernels_version") == kernels.__version__, loaded  # the same release as here
        # kernels 0.18+ checks the build's files against the digest in its metadata.json
        # (a mismatch raises; a missing digest only warns) and warns about a dirty tree
        assert not [w for w in loaded["kernels_warnings"] if "digest" in w], loaded["kernels_warnings"]
        assert loaded["module"].startswith("_static_fp8_mlp_cuda_")
        assert str(cache_online) in loaded["file"] and f"build/{local}/__init__.py" in loaded["file"]
        assert loaded["endpoints"]["ok"], loaded["endpoints"]
        fusion = loaded["fusion"]
        if "skipped" not in fusion:
            assert set(fusion) == {"input_quant", "gated_mlp", "dense_gelu_mlp"}
            for family, r in fusion.items():
                assert r["ok"], (family, r)
                assert r["repo_id"] == REPO_ID and r["variant"] == local
            assert len({r["kernel_id"] for r in fusion.values()}) == 1
            assert len({r["variant_path"] for r in fusion.values()}) == 1
        timings["get_kernel"] = time.monotonic() - t0

        v2 = _child(script, "v2", client_env(endpoint, tmp_path / "cache-v2"))
        assert v2["error"] is not None and "available versions: 1" in v2["error"], v2
        if "registry_error" in v2:  # the registry names the available versions too
            assert v2["registry_error"] and "1" in v2["registry_error"], v2

        snap = _child(script, "snapshot", client_env(endpoint, cache_offline))
        snap_path = Path(snap["path"])
        assert (snap_path / "build" / local / "metadata.json").is_file()
        assert (cache_offline / "kernels--e2e-owner--static-fp8-mlp" / "refs" / "v1").is_file()
        timings["snapshot"] = time.monotonic() - t0

    # 4. server gone; the warmed cache alone serves version 1
    offline = _child(script, "offline", client_env(endpoint, cache_offline, offline=True))
    assert str(cache_offline) in offline["file"]
    assert offline["endpoints"]["ok"], offline["endpoints"]
    if "skipped" not in offline["fusion"]:
        assert all(r["ok"] for r in offline["fusion"].values()), offline["fusion"]
    timings["offline"] = time.monotonic() - t0
    print("e2e timings (cumulative s):", {k: round(v, 1) for k, v in timings.items()})


def test_serve_local_hub_stops_server_on_error(tmp_path):
    """The server process is gone after the block, also when the block raises."""
    olah = _olah_or_skip()
    from static_fp8_mlp_cli.hub_mirror import serve_local_hub

    (tmp_path / "mirror" / "kernels").mkdir(parents=True)
    import urllib.error
    import urllib.request

    with pytest.raises(RuntimeError, match="boom"):
        with serve_local_hub(tmp_path / "mirror", olah_bin=olah) as endpoint:
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{endpoint}/api/kernels/nobody/nothing/refs", timeout=5)
            raise RuntimeError("boom")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"{endpoint}/api/kernels/nobody/nothing/refs", timeout=2)
