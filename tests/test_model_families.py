"""What the registry does with real transformers architectures (CPU): tiny random-weight
models of each family (decoders, and vision towers), calibrated to static FP8 and fused with the reference kernels by
scripts/model_survey.py. Fused MLPs must meet the contract against their own forward and
the model must still run; the others must be left alone for the stated reason. A family
the installed transformers does not know is skipped (CI also runs transformers 5.24)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("kernels")
pytest.importorskip("transformers")
from transformers import CONFIG_MAPPING  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import model_survey  # noqa: E402

SWIGLU, GEGLU, GELU = "fp8_swiglu_mlp_bf16", "fp8_geglu_mlp_bf16", "fp8_gelu_mlp_bf16"

FUSED = {
    "llama": ("LlamaMLP", SWIGLU),
    "mistral": ("MistralMLP", SWIGLU),
    "qwen2": ("Qwen2MLP", SWIGLU),
    "qwen3": ("Qwen3MLP", SWIGLU),
    "qwen2_moe": ("Qwen2MoeMLP", SWIGLU),  # the shared expert; the routed experts are 3-D parameters
    "deepseek_v3": ("DeepseekV3MLP", SWIGLU),  # the dense first layer and the shared experts
    "gemma": ("GemmaMLP", GEGLU),
    "gemma2": ("Gemma2MLP", GEGLU),
    "gemma3_text": ("Gemma3MLP", GEGLU),
    "phi3": ("Phi3MLP", SWIGLU),  # merged gate_up_proj
    "glm": ("GlmMLP", SWIGLU),  # merged gate_up_proj
    "granite": ("GraniteMLP", SWIGLU),
    "olmo2": ("Olmo2MLP", SWIGLU),
    "cohere": ("CohereMLP", SWIGLU),
    "lfm2": ("Lfm2MLP", SWIGLU),  # w1 / w3 / w2, F.silu written in its forward
    "phi": ("PhiMLP", GELU),
    "gpt_bigcode": ("GPTBigCodeMLP", GELU),  # c_fc / c_proj
    "starcoder2": ("Starcoder2MLP", GELU),  # c_fc / c_proj, biases
    "gptj": ("GPTJMLP", GELU),  # fc_in / fc_out
    "codegen": ("CodeGenMLP", GELU),  # fc_in / fc_out
    # vision towers
    "siglip_vision_model": ("SiglipMLP", GELU),  # and its pooling head's MLP
    "idefics3_vision": ("Idefics3VisionMLP", GELU),
    "qwen3_vl_vision": ("Qwen3VLVisionMLP", GELU),  # linear_fc1 / linear_fc2, flattened patches in
}

LEFT_ALONE = {
    # clamps gate and up at swiglu_limit (10): the probe's stand-ins reach 1e5
    "deepseek_v4": "its forward does not feed down_proj with act(gate_proj(x)) * up_proj(x) for act=silu",
    "dory": "its forward does not feed down_proj with act(gate_proj(x)) * up_proj(x) for act=silu",
    "gpt_neox": "activation gelu (erf) is not supported (needs tanh-approximated GELU)",
    "gpt2": "c_fc is Conv1D with bfloat16 weights, not static FP8",
    "bitnet": "activation ReLUSquaredActivation is not supported",
    "opt": "activation ReLU is not supported",
    "bloom": "missing 1 required positional argument: 'residual'",  # its forward adds the residual
    "minimax_m3_vl_text": "the probe found no SiLU or tanh-approximated GELU in its forward",
    "clip_vision_model": "activation QuickGELUActivation is not supported",
    "qwen2_5_vl_vision": "bias on gate_proj, up_proj, down_proj (the gated kernels take no bias)",
}

NO_MLP_MODULES = ("mixtral", "qwen3_moe")  # experts only, as 3-D parameters


def known(model_type: str) -> None:
    if model_type not in CONFIG_MAPPING:
        pytest.skip(f"transformers has no {model_type} here")


@pytest.mark.parametrize("model_type", sorted(FUSED))
def test_family_is_fused_within_the_contract(model_type):
    known(model_type)
    module_type, endpoint = FUSED[model_type]
    r = model_survey.survey(model_type)
    assert r.surveyed, r.error
    # every MLP of the family's class, one a layer (SigLIP: and its head's); other modules
    # with MLP-like names (Qwen3-VL's patch mergers: erf-GELU) may be left alone
    assert len(r.fused) == (3 if model_type == "siglip_vision_model" else 2)
    assert {(f.module_type, f.endpoint) for f in r.fused} == {(module_type, endpoint)}
    assert all(t != module_type for _, t, _ in r.declined), r.declined
    for f in r.fused:
        assert f.kernel_calls == 1, f"{f.name}: the fused path did not run"
        assert f.rel_err <= model_survey.CONTRACT_TOL, f"{f.name}: {f.rel_err:.3e}"
    assert r.model_runs


@pytest.mark.parametrize("model_type", sorted(LEFT_ALONE))
def test_family_is_left_alone_with_its_reason(model_type):
    known(model_type)
    r = model_survey.survey(model_type)
    assert r.surveyed, r.error
    assert r.fused == [] and len(r.declined) == 2
    assert all(LEFT_ALONE[model_type] in reason for _, _, reason in r.declined), r.declined
    assert r.model_runs


@pytest.mark.parametrize("model_type", NO_MLP_MODULES)
def test_family_without_mlp_modules(model_type):
    known(model_type)
    r = model_survey.survey(model_type)
    assert r.surveyed and r.fused == [] and r.declined == [] and r.model_runs


def test_survey_table_and_failure_flag(tmp_path):
    """The script's table marks a contract failure, and its exit status follows it."""
    ok = model_survey.SurveyResult("a", True, fused=[model_survey.FusedMLP("m", "AMLP", SWIGLU, (64, 128, 64), 4e-3, 1)],
                                   model_runs=True)
    bad = model_survey.SurveyResult("b", True, fused=[model_survey.FusedMLP("m", "BMLP", SWIGLU, (64, 128, 64), 4e-3, 0)],
                                    model_runs=True)
    skipped = model_survey.SurveyResult("c", False, error="ValueError: too big")
    assert ok.contract_ok and not bad.contract_ok
    table = model_survey.markdown([ok, bad, skipped], "versions")
    assert "| a | 1 | 0 | ok (4.0e-03) | 1 AMLP -> fp8_swiglu_mlp_bf16 |" in table
    assert "| b | 1 | 0 | FAIL (4.0e-03) |" in table
    assert "not surveyed: ValueError: too big" in table
