"""fusion_config validation: the accepted forms and every refusal, with its message."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic")

from static_fp8_mlp_registry.config import (
    DenseGeluMLPSpec,
    FusionConfig,
    GatedMLPSpec,
    InputQuantSpec,
    KernelSpec,
    parse_kernel_spec,
)
from static_fp8_mlp_registry.errors import FusionConfigError

REPO = "owner/static-fp8-mlp"


def sec(**entries):
    return {"static_quantized_mlp": entries}


# ----------------------------------------------------------------------------- valid


@pytest.mark.parametrize("cfg", [None, {}, {"static_quantized_mlp": False}, {"static_quantized_mlp": None}, sec()])
def test_disabled_forms(cfg):
    parsed = FusionConfig.parse(cfg)
    assert not parsed.enabled
    assert parsed.families() == {}


def test_all_three_entries_as_repo_strings_default_to_version_1():
    parsed = FusionConfig.parse(sec(input_quant=REPO, gated_mlp=REPO, dense_gelu_mlp=REPO))
    fams = parsed.families()
    assert list(fams) == ["input_quant", "gated_mlp", "dense_gelu_mlp"]
    assert isinstance(fams["input_quant"], InputQuantSpec)
    assert isinstance(fams["gated_mlp"], GatedMLPSpec)
    assert isinstance(fams["dense_gelu_mlp"], DenseGeluMLPSpec)
    for spec in fams.values():
        assert spec.repo_id == REPO and spec.version == 1 and spec.revision is None
        assert spec.trust_remote_code is False
    assert fams["input_quant"].functions() == {
        "channel_scale_quantize_fp8_static_bf16": "channel_scale_quantize_fp8_static_bf16"
    }
    assert fams["gated_mlp"].functions() == {
        "fp8_swiglu_mlp_bf16": "fp8_swiglu_mlp_bf16",
        "fp8_geglu_mlp_bf16": "fp8_geglu_mlp_bf16",
    }
    assert fams["dense_gelu_mlp"].functions() == {"fp8_gelu_mlp_bf16": "fp8_gelu_mlp_bf16"}


def test_mapping_entries_with_overrides_revision_trust():
    parsed = FusionConfig.parse(
        sec(
            input_quant={"repo_id": REPO, "func": "my_quant", "trust_remote_code": True},
            gated_mlp={"repo_id": "other/mlp", "revision": "0123abc", "swiglu_func": "swiglu", "geglu_func": None},
            dense_gelu_mlp={"repo_id": REPO, "version": "v2", "gelu_func": "gelu2"},
        )
    )
    f = parsed.families()
    assert f["input_quant"].functions() == {"channel_scale_quantize_fp8_static_bf16": "my_quant"}
    assert f["input_quant"].trust_remote_code is True
    assert f["gated_mlp"].revision == "0123abc" and f["gated_mlp"].version is None
    assert f["gated_mlp"].functions() == {"fp8_swiglu_mlp_bf16": "swiglu"}  # geglu disabled
    assert f["dense_gelu_mlp"].version == 2
    assert f["dense_gelu_mlp"].functions() == {"fp8_gelu_mlp_bf16": "gelu2"}
    assert f["gated_mlp"].cache_key() == ("hub", "other/mlp", "rev:0123abc", False)
    assert f["input_quant"].cache_key() == ("hub", REPO, "v1", True)


def test_input_quant_alone_and_disabled_entries():
    parsed = FusionConfig.parse(sec(input_quant=REPO, gated_mlp=False, dense_gelu_mlp=None))
    assert list(parsed.families()) == ["input_quant"]


def test_local_path_entry(tmp_path):
    parsed = FusionConfig.parse(sec(input_quant={"path": str(tmp_path)}, gated_mlp={"path": str(tmp_path), "repo_id": REPO}))
    f = parsed.families()
    assert f["input_quant"].path == str(tmp_path) and f["input_quant"].version is None
    assert f["gated_mlp"].repo_id == REPO  # a label only; the path wins
    assert f["input_quant"].cache_key()[0] == "path"


def test_parse_is_idempotent_and_frozen():
    parsed = FusionConfig.parse(sec(input_quant=REPO))
    assert FusionConfig.parse(parsed) is parsed
    with pytest.raises(Exception):
        parsed.families()["input_quant"].repo_id = "x/y"  # frozen


# ---------------------------------------------------------------------------- errors


def err(cfg) -> str:
    with pytest.raises(FusionConfigError) as info:
        FusionConfig.parse(cfg)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_true_section_requires_explicit_configuration():
    msg = err({"static_quantized_mlp": True})
    assert "explicit Hub kernel configurations are required" in msg


def test_true_entry_requires_explicit_configuration():
    msg = err(sec(input_quant=REPO, gated_mlp=True))
    assert "static_quantized_mlp.gated_mlp" in msg
    assert "explicit Hub kernel configurations are required" in msg


def test_unknown_top_level_key_lists_supported():
    msg = err({"static_quantized_mlp": {}, "attention": {}})
    assert "unknown key 'attention'" in msg and "supported keys: static_quantized_mlp" in msg


def test_unknown_section_key_lists_supported():
    msg = err(sec(input_quant=REPO, moe_mlp=REPO))
    assert "unknown key 'moe_mlp'" in msg
    assert "supported keys: input_quant, gated_mlp, dense_gelu_mlp" in msg


@pytest.mark.parametrize(
    "family,bad,supported",
    [
        ("input_quant", "swiglu_func", "repo_id, version, revision, trust_remote_code, path, func"),
        ("gated_mlp", "func", "repo_id, version, revision, trust_remote_code, path, swiglu_func, geglu_func"),
        ("dense_gelu_mlp", "geglu_func", "repo_id, version, revision, trust_remote_code, path, gelu_func"),
    ],
)
def test_unknown_entry_key_lists_supported(family, bad, supported):
    entries = {"input_quant": REPO, family: {"repo_id": REPO, bad: "x"}}
    msg = err(sec(**entries))
    assert f"unknown key '{bad}' in '{family}'" in msg
    assert f"supported keys: {supported}" in msg


def test_several_unknown_keys_are_all_named():
    msg = err(sec(input_quant={"repo_id": REPO, "foo": 1, "bar": 2}))
    assert "unknown keys 'foo', 'bar'" in msg


@pytest.mark.parametrize("mlp", ["gated_mlp", "dense_gelu_mlp"])
def test_input_quant_required_with_any_mlp(mlp):
    msg = err(sec(**{mlp: REPO}))
    assert "'input_quant' is required" in msg and mlp in msg


@pytest.mark.parametrize("bad", ["static-fp8-mlp", "a/b/c", "/abs", "owner/", "owner//x", "own er/x", "a--b/c", "a/b..c", ""])
def test_repo_id_must_look_like_owner_name(bad):
    msg = err(sec(input_quant=bad))
    assert "must look like 'owner/name'" in msg
    assert "static_quantized_mlp.input_quant.repo_id" in msg


def test_version_and_revision_together():
    msg = err(sec(input_quant={"repo_id": REPO, "version": 1, "revision": "main"}))
    assert "sets both version=1 and revision='main'" in msg


def test_path_with_version_is_refused(tmp_path):
    msg = err(sec(input_quant={"path": str(tmp_path), "version": 1}))
    assert "'path' together with 'version'/'revision'" in msg


@pytest.mark.parametrize("bad", [True, -1, "latest", 1.5])
def test_bad_version(bad):
    msg = err(sec(input_quant={"repo_id": REPO, "version": bad}))
    assert "version" in msg


def test_mapping_needs_repo_or_path():
    msg = err(sec(input_quant={"version": 1}))
    assert "needs 'repo_id'" in msg and "'path'" in msg


def test_bad_function_name_and_all_disabled():
    assert "not a Python identifier" in err(sec(input_quant={"repo_id": REPO, "func": "not-a-name"}))
    msg = err(sec(input_quant=REPO, gated_mlp={"repo_id": REPO, "swiglu_func": None, "geglu_func": None}))
    assert "every function of 'gated_mlp' is disabled" in msg
    assert "'func' cannot be null" in err(sec(input_quant={"repo_id": REPO, "func": None}))


def test_trust_must_be_bool():
    assert "trust_remote_code must be true or false" in err(sec(input_quant={"repo_id": REPO, "trust_remote_code": "yes"}))


@pytest.mark.parametrize("cfg", [["static_quantized_mlp"], "owner/x", 3])
def test_non_mapping_config(cfg):
    assert "fusion_config must be a mapping" in err(cfg)


def test_non_mapping_section_and_entry():
    assert "'static_quantized_mlp' must be a mapping" in err({"static_quantized_mlp": REPO})
    assert "must be a repo id string" in err(sec(input_quant=42))


def test_multiple_problems_are_listed_together():
    msg = err(sec(input_quant="bad", gated_mlp={"repo_id": REPO, "func": "x"}))
    assert msg.count("\n  - ") == 2


def test_generic_kernel_spec_accepts_all_overrides():
    spec = parse_kernel_spec({"repo_id": REPO, "swiglu_func": "a", "gelu_func": "b", "func": "c"})
    assert isinstance(spec, KernelSpec)
    assert spec.functions()["fp8_gelu_mlp_bf16"] == "b"
    assert spec.describe() == f"{REPO}@v1"
    assert parse_kernel_spec(REPO).version == 1
