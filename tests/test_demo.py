"""`static-fp8-mlp demo` on a CPU: the whole flow with tiny models, and the user errors.

The end-to-end test runs the real demo in a child process (build reused from the
shared `kernel_variant_dir` fixture -> validate -> publish into a git mirror -> olah on
127.0.0.1 -> `get_kernel(version=1)` -> four transformers models -> fusion) and checks
its JSON: the kernel arrived through the local Hub (endpoint, repo, revision = the
published commit, a snapshot in the demo's temporary cache), the four models are
there, every fused MLP fell back to its original forward on CPU, and the outputs are
identical to the unfused static-FP8 model's.

A second run emulates the GPU machine (no `kernels` library, no olah): `--local
--no-build` with the existing build, imported directly.

User errors end with one line and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_release_support import child_pythonpath

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "cli", REPO / "registry"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

TINY = [
    "--device", "cpu",
    "--hidden", "64", "--intermediate", "128", "--layers", "2", "--heads", "2",
    "--vocab-size", "128", "--batch-size", "1", "--seq-len", "16",
    "--image-size", "32", "--patch-size", "16", "--calib-batches", "2",
]
CHILD_TIMEOUT = 300


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for k in ("HF_HUB_OFFLINE", "LOCAL_KERNELS", "KERNELS_CACHE", "HF_ENDPOINT"):
        env.pop(k, None)
    env["PYTHONPATH"] = child_pythonpath()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def _demo(argv: list[str], *, env: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    """`static-fp8-mlp demo ARGV` in a child interpreter (`prelude` runs first)."""
    code = prelude + "\nimport sys\nfrom static_fp8_mlp_cli.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, "demo", *argv],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT, env=_env(env), cwd=REPO,
    )


def _local_variant() -> str:
    from static_fp8_mlp_cli.demo import local_variant

    return local_variant()


@pytest.fixture(scope="module")
def demo_build(request) -> Path:
    """The variant directory of the shared build, for this torch."""
    try:
        vdir = Path(request.getfixturevalue("kernel_variant_dir"))
    except pytest.FixtureLookupError as exc:  # pragma: no cover
        pytest.skip(f"no build fixture: {exc.msg}")
    if vdir.name != _local_variant():
        pytest.skip(f"the build under test ({vdir.name}) is not this torch's variant ({_local_variant()})")
    return vdir


def _olah_or_skip() -> Path:
    from static_fp8_mlp_cli.hub_mirror import HubMirrorError, find_olah

    try:
        return find_olah()
    except HubMirrorError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide olah (tools/install_olah.sh): {exc}")
        pytest.skip(str(exc))


def _check_cpu_model(name: str, r: dict) -> None:
    m = r["mlps"]
    assert m["found"] == 2 and m["fused"] == 1 and m["left_alone"] == 1, (name, m)
    assert "not static FP8" in m["left_alone_detail"][0]["reason"], (name, m)
    assert m["ran_fused"] == 0 and m["fell_back"] == 1, (name, m)
    assert any("cpu" in why for why in m["fallback_reasons"]), (name, m)
    same = r["agreement"]["fused_vs_unfused_fp8"]
    assert same["identical"] and same["rel_error"] == 0.0 and same["cosine"] == 1.0, (name, same)
    bf16 = r["agreement"]["fused_vs_bf16"]
    assert bf16["finite"] and bf16["cosine"] > 0.9 and 0.0 < bf16["rel_error"] < 0.5, (name, bf16)
    assert r["latency_ms"] is None and "CUDA" in r["latency_skipped"]


@pytest.mark.slow
def test_demo_cpu_through_the_local_hub(tmp_path, demo_build):
    _olah_or_skip()
    out = tmp_path / "demo.json"
    proc = _demo([*TINY, "--keep-bf16", "1", "--build-dir", str(demo_build), "--no-build", "--json", str(out)])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads(out.read_text())

    # The kernel came from the local Hub mirror, through get_kernel(version=1).
    assert data["mode"] == "local-hub"
    src, k = data["kernel_source"], data["kernel"]
    assert src["endpoint"].startswith("http://127.0.0.1:")
    assert k["source"] == "hub" and k["repo_id"] == src["repo_id"] and k["requested"] == "v1" == src["requested"]
    assert len(k["revision"]) == 40 and k["revision"] == src["published_commit"]
    snapshot = f"kernels--{src['repo_id'].replace('/', '--')}/snapshots/{k['revision']}/build/{demo_build.name}"
    assert k["variant_path"].startswith(src["hf_cache"]) and k["variant_path"].endswith(snapshot), k
    assert k["variant"] == demo_build.name and "OK" in k["validation"]
    assert data["build"]["reused"] and not data["build"]["built"]
    assert data["build"]["validate"].startswith("PASSED")
    # ... and the fusion_config names the three endpoints, all at the served repo.
    entries = data["fusion_config"]["static_quantized_mlp"]
    assert set(entries) == {"input_quant", "gated_mlp", "dense_gelu_mlp"}
    assert all(e["repo_id"] == src["repo_id"] and e["version"] == 1 for e in entries.values())

    # Four models; on CPU every fused MLP falls back and the outputs are identical.
    assert set(data["models"]) == {"llama", "gemma", "phi3", "siglip"}
    for name, r in data["models"].items():
        _check_cpu_model(name, r)
    assert data["models"]["llama"]["mlps"]["endpoints"] == {"fp8_swiglu_mlp_bf16": 1}
    assert data["models"]["gemma"]["mlps"]["endpoints"] == {"fp8_geglu_mlp_bf16": 1}
    assert data["models"]["phi3"]["mlps"]["endpoints"] == {"fp8_swiglu_mlp_bf16": 1}  # merged gate_up_proj
    assert data["models"]["siglip"]["mlps"]["endpoints"] == {"fp8_gelu_mlp_bf16": 1}
    assert data["totals"] == {"found": 8, "fused": 4, "left_alone": 4, "ran_fused": 0, "fell_back": 4}
    assert data["all_identical_to_unfused"] is True

    # The tables say the same.
    assert proc.stdout.count("  MLPs found ") == 4 and proc.stdout.count("identical") >= 4
    assert "every fused MLP fell back to its original forward, outputs identical" in proc.stdout
    assert "calibrating static FP8" in proc.stderr  # the progress bar

    # The mirror was stopped when the demo ended.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"{src['endpoint']}/api/kernels/{src['repo_id']}/refs", timeout=2)


@pytest.mark.slow
def test_demo_local_without_kernels_or_olah(tmp_path, demo_build):
    """The GPU machine's setup: no `kernels` library and no olah; --local --no-build."""
    out = tmp_path / "demo.json"
    proc = _demo(
        [*TINY, "--models", "siglip,llama", "--local", "--no-build", "--build-dir", str(demo_build),
         "--keep-bf16", "1", "--json", str(out)],
        env={"OLAH_BIN": str(tmp_path / "no-olah")},
        prelude="import sys; sys.modules['kernels'] = None  # as if not installed",
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["mode"] == "local" and data["kernel_source"]["direct_import"] is True
    assert data["kernel"]["source"] == "module" and data["kernel"]["variant_path"] == str(demo_build)
    assert list(data["models"]) == ["siglip", "llama"]
    for name, r in data["models"].items():
        _check_cpu_model(name, r)


# ------------------------------------------------------------------- user errors


def _main(argv: list[str], capsys) -> tuple[int, str]:
    from static_fp8_mlp_cli.__main__ import main

    rc = main(["demo", *argv])
    err = capsys.readouterr().err
    return rc, err


def _one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("static-fp8-mlp demo: error: "), err
    for n in needles:
        assert n in lines[0], err


def test_bad_repo_id(capsys):
    rc, err = _main(["--repo-id", "not-a-repo"], capsys)
    _one_line_error(rc, err, "OWNER/NAME")


def test_port_taken(capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc, err = _main([*TINY, "--port", str(port)], capsys)
    _one_line_error(rc, err, f"port {port}", "in use", "--port")


def test_olah_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("OLAH_BIN", str(tmp_path / "olah-cli"))
    rc, err = _main(TINY, capsys)
    _one_line_error(rc, err, "olah", "--local")


def test_no_build_and_no_build_tools(capsys, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    if __import__("torch").version.cuda is None:
        pytest.skip("CPU-only torch")
    rc, err = _main([*TINY, "--local", "--no-build", "--build-dir", str(tmp_path / "empty")], capsys)
    _one_line_error(rc, err, "no build of", "static-fp8-mlp build")

    # Without --no-build the demo builds -- and without nvcc says what to do instead.
    from static_fp8_mlp_cli import nvcc

    for var in ("NVCC", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(nvcc, "FALLBACK_NVCC", str(tmp_path / "no-nvcc"))
    rc, err = _main([*TINY, "--local", "--build-dir", str(tmp_path / "out")], capsys)
    _one_line_error(rc, err, "nvcc not found", "--build-dir", "--repo-id")


def test_sizes_must_be_multiples_of_16(capsys):
    rc, err = _main(["--device", "cpu", "--hidden", "100", "--local"], capsys)
    _one_line_error(rc, err, "--hidden 100", "multiples of 16")


def test_conflicting_flags(capsys):
    rc, err = _main(["--repo-id", "a/b", "--local"], capsys)
    _one_line_error(rc, err, "--repo-id", "--local")


def test_unreachable_hub(tmp_path):
    pytest.importorskip("kernels")
    pytest.importorskip("pydantic")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _demo([*TINY, "--repo-id", "someone/static-fp8-mlp"],
                 env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "cache"),
                      "HF_HUB_USER_AGENT_ORIGIN": "static-fp8-mlp-test"})
    _one_line_error(proc.returncode, proc.stderr, "could not reach the Hub", f"127.0.0.1:{port}", "--repo-id")
