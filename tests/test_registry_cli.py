"""`static-fp8-mlp resolve SPEC`: spec forms, output, exit codes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("kernels")
from registry_helpers import FakeHub, fresh_registry, make_standin, real_build_dir  # noqa: F401

from static_fp8_mlp_cli.__main__ import main
from static_fp8_mlp_cli.errors import CliError
from static_fp8_mlp_registry.cli import parse_spec_arg

pytestmark = pytest.mark.usefixtures("fresh_registry")


def run(capsys, *argv):
    rc = main(["resolve", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_spec_forms(tmp_path, monkeypatch):
    one = parse_spec_arg("owner/k")["spec"][1]
    assert (one.repo_id, one.version, one.revision, one.trust_remote_code) == ("owner/k", 1, None, False)
    assert parse_spec_arg("owner/k@v2")["spec"][1].version == 2
    rev = parse_spec_arg("owner/k@0123abcd", trust_remote_code=True)["spec"][1]
    assert rev.revision == "0123abcd" and rev.version is None and rev.trust_remote_code
    assert parse_spec_arg("owner/k@main")["spec"][1].revision == "main"
    assert parse_spec_arg(str(tmp_path))["spec"][1].path == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "localbuild").mkdir()
    assert parse_spec_arg("./localbuild")["spec"][1].path == "./localbuild"
    assert parse_spec_arg("localbuild")["spec"][1].path == "localbuild"  # exists, not a repo id
    js = parse_spec_arg('{"repo_id": "owner/k", "revision": "abc", "swiglu_func": "s"}')["spec"][1]
    assert js.revision == "abc" and js.swiglu_func == "s"
    cfg = {"static_quantized_mlp": {"input_quant": "owner/k", "gated_mlp": {"repo_id": "owner/k", "version": 1}}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    parsed = parse_spec_arg("cfg.json")
    assert list(parsed) == ["input_quant", "gated_mlp"] and parsed["gated_mlp"][0] == "gated_mlp"


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("{not json", "does not parse"),
        ('{"static_quantized_mlp": true}', "explicit Hub kernel configurations are required"),
        ('{"static_quantized_mlp": {}}', "enables nothing"),
        ('{"repo_id": "owner/k", "bogus": 1}', "unknown key 'bogus'"),
        ("not a repo", "must look like 'owner/name'"),
        ("owner/k@", "nothing after '@'"),
    ],
)
def test_malformed_specs_exit_2(capsys, spec, needle):
    with pytest.raises(CliError, match="."):
        parse_spec_arg(spec)
    rc, out, err = run(capsys, spec)
    assert rc == 2 and needle in err and err.startswith("static-fp8-mlp resolve: error:")


def test_resolve_local_build_text(capsys, tmp_path):
    proj = make_standin(tmp_path / "k")
    rc, out, _ = run(capsys, str(proj), "--no-smoke")
    assert rc == 0, out
    for needle in ("source:     path", "variant:    torch", "kernel id:  _static_fp8_mlp_standin_", "archs:      8.9, 9.0a, 10.0a, 12.0",
                   "[ok] fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, *, out=None)",
                   "validation: OK"):
        assert needle in out


def test_resolve_json_and_family(capsys, tmp_path):
    proj = make_standin(tmp_path / "k")
    rc, out, _ = run(capsys, str(proj), "--json", "--family", "gated_mlp")
    doc = json.loads(out)
    assert rc == 0 and doc["ok"]
    eps = [e["endpoint"] for e in doc["entries"][0]["validation"]["endpoints"]]
    assert eps == ["fp8_swiglu_mlp_bf16", "fp8_geglu_mlp_bf16"]
    assert doc["entries"][0]["resolved"]["source"] == "path"


def test_resolve_validation_failure_exit_1(capsys, tmp_path):
    proj = make_standin(tmp_path / "k", omit=("fp8_gelu_mlp_bf16",))
    rc, out, _ = run(capsys, str(proj))
    assert rc == 1
    assert "[FAIL] fp8_gelu_mlp_bf16" in out and "problem: the kernel module has no function 'fp8_gelu_mlp_bf16'" in out
    assert "validation: FAILED: 1 problem" in out


def test_resolve_fusion_config_json(capsys, tmp_path, monkeypatch):
    good = make_standin(tmp_path / "good")
    monkeypatch.setenv("LOCAL_KERNELS", f"owner/static-fp8-mlp={good}")
    cfg = {"static_quantized_mlp": {
        "input_quant": "owner/static-fp8-mlp",
        "gated_mlp": {"repo_id": "owner/static-fp8-mlp", "version": 1},
        "dense_gelu_mlp": {"path": str(tmp_path / "missing")},
    }}
    rc, out, _ = run(capsys, json.dumps(cfg))
    assert rc == 1
    assert "input_quant: owner/static-fp8-mlp@v1" in out and "source:     local-override" in out
    assert "dense_gelu_mlp: path" in out and "error (local_artifact):" in out and "does not exist" in out


def test_resolve_error_kinds_through_the_hub(capsys, tmp_path, monkeypatch):
    hub = FakeHub().install(monkeypatch)
    hub.add_repo("owner/k", {"v1": make_standin(tmp_path / "k")}, trusted=False)
    rc, out, _ = run(capsys, "owner/k")
    assert rc == 1 and "error (untrusted_publisher):" in out and "--trust-remote-code" in out
    rc, out, _ = run(capsys, "owner/k", "--trust-remote-code", "--no-smoke")
    assert rc == 0 and "source:     hub" in out
    rc, out, _ = run(capsys, "owner/k@v4", "--trust-remote-code")
    assert rc == 1 and "error (version_not_found):" in out and "available versions: 1" in out
    rc, out, _ = run(capsys, "owner/nope", "--trust-remote-code")
    assert rc == 1 and "error (repo_not_found):" in out
    hub.network_down = True
    rc, out, _ = run(capsys, "owner/k@v2", "--trust-remote-code")
    assert rc == 1 and "error (network_unreachable):" in out


def test_resolve_real_build(capsys, request):
    build = real_build_dir(request)
    rc, out, _ = run(capsys, str(build))
    assert rc == 0, out
    assert "op schema: (Tensor! out, Tensor input, Tensor channel_scale, Tensor scale) -> ()" in out
    assert "ops:        torch.ops._static_fp8_mlp_" in out
