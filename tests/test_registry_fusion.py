"""Fusion on tiny transformers models (CPU): detection, the report, fallbacks, the fused
path (through pure-PyTorch stand-in kernels, with devices=('cuda', 'cpu')), state_dict
round trips, and the layers fusion must refuse."""

from __future__ import annotations

import json
import warnings

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("kernels")
pytest.importorskip("transformers")
import torch
from registry_helpers import (  # noqa: F401 - fixture
    calibrated_on,
    fresh_registry,
    fusion_config_for,
    make_standin,
    model_out,
    tiny_llama,
    tiny_phi3,
    token_batches,
)
import torch.nn.functional as F
from torch import nn

from static_fp8_mlp_registry import reference as ref
from static_fp8_mlp_registry.errors import FunctionMissingError, LocalArtifactError, StaticFP8FusionWarning
from static_fp8_mlp_registry.fusion import (
    _attr,
    FusedStaticFP8MLP,
    fuse_static_fp8_mlps,
    refresh_fused_mlps,
    unfuse_static_fp8_mlps,
)
from static_fp8_mlp_registry.layers import StaticFP8Linear, calibrate_static_fp8
from static_fp8_mlp_registry.loader import resolve_kernel

pytestmark = pytest.mark.usefixtures("fresh_registry")

CPU = ("cuda", "cpu")


@pytest.fixture
def standin(tmp_path):
    return {"path": str(make_standin(tmp_path / "standin"))}


def calibrated(kind: str, **kw):
    return calibrated_on(kind, "cpu", **kw)


def mlps(model):
    return {n: m for n, m in model.named_modules() if n.endswith("mlp")}


def same_state(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype == torch.float8_e4m3fn:
            x, y = x.view(torch.uint8), y.view(torch.uint8)
        if not torch.equal(x, y):
            return False
    return True


def snapshot(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------- the three models


MODELS = [
    ("llama", "fp8_swiglu_mlp_bf16", "silu", ["model.layers.0.mlp", "model.layers.1.mlp"]),
    ("gemma", "fp8_geglu_mlp_bf16", "gelu_tanh", ["model.layers.0.mlp", "model.layers.1.mlp"]),
    ("phi3", "fp8_swiglu_mlp_bf16", "silu", ["model.layers.0.mlp", "model.layers.1.mlp"]),  # merged gate_up_proj
    ("siglip", "fp8_gelu_mlp_bf16", "gelu_tanh", ["encoder.layers.0.mlp", "encoder.layers.1.mlp", "head.mlp"]),
    ("starcoder2", "fp8_gelu_mlp_bf16", "gelu_tanh", ["model.layers.0.mlp", "model.layers.1.mlp"]),  # c_fc / c_proj
    ("gpt_neox", "fp8_gelu_mlp_bf16", "gelu_tanh", ["gpt_neox.layers.0.mlp", "gpt_neox.layers.1.mlp"]),
]


@pytest.mark.parametrize("kind,endpoint,act,names", MODELS)
def test_fuse_report_fallback_and_state_dict(kind, endpoint, act, names, standin):
    model, batches = calibrated(kind)
    before_out = model_out(model, batches[0])
    before_state = snapshot(model)
    classes = {n: type(m) for n, m in mlps(model).items()}

    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))

    assert report.error is None
    assert report.fused_names == names
    for d in report.fused:
        assert d.endpoint == endpoint and d.activation == act and d.linear_type == "StaticFP8Linear"
        assert d.shape == (64, 128, 64) and d.reason == ""
    assert report.not_fused == []
    for n, m in mlps(model).items():
        assert isinstance(m, FusedStaticFP8MLP) and isinstance(m, classes[n])  # still the original class
        assert "static_fp8_fused=" + endpoint in repr(m)

    # On CPU the fused modules call the original forward: identical outputs.
    assert torch.equal(model_out(model, batches[0]), before_out)
    # state_dict keys and values unchanged; derived buffers are non-persistent.
    assert same_state(model.state_dict(), before_state)
    assert not any("_sfm" in k for k in model.state_dict())
    assert any("_sfm_channel_scale" in n for n, _ in model.named_buffers())

    text = str(report)
    assert f"fused {len(names)} of {len(names)} MLP modules" in text
    for n in names:
        assert n in text
    d = report.to_dict()
    json.dumps(d)
    assert d["fused"] == len(names) and d["kernels"]["input_quant"]["ok"]


@pytest.mark.parametrize("kind,endpoint,act,names", MODELS)
def test_fused_path_matches_unfused_static_fp8(kind, endpoint, act, names, standin):
    model, batches = calibrated(kind)
    unfused_out = model_out(model, batches[0])
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    kernel = resolve_kernel(standin).module
    kernel.CALLS.clear()
    fused_out = model_out(model, batches[0])
    assert kernel.CALLS.count(endpoint) == len(names)
    assert kernel.CALLS.count("channel_scale_quantize_fp8_static_bf16") == len(names)
    assert ref.rel_frobenius_error(fused_out, unfused_out) < 5e-2

    gen = torch.Generator().manual_seed(3)
    for name in report.fused_names:
        mlp = model.get_submodule(name)
        x = (torch.randn(3, 5, 64, generator=gen) * 2).bfloat16()
        fused = mlp(x)
        base = type(mlp)._sfm_base_cls.forward
        # the per-layer reference with fp32 activations is what the kernel computes
        exact = base(mlp, x.float()).bfloat16()
        assert fused.dtype == torch.bfloat16 and fused.shape == (3, 5, 64)
        assert ref.rel_frobenius_error(fused, exact) <= 1e-2
        # the unfused bf16 model additionally rounds the hidden activation to bf16
        assert ref.rel_frobenius_error(fused, base(mlp, x)) <= 3e-2


def test_per_channel_and_per_row_scales(standin):
    model = tiny_llama()
    calibrate_static_fp8(model, token_batches(), progress=False, per_channel=True)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert {d.scales for d in report.fused} == {"per-channel"}
    mlp = model.model.layers[0].mlp
    assert mlp._sfm_gate_up_weight_scale.shape == (256,)
    x = torch.randn(4, 64).bfloat16()
    assert ref.rel_frobenius_error(mlp(x), type(mlp)._sfm_base_cls.forward(mlp, x.float()).bfloat16()) <= 1e-2

    # per-tensor gate/up scales that differ -> one [2H] per-row scale
    model = tiny_llama()
    calibrate_static_fp8(model, token_batches(), progress=False)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert {d.scales for d in report.fused} == {"per-row (gate/up scales differ)"}
    mlp = model.model.layers[0].mlp
    s = mlp._sfm_gate_up_weight_scale
    assert s.shape == (256,)
    assert torch.equal(s[:128], mlp.gate_proj.weight_scale.expand(128))
    assert torch.equal(s[128:], mlp.up_proj.weight_scale.expand(128))
    assert torch.equal(mlp._sfm_gate_up_weight.view(torch.uint8)[:128], mlp.gate_proj.weight.view(torch.uint8))

    # equal per-tensor scales -> a one-element scale
    unfuse_static_fp8_mlps(model)
    for layer in model.model.layers:
        with torch.no_grad():
            layer.mlp.up_proj.weight_scale.copy_(layer.mlp.gate_proj.weight_scale)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert {d.scales for d in report.fused} == {"per-tensor"}
    assert model.model.layers[0].mlp._sfm_gate_up_weight_scale.shape == (1,)


# ------------------------------------------------------------------ refusals, reasons


def test_unsupported_activation_is_left_alone(standin):
    model, batches = calibrated("llama", act="relu")
    out = model_out(model, batches[0])
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.fused == []
    assert [d.reason for d in report.not_fused] == ["activation ReLU is not supported (needs SiLU or tanh-approximated GELU)"] * 2
    assert not any(isinstance(m, FusedStaticFP8MLP) for m in model.modules())
    assert torch.equal(model_out(model, batches[0]), out)


@pytest.mark.parametrize("kind,mlps", [("siglip", 3), ("gpt_neox", 2)])  # GPT-NeoX's default act
def test_erf_gelu_dense_is_left_alone(kind, mlps, standin):
    model, _ = calibrated(kind, act="gelu")
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.fused == [] and len(report.not_fused) == mlps
    assert all("activation gelu (erf) is not supported" in d.reason for d in report.not_fused)


def test_conv1d_weights_stored_in_out_are_refused(standin):
    """GPT-2's c_fc / c_proj are transformers' Conv1D: weight [in, out]. Read as [out, in]
    a square-ish MLP would pass the shape checks and compute garbage."""
    from transformers.pytorch_utils import Conv1D

    class GPT2LikeMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj = Conv1D(128, 64), Conv1D(64, 128)
            self.act = nn.GELU(approximate="tanh")

        def forward(self, x):
            return self.c_proj(self.act(self.c_fc(x)))

    mlp = GPT2LikeMLP()
    for layer in (mlp.c_fc, mlp.c_proj):  # compressed-tensors-style static FP8 tensors
        layer.weight = nn.Parameter(layer.weight.detach().to(torch.float8_e4m3fn), requires_grad=False)
        layer.register_buffer("weight_scale", torch.tensor(1.0))
        layer.register_buffer("input_scale", torch.tensor(1.0))
    report = fuse_static_fp8_mlps(nn.Sequential(mlp), fusion_config_for(standin))
    assert report.fused == []
    assert report.decision("0").reason == "c_fc (Conv1D) stores its weight as [in, out] (Conv1D); the kernels take [out, in]"


def test_declared_features_must_match_the_weight(standin):
    model, _ = calibrated("siglip", layers=1)
    fc1 = model.encoder.layers[0].mlp.fc1
    fc1.in_features, fc1.out_features = fc1.out_features, fc1.in_features
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.decision("encoder.layers.0.mlp").reason == (
        "fc1 declares out_features, in_features = (64, 128) but its weight has shape (128, 64), expected [out, in]")


def test_shape_not_multiple_of_16(standin):
    model, _ = calibrated("llama", inter=72)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert [d.reason for d in report.not_fused] == ["shape H=72 not a multiple of 16"] * 2
    assert report.not_fused[0].shape == (64, 72, 64)


def test_gated_bias_is_refused(standin):
    model, _ = calibrated("llama", mlp_bias=True)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.not_fused[0].reason == "bias on gate_proj, up_proj, down_proj (the gated kernels take no bias)"


def test_bf16_linears_are_not_static_fp8(standin):
    model = tiny_llama()
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.not_fused[0].reason == "gate_proj is Linear with bfloat16 weights, not static FP8"


def test_different_input_scales_fall_back_with_reason(standin):
    model, _ = calibrated("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.input_scale.mul_(2)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.fused_names == ["model.layers.0.mlp"]
    why = report.decision("model.layers.1.mlp").reason
    assert why.startswith("gate_proj and up_proj have different input_scale") and "must share one" in why


class OddMLP(nn.Module):
    """gate/up/down names, but not the SwiGLU wiring."""

    def __init__(self, variant: str):
        super().__init__()
        self.variant = variant
        self.gate_proj = nn.Linear(64, 128, bias=False)
        self.up_proj = nn.Linear(64, 128, bias=False)
        self.down_proj = nn.Linear(128, 64, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        if self.variant == "scaled":
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x)) * 2
        if self.variant == "swapped":
            return self.down_proj(self.gate_proj(x) * self.act_fn(self.up_proj(x)))
        if self.variant == "residual":
            return x + self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


@pytest.mark.parametrize(
    "variant,reason",
    [
        ("scaled", "its forward does not return down_proj's output unchanged"),
        ("swapped", "its forward does not feed down_proj with act(gate_proj(x)) * up_proj(x) for act=silu"),
        ("residual", "its forward does not return down_proj's output unchanged"),
        ("plain", ""),
    ],
)
def test_wiring_probe(variant, reason, standin):
    model = nn.Sequential(OddMLP(variant)).to(torch.bfloat16)
    calibrate_static_fp8(model, [torch.randn(4, 64).bfloat16()], progress=False)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    d = report.decision("0")
    assert d.reason == reason and d.fused == (reason == "")
    # the probe restored the module
    assert isinstance(model[0].gate_proj, StaticFP8Linear)


def test_instance_forward_override_is_refused(standin):
    model, _ = calibrated("llama")
    mlp = model.model.layers[0].mlp
    mlp.forward = mlp.forward  # what accelerate hooks do
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert "instance-level forward override" in report.decision("model.layers.0.mlp").reason
    assert report.fused_names == ["model.layers.1.mlp"]


class MergedMLP(nn.Module):
    """Phi-3's layout (one gate_up_proj), wired as Phi-3 does it, or not."""

    def __init__(self, variant: str = "phi3", rows: int = 256, bias: bool = False):
        super().__init__()
        self.variant = variant
        self.gate_up_proj = nn.Linear(64, rows, bias=bias)
        self.down_proj = nn.Linear(128, 64, bias=False)
        self.activation_fn = nn.SiLU()

    def forward(self, x):
        first, second = self.gate_up_proj(x).chunk(2, dim=-1)
        if self.variant == "up_first":  # [up; gate] rows: not the kernels' layout
            return self.down_proj(self.activation_fn(second) * first)
        return self.down_proj(second * self.activation_fn(first))  # as Phi3MLP writes it


@pytest.mark.parametrize(
    "variant,reason",
    [
        ("phi3", ""),
        ("up_first", "its forward does not feed down_proj with act(gate) * up with gate, up = "
                     "gate_up_proj(x).chunk(2, dim=-1) for act=silu"),
    ],
)
def test_merged_gate_up_wiring_probe(variant, reason, standin):
    model = nn.Sequential(MergedMLP(variant)).to(torch.bfloat16).eval()
    calibrate_static_fp8(model, [torch.randn(4, 64).bfloat16()], progress=False)
    assert isinstance(model[0].gate_up_proj, StaticFP8Linear)  # calibration finds the merged layout
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    d = report.decision("0")
    assert d.reason == reason and d.fused == (reason == "")
    if d.fused:
        assert d.shape == (64, 128, 64) and d.endpoint == "fp8_swiglu_mlp_bf16"
        x = torch.randn(5, 7, 64).bfloat16()
        mlp = model[0]
        assert ref.rel_frobenius_error(mlp(x), type(mlp)._sfm_base_cls.forward(mlp, x.float()).bfloat16()) <= 1e-2


@pytest.mark.parametrize(
    "rows,bias,reason",
    [
        (254, False, "inconsistent shapes: gate_up_proj (254, 64) (needs twice down_proj's input features), "
                     "down_proj (64, 128)"),
        (256, True, "bias on gate_up_proj (the gated kernels take no bias)"),
    ],
)
def test_merged_gate_up_refusals(rows, bias, reason, standin):
    mlp = MergedMLP(rows=rows, bias=bias)
    for name in ("gate_up_proj", "down_proj"):  # its forward may not run: no calibration
        setattr(mlp, name, StaticFP8Linear.from_linear(getattr(mlp, name), torch.tensor(1.0)))
    model = nn.Sequential(mlp)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.decision("0").reason == reason and report.fused == []


@pytest.mark.parametrize("per_channel", [False, True])
def test_merged_gate_up_weight_is_passed_as_it_is(per_channel, standin):
    """No [gate; up] copy is made: the kernel gets gate_up_proj's own weight and scale."""
    model = tiny_phi3()
    calibrate_static_fp8(model, token_batches(), progress=False, per_channel=per_channel)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert {d.scales for d in report.fused} == {"per-channel" if per_channel else "per-tensor"}
    mlp = model.model.layers[0].mlp
    assert not any("gate_up_weight" in n for n, _ in mlp.named_buffers())
    assert mlp._sfm_main_weight() is mlp.gate_up_proj.weight
    # ... so it keeps no record of the gate/up tensors' versions either
    assert not hasattr(mlp, "_sfm_sources") and "_sfm_seen" not in mlp.__dict__
    assert mlp._sfm_gate_up_scale().numel() == (256 if per_channel else 1)
    x = torch.randn(5, 7, 64).bfloat16()
    assert ref.rel_frobenius_error(mlp(x), type(mlp)._sfm_base_cls.forward(mlp, x.float()).bfloat16()) <= 1e-2
    # an in-place weight edit needs no refresh: the fused path reads the parameter itself
    with torch.no_grad():
        mlp.gate_up_proj.weight.copy_(mlp.gate_up_proj.weight.flip(0))
    assert ref.rel_frobenius_error(mlp(x), type(mlp)._sfm_base_cls.forward(mlp, x.float()).bfloat16()) <= 1e-2


class ProbedMLP(nn.Module):
    """A gated (or, with dense=True, dense) MLP under other names, whose activation is
    written in its forward (as LFM2's F.silu) or held as an attribute."""

    def __init__(self, variant: str, names=("w1", "w3", "w2"), dense: bool = False):
        super().__init__()
        self.variant, self.names, self.dense = variant, names, dense
        for n, (i, o) in zip(names, [(64, 128), (128, 64)] if dense else [(64, 128), (64, 128), (128, 64)]):
            setattr(self, n, nn.Linear(i, o, bias=False))
        if variant.startswith("attr_"):
            self.act_fn = nn.SiLU()

    def act(self, v):
        if self.variant in ("silu", "attr_silu"):
            return F.silu(v)
        if self.variant == "gelu_tanh":
            return F.gelu(v, approximate="tanh")
        if self.variant == "gelu_erf":
            return F.gelu(v)
        if self.variant == "attr_clamped":  # gpt-oss-style limit on the gate
            return self.act_fn(v.clamp(max=7.0))
        if self.variant == "attr_clamped_high":  # a limit far above real activations
            return self.act_fn(v.clamp(max=5000.0))
        raise ValueError(self.variant)

    def forward(self, x):
        proj = [getattr(self, n) for n in self.names]
        if self.dense:
            return proj[1](self.act(proj[0](x)))
        return proj[2](self.act(proj[0](x)) * proj[1](x))


NO_ACT = "no activation found (looked for act_fn, activation_fn, act, activation, activation_function, hidden_act_fn)"


@pytest.mark.parametrize(
    "variant,names,dense,endpoint,reason",
    [
        ("silu", ("w1", "w3", "w2"), False, "fp8_swiglu_mlp_bf16", ""),  # LFM2
        ("gelu_tanh", ("w1", "w3", "w2"), False, "fp8_geglu_mlp_bf16", ""),
        ("gelu_tanh", ("gate_proj", "up_proj", "down_proj"), False, "fp8_geglu_mlp_bf16", ""),
        ("gelu_tanh", ("fc_in", "fc_out"), True, "fp8_gelu_mlp_bf16", ""),  # GPT-J, CodeGen
        ("gelu_tanh", ("linear_fc1", "linear_fc2"), True, "fp8_gelu_mlp_bf16", ""),  # Qwen3-VL's vision tower
        ("attr_silu", ("w1", "w3", "w2"), False, "fp8_swiglu_mlp_bf16", ""),
        ("gelu_erf", ("w1", "w3", "w2"), False, None,
         f"{NO_ACT}, and the probe found no SiLU or tanh-approximated GELU in its forward (its forward does not "
         "feed w2 with act(w1(x)) * w3(x) for act=silu)"),
        ("silu", ("fc1", "fc2"), True, None,
         f"{NO_ACT}, and the probe found no tanh-approximated GELU in its forward (its forward does not feed fc2 "
         "with act(fc1(x)) for act=gelu_tanh)"),
        ("attr_clamped", ("gate_proj", "up_proj", "down_proj"), False, None,
         "its forward does not feed down_proj with act(gate_proj(x)) * up_proj(x) for act=silu"),
        ("attr_clamped_high", ("gate_proj", "up_proj", "down_proj"), False, None,
         "its forward does not feed down_proj with act(gate_proj(x)) * up_proj(x) for act=silu"),
    ],
)
def test_activation_and_names_read_by_the_probe(variant, names, dense, endpoint, reason, standin):
    """The probe decides the activation where no attribute names it, under every name
    set; its stand-in outputs reach 1e5, so a clamp at 7 or 5000 is seen (N(0, 1)
    stand-ins never reached 7, those up to 1e3 never 5000, and such MLPs fused: wrong
    wherever a real gate passed the clamp)."""
    model = nn.Sequential(ProbedMLP(variant, names, dense)).to(torch.bfloat16).eval()
    calibrate_static_fp8(model, [torch.randn(4, 64).bfloat16()], progress=False)
    assert all(isinstance(getattr(model[0], n), StaticFP8Linear) for n in names)  # calibration finds the names
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    d = report.decision("0")
    assert d.reason == reason and d.fused == (endpoint is not None) and d.endpoint == endpoint
    if d.fused:
        mlp = model[0]
        x = (torch.randn(5, 7, 64) * 2).bfloat16()
        kernel = resolve_kernel(standin).module
        kernel.CALLS.clear()
        fused = mlp(x)
        assert kernel.CALLS == ["channel_scale_quantize_fp8_static_bf16", endpoint]
        assert ref.rel_frobenius_error(fused, type(mlp)._sfm_base_cls.forward(mlp, x.float()).bfloat16()) <= 1e-2


class LoraLike(nn.Module):
    """An adapter around a static FP8 linear that passes every attribute it lacks
    (weight, weight_scale, input_scale, in/out_features) through from its base layer, so
    it looks like the layer itself (PEFT's LoRA layers pass weight through); its forward
    adds a low-rank term."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, 4, bias=False, dtype=torch.bfloat16)
        self.lora_B = nn.Linear(4, base.out_features, bias=False, dtype=torch.bfloat16)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["base_layer"], name)

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x.to(self.lora_A.weight.dtype))).to(x.dtype)


def _add_one(module, args, out):
    return out + 1


@pytest.mark.parametrize(
    "where,reason",
    [
        ("lora", "up_proj (LoraLike) has submodules (base_layer, lora_A, lora_B), e.g. an adapter, whose work "
                 "the fused kernels would skip"),
        ("hook", "down_proj has forward hooks, which the fused kernels would skip"),
        ("act_hook", "act_fn has forward hooks, which the fused kernels would skip"),
        ("instance_forward", "gate_proj has an instance-level forward override (e.g. accelerate hooks or "
                             "offloading), which the fused kernels would skip"),
    ],
)
def test_layers_whose_own_forward_matters_are_not_fused(where, reason, standin):
    """The fused kernels stand in for the projections' and the activation's forward: an
    adapter or a hook there would be skipped, a wrong answer with no error."""
    model, batches = calibrated("llama")
    mlp = model.model.layers[0].mlp
    if where == "lora":
        mlp.up_proj = LoraLike(mlp.up_proj)
    elif where == "hook":
        mlp.down_proj.register_forward_hook(_add_one)
    elif where == "act_hook":
        mlp.act_fn.register_forward_hook(_add_one)
    else:
        mlp.gate_proj.forward = mlp.gate_proj.forward
    before = model_out(model, batches[0])
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))  # CPU: fused modules fall back
    assert report.decision("model.layers.0.mlp").reason == reason
    assert report.fused_names == ["model.layers.1.mlp"]
    assert torch.equal(model_out(model, batches[0]), before)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # peft vs transformers 5.25
def test_real_peft_lora_on_fp8_projections_is_refused(standin):
    """PEFT's LoRA layer on transformers' static FP8Linear: refused as an adapter (it
    passes weight through from its base layer, not the scales; before the thirty-fourth
    session the reason given was the missing scale)."""
    peft = pytest.importorskip("peft")
    model = tiny_llama()
    for layer in model.model.layers:
        layer.mlp.gate_proj = _fp8_linear(64, 128)
        layer.mlp.up_proj = _fp8_linear(64, 128)
        layer.mlp.down_proj = _fp8_linear(128, 64)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["up_proj"]))
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert report.fused == [] and len(report.not_fused) == 2
    for d in report.not_fused:
        assert d.reason.startswith("up_proj (Linear) has submodules (base_layer, ") and "an adapter" in d.reason


def test_hook_added_after_fusion_runs_unfused_while_it_is_there(standin):
    model, _ = calibrated("llama")
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    mlp = model.get_submodule(report.fused_names[0])
    kernel = resolve_kernel(standin).module
    x = torch.randn(3, 64).bfloat16()
    base = type(mlp)._sfm_base_cls.forward

    handle = mlp.down_proj.register_forward_hook(_add_one)
    kernel.CALLS.clear()
    with pytest.warns(StaticFP8FusionWarning, match="down_proj now has forward hooks; this module runs unfused"):
        out = mlp(x)
    assert kernel.CALLS == [] and torch.equal(out, base(mlp, x))  # the hook's +1 included
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once
        mlp(x)

    handle.remove()
    kernel.CALLS.clear()
    out = mlp(x)
    assert kernel.CALLS == ["channel_scale_quantize_fp8_static_bf16", "fp8_swiglu_mlp_bf16"]
    assert ref.rel_frobenius_error(out, base(mlp, x.float()).bfloat16()) <= 1e-2


@pytest.mark.parametrize("what", ["activation", "adapter", "plain_layer"])
def test_layer_replaced_after_fusion_runs_unfused(what, standin):
    """A projection or the activation replaced after fusion (another activation; an
    adapter wrapped around down_proj, as peft.get_peft_model on a fused model does; a
    bf16 layer): the fused path would skip the new layer's work, or read scales it does
    not have. The module runs unfused, warned once, and so does a deep copy of it."""
    import copy

    model, _ = calibrated("llama")
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    mlp = model.get_submodule(report.fused_names[0])
    kernel = resolve_kernel(standin).module
    base = type(mlp)._sfm_base_cls.forward
    if what == "activation":
        mlp.act_fn, name = nn.ReLU(), "act_fn"
    elif what == "adapter":
        mlp.down_proj, name = LoraLike(mlp.down_proj), "down_proj"
        nn.init.normal_(mlp.down_proj.lora_B.weight)
    else:
        mlp.up_proj, name = nn.Linear(64, 128, bias=False, dtype=torch.bfloat16), "up_proj"
    x = torch.randn(3, 64).bfloat16()
    kernel.CALLS.clear()
    with pytest.warns(StaticFP8FusionWarning, match=f"{name} was replaced since fusion; this module runs unfused"):
        out = mlp(x)
    assert kernel.CALLS == [] and torch.equal(out, base(mlp, x))
    twin = copy.deepcopy(mlp)
    with pytest.warns(StaticFP8FusionWarning, match=f"{name} was replaced since fusion"):
        assert torch.equal(twin(x), base(twin, x))
    assert kernel.CALLS == []

    unfuse_static_fp8_mlps(model)  # fusing again decides afresh
    again = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert report.fused_names[0] not in again.fused_names


def test_pattern_not_enabled(standin):
    model, _ = calibrated("siglip")
    cfg = {"static_quantized_mlp": {"input_quant": standin, "gated_mlp": standin}}
    report = fuse_static_fp8_mlps(model, cfg)
    assert all(d.reason == "dense_gelu_mlp is not enabled in fusion_config" for d in report.not_fused)


# -------------------------------------------------------- other static FP8 layer types


def _fp8_linear(in_f, out_f, *, block_size=None, scheme="static", w=None):
    from transformers.integrations.finegrained_fp8 import FP8Linear

    lin = FP8Linear(in_f, out_f, block_size=block_size, activation_scheme=scheme)
    g = torch.Generator().manual_seed(in_f * 7 + out_f)
    with torch.no_grad():
        lin.weight.copy_(ref.q_fp8(torch.randn(out_f, in_f, generator=g) * 100))
        if block_size is None:
            lin.weight_scale_inv.fill_(0.002)
        if scheme == "static":
            lin.activation_scale.fill_(0.01)
    return lin


def test_transformers_fp8linear_static(standin):
    model = tiny_llama()
    for layer in model.model.layers:
        layer.mlp.gate_proj = _fp8_linear(64, 128)
        layer.mlp.up_proj = _fp8_linear(64, 128)
        layer.mlp.down_proj = _fp8_linear(128, 64)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    assert report.fused_names == ["model.layers.0.mlp", "model.layers.1.mlp"]
    assert report.fused[0].linear_type == "FP8Linear (transformers, static)"
    mlp = model.model.layers[0].mlp
    x = torch.randn(6, 64).bfloat16()
    out = mlp(x)
    xq = ref.input_quant(x, torch.ones(64, dtype=torch.bfloat16), mlp.gate_proj.activation_scale)
    expected = ref.gated_mlp(
        xq, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), mlp.down_proj.weight,
        mlp.gate_proj.activation_scale, mlp.gate_proj.weight_scale_inv, mlp.down_proj.activation_scale,
        mlp.down_proj.weight_scale_inv, "silu",
    )
    assert ref.rel_frobenius_error(out, expected) < 1e-3


@pytest.mark.parametrize(
    "kw,reason",
    [
        ({"block_size": (128, 128), "scheme": "dynamic"}, "gate_proj is a block-wise FP8Linear (block_size=(128, 128)), not static per-tensor FP8"),
        ({"scheme": "dynamic"}, "gate_proj is an FP8Linear with dynamic activation scales, not static FP8"),
    ],
)
def test_transformers_fp8linear_other_schemes_refused(kw, reason, standin):
    model = tiny_llama(layers=1)
    mlp = model.model.layers[0].mlp
    mlp.gate_proj, mlp.up_proj, mlp.down_proj = _fp8_linear(64, 128, **kw), _fp8_linear(64, 128, **kw), _fp8_linear(128, 64, **kw)
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert report.not_fused[0].reason == reason


class CompressedTensorsLinear(nn.Module):
    """What a compressed-tensors static FP8 checkpoint holds (channel-wise weight scale [out, 1])."""

    def __init__(self, in_f, out_f, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(ref.q_fp8(torch.randn(out_f, in_f, generator=g) * 100), requires_grad=False)
        self.weight_scale = nn.Parameter(torch.rand(out_f, 1, generator=g) * 0.003 + 0.001, requires_grad=False)
        self.input_scale = nn.Parameter(torch.tensor([0.02]), requires_grad=False)
        self.register_parameter("bias", None)

    def forward(self, x):
        a = ref.q_fp8(x.float() / self.input_scale).float() * self.input_scale
        return (a @ (self.weight.float() * self.weight_scale).T).to(x.dtype)


def test_compressed_tensors_style_layers(standin):
    model = tiny_llama(layers=1)
    mlp = model.model.layers[0].mlp
    mlp.gate_proj, mlp.up_proj, mlp.down_proj = (
        CompressedTensorsLinear(64, 128, 1), CompressedTensorsLinear(64, 128, 2), CompressedTensorsLinear(128, 64, 3)
    )
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    d = report.fused[0]
    assert d.linear_type == "CompressedTensorsLinear (compressed-tensors style)" and d.scales == "per-channel"
    x = torch.randn(5, 64).bfloat16()
    exact = type(mlp)._sfm_base_cls.forward(mlp, x.float()).bfloat16()
    assert ref.rel_frobenius_error(mlp(x), exact) <= 1e-2


# ------------------------------------------------------ kernel failures: model untouched


def test_missing_kernel_leaves_model_untouched_with_one_warning(tmp_path):
    model, batches = calibrated("llama")
    out = model_out(model, batches[0])
    cfg = fusion_config_for({"path": str(tmp_path / "missing")})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = fuse_static_fp8_mlps(model, cfg)
    ours = [w for w in caught if issubclass(w.category, StaticFP8FusionWarning)]
    assert len(ours) == 1
    assert "left unchanged" in str(ours[0].message) and "does not exist" in str(ours[0].message)
    assert report.error and report.fused == []
    assert all(d.reason.startswith("kernel unavailable") for d in report.not_fused)
    assert report.kernels["gated_mlp"].error_kind == "local_artifact"
    assert not any(isinstance(m, FusedStaticFP8MLP) for m in model.modules())
    assert torch.equal(model_out(model, batches[0]), out)
    with pytest.raises(LocalArtifactError):
        fuse_static_fp8_mlps(model, cfg, strict=True)


def test_failed_validation_leaves_model_untouched(tmp_path):
    model, _ = calibrated("gemma")
    bad = {"path": str(make_standin(tmp_path / "bad", omit=("fp8_geglu_mlp_bf16",)))}
    with pytest.warns(StaticFP8FusionWarning, match="no function 'fp8_geglu_mlp_bf16'"):
        report = fuse_static_fp8_mlps(model, fusion_config_for(bad))
    assert report.fused == [] and not any(isinstance(m, FusedStaticFP8MLP) for m in model.modules())
    with pytest.raises(FunctionMissingError):
        fuse_static_fp8_mlps(model, fusion_config_for(bad), strict=True)
    # disabling geglu in the config makes the build acceptable; the GeGLU MLPs say why they stay unfused
    cfg = {"static_quantized_mlp": {"input_quant": bad, "gated_mlp": {**bad, "geglu_func": None}}}
    report = fuse_static_fp8_mlps(model, cfg)
    assert report.error is None
    assert [d.reason for d in report.not_fused] == ["fusion_config disables geglu_func (activation gelu_tanh)"] * 2


def test_disabled_config_and_dry_run(standin):
    model, _ = calibrated("llama")
    assert not fuse_static_fp8_mlps(model, {"static_quantized_mlp": False}).enabled
    report = fuse_static_fp8_mlps(model, fusion_config_for(standin), dry_run=True)
    assert report.dry_run and len(report.fused) == 2
    assert "would fuse 2 of 2" in str(report)
    assert not any(isinstance(m, FusedStaticFP8MLP) for m in model.modules())


# ------------------------------------------------------------------ runtime behaviour


def test_runtime_fallbacks(standin):
    model, _ = calibrated("llama")
    fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    kernel = resolve_kernel(standin).module
    mlp = model.model.layers[0].mlp
    base = type(mlp)._sfm_base_cls.forward
    x = torch.randn(4, 64).bfloat16()

    def fused_calls(fn):
        kernel.CALLS.clear()
        out = fn()
        return len(kernel.CALLS), out

    assert fused_calls(lambda: mlp(x))[0] == 2
    assert fused_calls(lambda: mlp(x=x))[0] == 2  # the original's parameter name
    n, out = fused_calls(lambda: mlp(x.float()))  # another dtype
    assert n == 0 and torch.equal(out, base(mlp, x.float()))
    mlp.train()
    n, out = fused_calls(lambda: mlp(x))
    assert n == 0 and torch.equal(out, base(mlp, x))
    mlp.eval()
    xg = x.clone().requires_grad_(True)
    assert fused_calls(lambda: mlp(xg))[0] == 0
    with torch.no_grad():
        assert fused_calls(lambda: mlp(xg))[0] == 2
    kernel.CALLS.clear()
    with pytest.raises(RuntimeError):  # wrong K: the original module's own error
        mlp(torch.randn(4, 32).bfloat16())
    assert kernel.CALLS == []
    with pytest.raises(RuntimeError):  # a 0-dim input: the original module's own error too
        mlp(torch.tensor(1.0).bfloat16())
    assert kernel.CALLS == []
    fp8_down = mlp.down_proj.weight
    mlp.down_proj.weight = nn.Parameter(fp8_down.bfloat16(), requires_grad=False)  # dequantized: not FP8
    n, out = fused_calls(lambda: mlp(x))
    assert n == 0 and torch.equal(out, base(mlp, x))
    mlp.down_proj.weight = fp8_down
    assert fused_calls(lambda: mlp(x))[0] == 2
    mlp._sfm_enabled = False
    assert fused_calls(lambda: mlp(x))[0] == 0


def test_state_dict_round_trips(standin, tmp_path):
    from safetensors.torch import load_file, save_file

    model, batches = calibrated("llama", seed=0)
    fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    out = model_out(model, batches[0])
    state = model.state_dict()
    torch.save(state, tmp_path / "sd.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "sd.safetensors")

    # into an unfused model of the same structure (different values)
    other, _ = calibrated("llama", seed=5)
    assert not torch.equal(model_out(other, batches[0]), out)
    other.load_state_dict(torch.load(tmp_path / "sd.pt"))
    assert same_state(other.state_dict(), state)

    # into a fused model: the post-hook rebuilds the concatenated weight and scales
    fused_other, _ = calibrated("llama", seed=7)
    fuse_static_fp8_mlps(fused_other, fusion_config_for(standin), devices=CPU)
    fused_other.load_state_dict(load_file(tmp_path / "sd.safetensors"))
    assert same_state(fused_other.state_dict(), state)
    assert torch.equal(model_out(fused_other, batches[0]), out)
    m0 = fused_other.model.layers[0].mlp
    assert torch.equal(
        m0._sfm_gate_up_weight.view(torch.uint8),
        torch.cat([m0.gate_proj.weight, m0.up_proj.weight]).view(torch.uint8),
    )


def test_refresh_after_in_place_edit_and_scale_mismatch_disables(standin):
    model, _ = calibrated("llama")
    fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    mlp = model.model.layers[0].mlp
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(ref.q_fp8(torch.randn(128, 64) * 50))
    assert refresh_fused_mlps(model) == 2
    assert torch.equal(mlp._sfm_gate_up_weight.view(torch.uint8)[:128], mlp.gate_proj.weight.view(torch.uint8))
    with torch.no_grad():
        mlp.up_proj.input_scale.mul_(3)
    with pytest.warns(StaticFP8FusionWarning, match="no longer share one static input_scale"):
        refresh_fused_mlps(model)
    assert mlp._sfm_enabled is False
    x = torch.randn(2, 64).bfloat16()
    assert torch.equal(mlp(x), type(mlp)._sfm_base_cls.forward(mlp, x))


def test_in_place_edits_reach_the_kernels_without_refresh(standin):
    """The [gate; up] copy follows in-place edits and replaced tensors of gate/up on the
    next call (eager): stale weights, or a stale input scale that the fused path would
    read from gate_proj alone, would be a wrong answer with no error."""
    model, _ = calibrated("llama")
    fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    mlp = model.model.layers[0].mlp
    kernel = resolve_kernel(standin).module
    x = (torch.randn(5, 64) * 2).bfloat16()
    base = type(mlp)._sfm_base_cls.forward

    def fused_matches():
        kernel.CALLS.clear()
        out = mlp(x)
        return "fp8_swiglu_mlp_bf16" in kernel.CALLS and ref.rel_frobenius_error(out, base(mlp, x.float()).bfloat16()) <= 1e-2

    assert fused_matches()
    with torch.no_grad():
        mlp.gate_proj.weight.copy_(ref.q_fp8(torch.randn(128, 64) * 50))  # in place
    assert fused_matches()
    assert torch.equal(mlp._sfm_gate_up_weight.view(torch.uint8)[:128], mlp.gate_proj.weight.view(torch.uint8))
    mlp.up_proj.weight = nn.Parameter(ref.q_fp8(torch.randn(128, 64) * 50), requires_grad=False)  # replaced
    assert fused_matches()
    with torch.no_grad():
        mlp.up_proj.weight_scale.mul_(2)
    assert fused_matches()
    with torch.no_grad():
        mlp.up_proj.input_scale.mul_(3)  # no longer shared with gate_proj: unfused, warned
    with pytest.warns(StaticFP8FusionWarning, match="no longer share one static input_scale"):
        kernel.CALLS.clear()
        assert torch.equal(mlp(x), base(mlp, x)) and kernel.CALLS == []
    with torch.no_grad():
        mlp.up_proj.input_scale.copy_(mlp.gate_proj.input_scale)  # shared again: fused again
    assert fused_matches()


def test_unfuse_and_refuse_double_fusion(standin):
    model, batches = calibrated("siglip")
    before = snapshot(model)
    fuse_static_fp8_mlps(model, fusion_config_for(standin))
    again = fuse_static_fp8_mlps(model, fusion_config_for(standin))
    assert all(d.reason == "already fused" for d in again.not_fused)
    assert unfuse_static_fp8_mlps(model) == 3
    assert not any(isinstance(m, FusedStaticFP8MLP) for m in model.modules())
    assert not any("_sfm" in n for n, _ in model.named_buffers())
    assert same_state(model.state_dict(), before)


@pytest.mark.parametrize("kind", ["gemma", "phi3"])
def test_torch_compile_fullgraph_traces_the_fused_forward(kind, standin):
    model, _ = calibrated(kind, layers=1)
    fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    mlp = model.model.layers[0].mlp
    x = torch.randn(2, 3, 64).bfloat16()
    eager = mlp(x)
    torch._dynamo.reset()
    compiled = torch.compile(mlp, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.equal(compiled(x), eager)


# --------------------------------------------------------------------- calibration


def test_calibrate_scales_are_amax_based():
    model = tiny_llama(layers=1)
    mlp = model.model.layers[0].mlp
    seen = []
    h = mlp.gate_proj.register_forward_hook(lambda m, a, o: seen.append(a[0].abs().amax().float()))
    batches = token_batches(2)
    for b in batches:
        with torch.no_grad():
            model(b)
    h.remove()
    w_amax = mlp.gate_proj.weight.detach().float().abs().amax()
    layers = calibrate_static_fp8(model, batches, progress=True)
    assert sorted(layers) == ["model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    g = model.model.layers[0].mlp.gate_proj
    assert isinstance(g, StaticFP8Linear)
    assert torch.allclose(g.input_scale, torch.stack(seen).max() / 448)
    assert torch.allclose(g.weight_scale, w_amax / 448)
    assert g.weight.dtype == torch.float8_e4m3fn and g.weight.float().abs().max() == 448
    # gate and up see the same input: one shared input scale
    assert torch.equal(g.input_scale, model.model.layers[0].mlp.up_proj.input_scale)


def test_static_fp8_linear_forward_is_the_static_math():
    lin = nn.Linear(32, 16, bias=True).bfloat16()
    q = StaticFP8Linear.from_linear(lin, 3.0, per_channel=True)
    x = (torch.randn(4, 32) * 2).bfloat16()
    a = ref.q_fp8(x.float() / q.input_scale).float() * q.input_scale
    expected = (a @ (q.weight.float() * q.weight_scale[:, None]).T + q.bias.float()).bfloat16()
    assert torch.equal(q(x), expected)
    assert "per-channel" in repr(q)


def test_real_build_fuses_and_falls_back_on_cpu(request):
    from registry_helpers import real_build_dir

    build = real_build_dir(request)
    model, batches = calibrated("llama")
    out = model_out(model, batches[0])
    report = fuse_static_fp8_mlps(model, fusion_config_for({"path": str(build)}), strict=True)
    assert report.fused_names == ["model.layers.0.mlp", "model.layers.1.mlp"]
    assert report.kernels["gated_mlp"].resolved["name"] == "static-fp8-mlp"
    assert torch.equal(model_out(model, batches[0]), out)  # CPU input: the original forward


def test_deepcopy_stays_fused_and_pickling_stores_the_original(standin):
    import copy
    import io

    model, batches = calibrated("llama")
    out = model_out(model, batches[0])
    fuse_static_fp8_mlps(model, fusion_config_for(standin), devices=CPU)
    fused_out = model_out(model, batches[0])

    twin = copy.deepcopy(model)
    t0, m0 = twin.model.layers[0].mlp, model.model.layers[0].mlp
    assert isinstance(t0, FusedStaticFP8MLP) and t0._sfm_gate_up_weight.data_ptr() != m0._sfm_gate_up_weight.data_ptr()
    assert torch.equal(model_out(twin, batches[0]), fused_out)
    other, _ = calibrated("llama", seed=9)
    twin.load_state_dict(other.state_dict())  # the copy's own hook refreshes the copy only
    assert torch.equal(t0._sfm_gate_up_weight.view(torch.uint8), torch.cat([t0.gate_proj.weight, t0.up_proj.weight]).view(torch.uint8))
    assert torch.equal(model_out(model, batches[0]), fused_out)

    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert not any(isinstance(m, FusedStaticFP8MLP) for m in loaded.modules())
    assert type(loaded.model.layers[0].mlp).__name__ == "LlamaMLP"
    assert not any("_sfm" in n for n, _ in loaded.named_buffers())
    assert same_state(loaded.state_dict(), model.state_dict())
    assert torch.equal(model_out(loaded, batches[0]), out)
    assert isinstance(model.model.layers[0].mlp, FusedStaticFP8MLP)  # the original stays fused


def test_fast_attribute_lookup_matches_getattr():
    """The fused path's `_attr` (it skips nn.Module.__getattr__) returns what getattr does
    for every kind of attribute a projection can carry."""

    class Wrapped(nn.Module):  # an adapter-like layer: `weight` is a property
        def __init__(self):
            super().__init__()
            self.base_layer = StaticFP8Linear(4, 8)
            self.tag = "plain"
            self.register_buffer("scale_buf", torch.ones(()))
            self.register_parameter("bias", None)

        @property
        def weight(self):
            return self.base_layer.weight

    w = Wrapped()
    for name in ("base_layer", "tag", "scale_buf", "bias", "weight", "training", "forward"):
        assert _attr(w, name) is getattr(w, name) or _attr(w, name) == getattr(w, name), name
    with pytest.raises(AttributeError):
        _attr(w, "missing")
