"""Fuse static-FP8 MLP modules of a model into the Hub kernels a `fusion_config` names.

`fuse_static_fp8_mlps(model, fusion_config)`:

1. parses the config (errors raise `FusionConfigError`);
2. resolves and validates every enabled kernel *before touching any module*; if one
   fails, the model is left untouched with one `StaticFP8FusionWarning` (or the error
   is raised with `strict=True`);
3. finds gated MLPs (`gate_proj`, `up_proj`, `down_proj`, or LFM2's `w1`, `w3`, `w2`,
   or Phi-3/GLM's merged `gate_up_proj`, `down_proj`; SiLU or tanh-GELU) and dense GELU
   MLPs (`fc1`, `fc2`, or `c_fc`, `c_proj`, or `dense_h_to_4h`, `dense_4h_to_h`, or
   `fc_in`, `fc_out`, or `linear_fc1`, `linear_fc2`; tanh-GELU) whose linears are static
   FP8 (this project's
   `StaticFP8Linear`, transformers' `FP8Linear` in static per-tensor mode, or
   compressed-tensors-style `weight`/`weight_scale`/`input_scale` layers), checks
   layout, activation, biases, scales and shapes, and runs a wiring probe (the
   module's own forward on stand-in linears must compute `down(act(gate(x)) * up(x))`,
   with gate the first half of `gate_up_proj(x)` in the merged layout, resp.
   `fc2(gelu(fc1(x)))`; where the module has no activation attribute that names SiLU
   or tanh-GELU, the probe alone decides which one its forward computes, if any);
4. turns each supported module into a fused one *in place*: its class becomes a
   subclass of the original (so `isinstance`, attributes, parameters and `state_dict()`
   keys and values stay exactly as they were) whose forward calls the kernels, and
   falls back to the original forward for any input the kernels cannot take (not
   bf16, not on a device the build covers, training mode, autograd, extra
   arguments).

The concatenated gate/up weight (not needed for a merged `gate_up_proj`, whose weight is
already `[gate; up]`) and derived scales are non-persistent buffers (not in
`state_dict()`), rebuilt by a `load_state_dict` post-hook and, in eager mode, by the
next call after an in-place edit or replacement of a gate/up tensor;
`refresh_fused_mlps(model)` rebuilds them on demand (needed under torch.compile).
`unfuse_static_fp8_mlps(model)` restores the original classes.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import nn

from . import reference as ref
from .config import FusionConfig, KernelSpec
from .errors import RegistryError, StaticFP8FusionWarning
from .layers import DENSE_NAME_SETS, GATED_NAME_SETS, MERGED_NAMES, MLP_NAME_SETS, StaticFP8Linear
from .report import FusionReport, KernelSummary, ModuleDecision

logger = logging.getLogger(__name__)

FP8 = torch.float8_e4m3fn
GATED_ENDPOINTS = {"silu": "fp8_swiglu_mlp_bf16", "gelu_tanh": "fp8_geglu_mlp_bf16"}
DENSE_ENDPOINT = "fp8_gelu_mlp_bf16"
QUANT_ENDPOINT = "channel_scale_quantize_fp8_static_bf16"
ACT_ATTRS = ("act_fn", "activation_fn", "act", "activation", "activation_function", "hidden_act_fn")
ALIGN = 16


# ============================================================================ linears


@dataclass
class QLinear:
    """A static-FP8 linear and where its tensors live."""

    module: nn.Module
    kind: str
    weight_attr: str = "weight"
    weight_scale_attr: str = "weight_scale"
    input_scale_attr: str = "input_scale"

    @property
    def weight(self) -> torch.Tensor:
        return getattr(self.module, self.weight_attr)

    @property
    def weight_scale(self) -> torch.Tensor:
        return getattr(self.module, self.weight_scale_attr)

    @property
    def input_scale(self) -> torch.Tensor:
        return getattr(self.module, self.input_scale_attr)

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.module, "bias", None)

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def per_tensor(self) -> bool:
        return self.weight_scale.numel() == 1


def _fp8_linear_class():
    import sys

    mod = sys.modules.get("transformers.integrations.finegrained_fp8")
    return getattr(mod, "FP8Linear", None) if mod is not None else None


def _first_tensor_attr(module: nn.Module, names: Iterable[str]) -> str | None:
    for n in names:
        if isinstance(getattr(module, n, None), torch.Tensor):
            return n
    return None


def own_forward_required(module: nn.Module) -> str:
    """Why the fused kernels may not stand in for `module`'s own forward ('' if they may):
    forward hooks, or an instance-level forward (accelerate's offloading hooks) would
    run in the unfused model and be skipped by the fused one."""
    if module._forward_hooks or module._forward_pre_hooks:
        return "forward hooks"
    if "forward" in module.__dict__:
        return "an instance-level forward override (e.g. accelerate hooks or offloading)"
    return ""


def inspect_linear(module: nn.Module, role: str) -> tuple[QLinear | None, str]:
    """Classify one projection; returns (QLinear, '') or (None, reason)."""
    tname = type(module).__name__
    why = own_forward_required(module)
    if why:
        return None, f"{role} has {why}, which the fused kernels would skip"
    if module._modules:
        # A wrapper adds work of its own, and may look like the layer it wraps (PEFT's
        # LoRA layers pass weight through from their base layer).
        return None, (f"{role} ({tname}) has submodules ({', '.join(module._modules)}), e.g. an adapter, "
                      "whose work the fused kernels would skip")
    fp8_cls = _fp8_linear_class()
    if fp8_cls is not None and isinstance(module, fp8_cls):
        block = getattr(module, "block_size", None)
        if block is not None:
            return None, f"{role} is a block-wise FP8Linear (block_size={tuple(block)}), not static per-tensor FP8"
        if getattr(module, "activation_scheme", None) != "static" or getattr(module, "activation_scale", None) is None:
            return None, f"{role} is an FP8Linear with dynamic activation scales, not static FP8"
        q = QLinear(module, "FP8Linear (transformers, static)", "weight", "weight_scale_inv", "activation_scale")
    else:
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            return None, f"{role} ({tname}) has no weight tensor"
        if weight.dtype != FP8:
            return None, f"{role} is {tname} with {str(weight.dtype).replace('torch.', '')} weights, not static FP8"
        ws = _first_tensor_attr(module, ("weight_scale", "weight_scale_inv"))
        if ws is None:
            return None, f"{role} ({tname}) has FP8 weights but no weight_scale"
        ins = _first_tensor_attr(module, ("input_scale", "activation_scale"))
        if ins is None:
            return None, f"{role} ({tname}) has no input_scale: dynamic activation quantization is not static FP8"
        kind = "StaticFP8Linear" if isinstance(module, StaticFP8Linear) else f"{tname} (compressed-tensors style)"
        q = QLinear(module, kind, "weight", ws, ins)

    w = q.weight
    if isinstance(getattr(module, "nf", None), int) and isinstance(getattr(module, "nx", None), int):
        # transformers' Conv1D (GPT-2's c_fc / c_proj) keeps its weight as [in, out]; read as
        # [out, in] it would pass every shape check when square-ish and compute garbage.
        return None, f"{role} ({tname}) stores its weight as [in, out] (Conv1D); the kernels take [out, in]"
    declared = (getattr(module, "out_features", None), getattr(module, "in_features", None))
    if all(isinstance(v, int) for v in declared) and w.dim() == 2 and declared != tuple(w.shape):
        return None, (f"{role} declares out_features, in_features = {declared} but its weight has shape "
                      f"{tuple(w.shape)}, expected [out, in]")
    if w.dtype != FP8:
        return None, f"{role} weight is {w.dtype}, the kernels take float8_e4m3fn"
    if w.dim() != 2:
        return None, f"{role} weight has shape {tuple(w.shape)}, expected [out, in]"
    if w.device.type == "meta":
        return None, f"{role} weights are on the meta device (not loaded)"
    if not w.is_contiguous():
        return None, f"{role} weight is not contiguous (strides {w.stride()})"
    ws = q.weight_scale
    if not (ws.numel() == 1 or (ws.numel() == w.shape[0] and (ws.dim() == 1 or (ws.dim() == 2 and ws.shape[1] == 1)))):
        return None, (
            f"{role} weight_scale has shape {tuple(ws.shape)}: only per-tensor or per-output-channel "
            "scales are supported (not block-wise)"
        )
    if q.input_scale.numel() != 1:
        return None, f"{role} input_scale has shape {tuple(q.input_scale.shape)}, expected one static per-tensor value"
    if not (ws.is_floating_point() and q.input_scale.is_floating_point()):
        return None, f"{role} scales are not floating point"
    return q, ""


# ======================================================================== activations


def classify_activation(act: Any) -> tuple[str | None, str]:
    """('silu' | 'gelu_tanh' | None, description)."""
    import functools
    import sys

    tname = type(act).__name__
    if isinstance(act, nn.SiLU) or act is torch.nn.functional.silu or tname == "SiLUActivation":
        return "silu", "silu"
    if isinstance(act, nn.GELU):
        return ("gelu_tanh", "gelu_tanh") if act.approximate == "tanh" else (None, "gelu (erf)")
    acts = sys.modules.get("transformers.activations")
    if acts is not None:
        tanh_classes = tuple(
            c for c in (getattr(acts, n, None) for n in ("GELUTanh", "PytorchGELUTanh", "NewGELUActivation", "FastGELUActivation")) if c
        )
        if tanh_classes and isinstance(act, tanh_classes):
            return "gelu_tanh", "gelu_tanh"
        gelu_cls = getattr(acts, "GELUActivation", None)
        if gelu_cls is not None and isinstance(act, gelu_cls):
            return None, "gelu (erf)"
    if isinstance(act, functools.partial) and act.func is torch.nn.functional.gelu and act.keywords.get("approximate") == "tanh":
        return "gelu_tanh", "gelu_tanh"
    if act is torch.nn.functional.gelu:
        return None, "gelu (erf)"
    name = getattr(act, "__name__", None) or tname
    return None, name


def _find_activation(module: nn.Module) -> tuple[str | None, Any]:
    for attr in ACT_ATTRS:
        if attr in module._modules or attr in module.__dict__:
            act = getattr(module, attr)
            if act is not None and callable(act):
                return attr, act
    return None, None


# ============================================================================= probe


class _ProbeLinear(nn.Module):
    """A stand-in projection that records its inputs and returns random outputs whose
    magnitudes span 1e-2 to 1e5 (log-uniform): a forward that clamps or otherwise
    bends its activations anywhere in that range (gpt-oss clamps at 7) no longer
    computes the plain act(gate) * up there, and the probe sees it. (1e5: the cube in a
    hand-written tanh-GELU stays far inside fp32.)"""

    def __init__(self, in_features: int, out_features: int, gen: torch.Generator):
        super().__init__()
        self.in_features, self.out_features, self.gen = in_features, out_features, gen
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x)
        shape = (*x.shape[:-1], self.out_features)
        magnitude = 10.0 ** (torch.rand(shape, generator=self.gen) * 7 - 2)
        out = torch.randn(shape, generator=self.gen, dtype=torch.float32) * magnitude
        self.outputs.append(out)
        return out


def _probe(module: nn.Module, names: tuple[str, ...], dims: dict[str, tuple[int, int]], act: str, K: int) -> str:
    """Run the module's own forward on stand-in linears; '' if it is the expected pattern."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, K, generator=gen)
    stubs = {n: _ProbeLinear(*dims[n], gen) for n in names}
    saved = {n: module._modules[n] for n in names}
    training = {m: m.training for m in module.modules()}
    forward = type(module).forward
    try:
        for n, s in stubs.items():
            module._modules[n] = s
        module.train(False)
        with torch.no_grad():
            out = forward(module, x)
    except Exception as exc:  # noqa: BLE001
        return f"its forward could not be checked on stand-in inputs ({type(exc).__name__}: {exc})"
    finally:
        for n, m in saved.items():
            module._modules[n] = m
        for m, t in training.items():
            m.training = t
    actf = ref.ACTIVATIONS[act]
    counts = [len(stubs[n].inputs) for n in names]
    if counts != [1] * len(names):
        return f"its forward calls {', '.join(names)} {tuple(counts)} times, expected once each"
    if names in GATED_NAME_SETS:
        g, u, d = (stubs[n] for n in names)
        if not (torch.equal(g.inputs[0], x) and torch.equal(u.inputs[0], x)):
            return f"{names[0]} and {names[1]} do not both receive the MLP input unchanged"
        expected_h = actf(g.outputs[0]) * u.outputs[0]
        formula = f"act({names[0]}(x)) * {names[1]}(x)"
    else:
        g, d = (stubs[n] for n in names)
        if not torch.equal(g.inputs[0], x):
            return f"{names[0]} does not receive the MLP input unchanged"
        if names == MERGED_NAMES:
            # The kernels take [gate; up]: a forward that reads the halves the other way
            # round (up first) or interleaved computes something else and is refused here.
            gate, up = g.outputs[0].chunk(2, dim=-1)
            expected_h = actf(gate) * up
            formula = f"act(gate) * up with gate, up = {names[0]}(x).chunk(2, dim=-1)"
        else:
            expected_h = actf(g.outputs[0])
            formula = f"act({names[0]}(x))"
    if d.inputs[0].shape != expected_h.shape or not torch.allclose(d.inputs[0], expected_h, rtol=1e-5, atol=1e-6):
        return f"its forward does not feed {names[-1]} with {formula} for act={act}"
    if not (isinstance(out, torch.Tensor) and torch.equal(out, d.outputs[0])):
        return f"its forward does not return {names[-1]}'s output unchanged"
    return ""


def _activation_from_forward(
    module: nn.Module, names: tuple[str, ...], dims: dict[str, tuple[int, int]], dense: bool
) -> tuple[str | None, str]:
    """(the supported activation the module's forward computes, by the probe, or None;
    the probe's answer for the first candidate). For MLPs without an activation
    attribute that names one (LFM2 calls F.silu in its forward): the probe's stand-in
    outputs tell SiLU from tanh-GELU, and both from erf-GELU, by far more than its
    tolerance."""
    K = dims[names[0]][0]
    first_answer = ""
    for act in ("gelu_tanh",) if dense else ("silu", "gelu_tanh"):
        why = _probe(module, names, dims, act, K)
        if not why:
            return act, ""
        first_answer = first_answer or why
    return None, first_answer


# ============================================================================= plans


@dataclass
class _Plan:
    name: str
    module: nn.Module
    pattern: str
    activation: str
    endpoint: str
    names: tuple[str, ...]
    linears: dict[str, QLinear]
    K: int
    H: int
    N: int
    scales: str
    linear_type: str
    act_attr: str | None = None  # the activation module's attribute, if the module has one


def _decision(name, module, pattern, reason, **kw) -> ModuleDecision:
    return ModuleDecision(name=name, pattern=pattern, fused=False, reason=reason, module_type=type(module).__name__, **kw)


def _shape_reason(K: int, H: int, N: int) -> str:
    bad = [f"{n}={v}" for n, v in (("K", K), ("H", H), ("N", N)) if v % ALIGN]
    return f"shape {', '.join(bad)} not a multiple of {ALIGN}" if bad else ""


def _analyze(name: str, module: nn.Module, specs: dict[str, KernelSpec]) -> _Plan | ModuleDecision | None:
    """A plan to fuse `module`, a decision saying why not, or None (not an MLP)."""
    names = next((group for group in MLP_NAME_SETS
                  if all(isinstance(getattr(module, n, None), nn.Module) for n in group)), None)
    if names is None:
        return None
    dense = names in DENSE_NAME_SETS
    merged = names == MERGED_NAMES
    pattern = "dense_gelu_mlp" if dense else "gated_mlp"

    if isinstance(module, FusedStaticFP8MLP):
        return _decision(name, module, pattern, "already fused")
    if pattern not in specs:
        return _decision(name, module, pattern, f"{pattern} is not enabled in fusion_config")
    if "forward" in module.__dict__:
        return _decision(
            name, module, pattern,
            "the module has an instance-level forward override (e.g. accelerate hooks or offloading)",
        )

    linears = {}
    for n in names:
        q, why = inspect_linear(getattr(module, n), n)
        if q is None:
            return _decision(name, module, pattern, why)
        linears[n] = q
    types = sorted({q.kind for q in linears.values()})
    linear_type = types[0] if len(types) == 1 else " + ".join(types)

    dims = {n: (linears[n].in_features, linears[n].out_features) for n in names}
    act_attr, act = _find_activation(module)
    act_why = own_forward_required(act) if isinstance(act, nn.Module) else ""
    if act_why:
        return _decision(name, module, pattern, f"{act_attr} has {act_why}, which the fused kernels would skip",
                         linear_type=linear_type)
    activation, act_desc = classify_activation(act) if act is not None else (None, "")
    probed = False  # the probe already passed for `activation`
    if activation is None:
        # No activation attribute, or one this module cannot name: the probe alone decides.
        activation, probe_answer = _activation_from_forward(module, names, dims, dense)
        probed = activation is not None
    if activation is None or (dense and activation != "gelu_tanh"):
        want = "tanh-approximated GELU" if dense else "SiLU or tanh-approximated GELU"
        if act is None:
            return _decision(
                name, module, pattern,
                f"no activation found (looked for {', '.join(ACT_ATTRS)}), and the probe found no {want} "
                f"in its forward ({probe_answer})",
                linear_type=linear_type,
            )
        return _decision(
            name, module, pattern, f"activation {act_desc} is not supported (needs {want})",
            activation=act_desc, linear_type=linear_type,
        )

    first, last = linears[names[0]], linears[names[-1]]
    K, H, N = first.in_features, first.out_features // (2 if merged else 1), last.out_features
    common = dict(activation=activation, linear_type=linear_type, shape=(K, H, N))
    scales = _scale_kind(first)  # separate gate_proj / up_proj refine it below
    if dense:
        if last.in_features != H:
            return _decision(
                name, module, pattern,
                f"inconsistent shapes: {names[0]} {tuple(first.weight.shape)}, {names[1]} {tuple(last.weight.shape)}",
                **common,
            )
        endpoint = DENSE_ENDPOINT
    else:
        why = _gated_shape_reason(linears, names, K, H)
        if why:
            return _decision(name, module, pattern, why, **common)
        biased = [n for n in names if linears[n].bias is not None]
        if biased:
            return _decision(name, module, pattern, f"bias on {', '.join(biased)} (the gated kernels take no bias)", **common)
        if not merged:
            up = linears[names[1]]
            if not _same_values(first.input_scale, up.input_scale):
                return _decision(
                    name, module, pattern,
                    f"{names[0]} and {names[1]} have different input_scale ({_val(first.input_scale)} vs "
                    f"{_val(up.input_scale)}); the fused kernel quantizes the input once, so they must share one",
                    **common,
                )
            if first.per_tensor and up.per_tensor:
                scales = "per-tensor" if _same_values(first.weight_scale, up.weight_scale) else "per-row (gate/up scales differ)"
            else:
                scales = "per-channel"
        spec = specs[pattern]
        endpoint = GATED_ENDPOINTS[activation]
        if endpoint not in spec.functions():
            field_name = "swiglu_func" if activation == "silu" else "geglu_func"
            return _decision(name, module, pattern, f"fusion_config disables {field_name} (activation {activation})", scales=scales, **common)
    down = _scale_kind(last)
    if scales != down and not (scales.startswith("per-row") and last.per_tensor):
        scales = f"{scales}, {down} {names[-1]}"

    shape_why = _shape_reason(K, H, N)
    if shape_why:
        return _decision(name, module, pattern, shape_why, scales=scales, **common)

    why = "" if probed else _probe(module, names, dims, activation, K)
    if why:
        return _decision(name, module, pattern, why, scales=scales, **common)
    act_module = act_attr if isinstance(act, nn.Module) and act_attr in module._modules else None
    return _Plan(name, module, pattern, activation, endpoint, names, linears, K, H, N, scales, linear_type, act_module)


def _scale_kind(q: QLinear) -> str:
    return "per-tensor" if q.per_tensor else "per-channel"


def _gated_shape_reason(linears: dict[str, QLinear], names: tuple[str, ...], K: int, H: int) -> str:
    """'' if the gated MLP's projections fit together: [2H, K] or 2 x [H, K], then [N, H]."""
    first, down = linears[names[0]], linears[names[-1]]
    if names == MERGED_NAMES:
        if first.out_features % 2 == 0 and down.in_features == H:
            return ""
        return (f"inconsistent shapes: {names[0]} {tuple(first.weight.shape)} (needs twice {names[-1]}'s "
                f"input features), {names[-1]} {tuple(down.weight.shape)}")
    up = linears[names[1]]
    if (up.in_features, up.out_features) == (K, H) and down.in_features == H:
        return ""
    return (f"inconsistent shapes: {names[0]} {tuple(first.weight.shape)}, {names[1]} {tuple(up.weight.shape)}, "
            f"{names[-1]} {tuple(down.weight.shape)}")


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a is b:
        return True
    a = a.detach().float().reshape(-1).cpu()
    b = b.detach().float().reshape(-1).cpu()
    if a.numel() != b.numel():
        return False
    return bool(torch.equal(a, b))


def _val(t: torch.Tensor) -> str:
    v = t.detach().float().reshape(-1).cpu()
    return f"{float(v[0]):.6g}" if v.numel() == 1 else f"shape {tuple(t.shape)}"


# ====================================================================== fused modules


def _f32(t: torch.Tensor) -> torch.Tensor:
    t = t if t.dtype == torch.float32 else t.float()
    return t if t.dim() <= 1 else t.reshape(-1)


def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.bfloat16 else t.to(torch.bfloat16)


def _attr(module: nn.Module, name: str) -> Any:
    """`getattr(module, name)` without nn.Module.__getattr__'s slow fallback for the
    parameters, buffers and submodules that the fused path reads on every call (a dozen
    lookups: half the registry's host time per call, benchmarks/bench_fused_overhead.py).
    The result is the same: nn.Module keeps those three stores disjoint from instance and
    class attributes, and anything else (a property, an attribute) goes to getattr."""
    d = module.__dict__
    for store in ("_parameters", "_buffers", "_modules"):
        value = d[store].get(name) if store in d else None
        if value is not None:
            return value
    return getattr(module, name)


class FusedStaticFP8MLP:
    """Mixin of every fused module class (use `isinstance(m, FusedStaticFP8MLP)`).

    A fused class is `type('StaticFP8Fused<Orig>', (FusedGatedMLP | FusedMergedGatedMLP |
    FusedDenseGeluMLP, Orig), {})`;
    fused-state attributes and non-persistent buffers are prefixed `_sfm_`.
    """

    _sfm_base_cls: type
    _sfm_first_param: str | None = None

    def forward(self, *args, **kwargs):
        x = None
        if len(args) == 1 and not kwargs:
            x = args[0]
        elif not args and len(kwargs) == 1 and self._sfm_first_param in kwargs:
            x = kwargs[self._sfm_first_param]
        if x is None or not isinstance(x, torch.Tensor) or not self._sfm_skipped_layers_are_plain():
            return self._sfm_base_cls.forward(self, *args, **kwargs)
        self._sfm_sync()
        w, down = self._sfm_main_weight(), self._sfm_down_weight()  # looked up once per call
        if not self._sfm_can_fuse(x, w, down):
            return self._sfm_base_cls.forward(self, *args, **kwargs)
        return self._sfm_fused_forward(x, w, down)

    def _sfm_sync(self) -> None:
        """Bring derived buffers up to date with the parameters they come from (only the
        separate gate/up layout has any)."""

    def _sfm_can_fuse(self, x: torch.Tensor, w: torch.Tensor | None = None,
                      down: torch.Tensor | None = None) -> bool:
        """Whether this call can take the fused path (w, down: the kernels' gate/up or up
        weight and down weight, if the caller has them). Runs on every call, so the cheap
        input checks come first and `Tensor.device.type` (a few hundred ns) is read only
        for tensors that are not on CUDA (`is_cuda` and `get_device()` say the same)."""
        if (not self._sfm_enabled or self.training or x.dtype != torch.bfloat16 or not x.ndim
                or x.shape[-1] != self._sfm_K):
            return False
        if x.requires_grad and torch.is_grad_enabled():
            return False
        if x.is_cuda:
            if "cuda" not in self._sfm_device_types or x.get_device() not in self._sfm_cuda_devices:
                return False
        elif x.device.type not in self._sfm_device_types:
            return False
        w = self._sfm_main_weight() if w is None else w
        down = self._sfm_down_weight() if down is None else down
        device = x.device
        return (
            w.dtype == FP8
            and down.dtype == FP8
            and w.device == device
            and down.device == device
            and w.is_contiguous()
            and down.is_contiguous()
        )

    def _sfm_skipped_layers_are_plain(self) -> bool:
        """The layers whose own forward the fused path skips (the projections, the
        activation) are the ones fused, and no hook or forward override has been added
        to them since: a replaced layer (another activation, an adapter wrapped around a
        projection by PEFT after fusion) must not be skipped in favour of the old one."""
        for n, seen in self._sfm_layers:
            layer = getattr(self, n, None) if n not in self._modules else self._modules[n]
            if layer is not seen():
                why = "was replaced since fusion; this module runs unfused (unfuse_static_fp8_mlps and fuse again)"
            else:
                why = "" if not isinstance(layer, nn.Module) else own_forward_required(layer)
                why = why and f"now has {why}; this module runs unfused while it does"
            if why:
                if not self.__dict__.get("_sfm_warned_skipped"):
                    self.__dict__["_sfm_warned_skipped"] = True
                    warnings.warn(f"static-fp8-mlp: {type(self).__name__}: {n} {why}", StaticFP8FusionWarning,
                                  stacklevel=5)  # the caller of the model or module
                return False
        return True

    def _sfm_input_scale(self) -> torch.Tensor:
        return _f32(_attr(_attr(self, self._sfm_names[0]), self._sfm_in_attr))

    def _sfm_hidden_scale(self) -> torch.Tensor:
        return _f32(_attr(_attr(self, self._sfm_names[-1]), self._sfm_hidden_attr))

    def _sfm_down_weight(self) -> torch.Tensor:
        return _attr(_attr(self, self._sfm_names[-1]), "weight")

    def _sfm_down_scale(self) -> torch.Tensor:
        return _f32(_attr(_attr(self, self._sfm_names[-1]), self._sfm_down_scale_attr))

    def __reduce_ex__(self, protocol):
        """Pickling (e.g. `torch.save(model)`) stores the original, unfused module: the
        fused class is created at run time and the kernel functions belong to a loaded
        build. Fuse again after loading."""
        state = self.__dict__.copy()
        for attr in _SFM_ATTRS:
            state.pop(attr, None)
        state["_buffers"] = {k: v for k, v in self._buffers.items() if not k.startswith("_sfm_")}
        state["_non_persistent_buffers_set"] = {k for k in self._non_persistent_buffers_set if not k.startswith("_sfm_")}
        handle = self.__dict__.get("_sfm_hook")
        if handle is not None:
            hooks = type(self._load_state_dict_post_hooks)(self._load_state_dict_post_hooks)
            hooks.pop(handle.id, None)
            state["_load_state_dict_post_hooks"] = hooks
        return (_rebuild_unfused, (self._sfm_base_cls, state))

    def __deepcopy__(self, memo):
        """A deep copy stays fused (and gets its own load_state_dict hook)."""
        import copy

        new = type(self).__new__(type(self))
        memo[id(self)] = new
        handle = self.__dict__.get("_sfm_hook")
        for key, value in self.__dict__.items():
            if key == "_sfm_hook":
                continue
            if key in ("_sfm_quant_fn", "_sfm_mlp_fn"):
                new.__dict__[key] = value
            elif key in ("_sfm_layers", "_sfm_warned_skipped"):  # the copy warns for itself
                continue
            else:
                new.__dict__[key] = copy.deepcopy(value, memo)
        if handle is not None:
            new._load_state_dict_post_hooks.pop(handle.id, None)
            new.__dict__["_sfm_hook"] = new.register_load_state_dict_post_hook(_state_dict_post_hook)
        if "_sfm_layers" in self.__dict__:  # the copy's layers stand for the layers fused (a dead ref stays dead)
            new.__dict__["_sfm_layers"] = tuple(
                (n, seen if (layer := seen()) is None else _layer_ref(memo.get(id(layer), layer)))
                for n, seen in self._sfm_layers
            )
        return new

    def extra_repr(self) -> str:
        base = self._sfm_base_cls.extra_repr(self)
        fused = f"static_fp8_fused={self._sfm_endpoint} ({self._sfm_kernel})"
        return f"{base}, {fused}" if base else fused


class _FusedGatedCall(FusedStaticFP8MLP):
    """The gated endpoints' call, shared by both gate/up layouts (each says where its
    [gate; up] weight and scale come from: `_sfm_main_weight`, `_sfm_gate_up_scale`)."""

    def _sfm_fused_forward(self, x: torch.Tensor, w: torch.Tensor,
                           down: torch.Tensor) -> torch.Tensor:
        """The fused call; `forward` has already looked up w (gate/up) and down."""
        in_scale = self._sfm_input_scale()
        xq = self._sfm_quant_fn(x, _bf16(_attr(self, "_sfm_channel_scale")), in_scale)
        return self._sfm_mlp_fn(
            xq,
            w,
            down,
            in_scale,
            self._sfm_gate_up_scale(),
            self._sfm_hidden_scale(),
            self._sfm_down_scale(),
        )


class FusedGatedMLP(_FusedGatedCall):
    """Separate gate and up projections (gate_proj + up_proj, or w1 + w3): the kernels'
    [gate; up] weight is a derived buffer."""

    def _sfm_sources(self) -> tuple:
        """Name, identity and version of every tensor of the gate and up projections, in
        one flat tuple (built on every call: flat is about twice as fast as nested)."""
        out: list = []
        for n in self._sfm_names[:2]:
            layer = self._modules[n]
            for store in (layer._parameters, layer._buffers):
                for name, t in store.items():
                    if t is not None:
                        out += (name, id(t), t._version)
        return tuple(out)

    def _sfm_sync(self) -> None:
        """Rebuild the [gate; up] weight and scales (in place: CUDA graphs see them) when a
        gate/up tensor was edited in place or replaced since they were built, so that an
        edit without refresh_fused_mlps() cannot leave the kernels on stale weights or a
        stale input scale. Not under torch.compile, which cannot read tensor versions:
        call refresh_fused_mlps() there."""
        if torch.compiler.is_compiling():
            return
        if self._sfm_sources() != self.__dict__.get("_sfm_seen"):
            self._sfm_refresh()

    def _sfm_main_weight(self) -> torch.Tensor:
        return _attr(self, "_sfm_gate_up_weight")

    def _sfm_gate_up_scale(self) -> torch.Tensor:
        return _f32(_attr(self, "_sfm_gate_up_weight_scale"))

    def _sfm_refresh(self) -> None:
        gate_name, up_name = self._sfm_names[:2]
        gq, _ = inspect_linear(getattr(self, gate_name), gate_name)
        uq, _ = inspect_linear(getattr(self, up_name), up_name)
        ok = gq is not None and uq is not None and _same_values(gq.input_scale, uq.input_scale)
        if not ok:
            if self._sfm_enabled:
                warnings.warn(
                    f"static-fp8-mlp: {type(self).__name__}: gate/up projections no longer share one static "
                    "input_scale after a state change; this module now runs unfused",
                    StaticFP8FusionWarning,
                    stacklevel=3,
                )
            self._sfm_enabled = False
            self.__dict__["_sfm_seen"] = self._sfm_sources()
            return
        with torch.no_grad():
            gu = torch.cat([gq.weight.detach(), uq.weight.detach()], dim=0)
            H = gq.out_features
            if gq.per_tensor and uq.per_tensor and _same_values(gq.weight_scale, uq.weight_scale):
                s = gq.weight_scale.detach().float().reshape(1).clone()
            else:
                s = torch.cat(
                    [
                        gq.weight_scale.detach().float().reshape(-1).expand(H) if gq.per_tensor else gq.weight_scale.detach().float().reshape(-1),
                        uq.weight_scale.detach().float().reshape(-1).expand(H) if uq.per_tensor else uq.weight_scale.detach().float().reshape(-1),
                    ]
                ).contiguous()
        self._sfm_set_buffer("_sfm_gate_up_weight", gu)
        self._sfm_set_buffer("_sfm_gate_up_weight_scale", s.to(gu.device))
        self._sfm_set_buffer(
            "_sfm_channel_scale", torch.ones(gq.in_features, dtype=torch.bfloat16, device=gu.device)
        )
        self._sfm_enabled = True
        self.__dict__["_sfm_seen"] = self._sfm_sources()


class FusedMergedGatedMLP(_FusedGatedCall):
    """gate_up_proj (Phi-3, GLM): its weight is already [gate; up] and is passed as it is,
    with its own scale (per tensor or per row of the 2H); nothing is copied, so nothing
    needs syncing (the base's `_sfm_sync`)."""

    def _sfm_main_weight(self) -> torch.Tensor:
        return _attr(_attr(self, self._sfm_names[0]), "weight")

    def _sfm_gate_up_scale(self) -> torch.Tensor:
        return _f32(_attr(_attr(self, self._sfm_names[0]), self._sfm_up_scale_attr))

    def _sfm_refresh(self) -> None:
        w = self._sfm_main_weight()
        self._sfm_set_buffer("_sfm_channel_scale", torch.ones(w.shape[1], dtype=torch.bfloat16, device=w.device))
        self._sfm_enabled = True


class FusedDenseGeluMLP(FusedStaticFP8MLP):
    """fc1 / fc2 here stand for the module's (up, down) pair, whatever its names."""

    def _sfm_main_weight(self) -> torch.Tensor:
        return _attr(_attr(self, self._sfm_names[0]), "weight")

    def _sfm_fused_forward(self, x: torch.Tensor, w: torch.Tensor,
                           down: torch.Tensor) -> torch.Tensor:
        fc1, fc2 = (_attr(self, n) for n in self._sfm_names)
        in_scale = self._sfm_input_scale()
        xq = self._sfm_quant_fn(x, _bf16(_attr(self, "_sfm_channel_scale")), in_scale)
        b1 = _bf16(_attr(self, "_sfm_zero_up_bias") if (b := _attr(fc1, "bias")) is None else b)
        b2 = _bf16(_attr(self, "_sfm_zero_down_bias") if (b := _attr(fc2, "bias")) is None else b)
        return self._sfm_mlp_fn(
            xq,
            w,
            b1,
            down,
            b2,
            in_scale,
            _f32(_attr(fc1, self._sfm_up_scale_attr)),
            self._sfm_hidden_scale(),
            self._sfm_down_scale(),
        )

    def _sfm_refresh(self) -> None:
        fc1, fc2 = (getattr(self, n) for n in self._sfm_names)
        dev = fc1.weight.device
        self._sfm_set_buffer("_sfm_channel_scale", torch.ones(fc1.weight.shape[1], dtype=torch.bfloat16, device=dev))
        self._sfm_set_buffer("_sfm_zero_up_bias", torch.zeros(fc1.weight.shape[0], dtype=torch.bfloat16, device=dev))
        self._sfm_set_buffer("_sfm_zero_down_bias", torch.zeros(fc2.weight.shape[0], dtype=torch.bfloat16, device=dev))
        self._sfm_enabled = True


def _rebuild_unfused(cls: type, state: dict) -> nn.Module:
    """Unpickle a fused module as its original class (see `FusedStaticFP8MLP.__reduce_ex__`)."""
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj


def _set_buffer(self: nn.Module, name: str, value: torch.Tensor) -> None:
    old = self._buffers.get(name)
    if old is not None and old.shape == value.shape and old.dtype == value.dtype and old.device == value.device:
        with torch.no_grad():
            old.copy_(value)
    else:
        self.register_buffer(name, value, persistent=False)


FusedStaticFP8MLP._sfm_set_buffer = _set_buffer  # type: ignore[attr-defined]

_FUSED_CLASSES: dict[tuple[type, type], type] = {}


def _fused_class(base: type, mixin: type) -> type:
    key = (base, mixin)
    cls = _FUSED_CLASSES.get(key)
    if cls is None:
        first = None
        try:
            params = list(inspect.signature(base.forward).parameters.values())[1:]
            if params and params[0].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
                first = params[0].name
        except (TypeError, ValueError):
            pass
        cls = type(
            f"StaticFP8Fused{base.__name__}",
            (mixin, base),
            {"_sfm_base_cls": base, "_sfm_first_param": first, "__module__": __name__},
        )
        _FUSED_CLASSES[key] = cls
    return cls


def _state_dict_post_hook(module, incompatible_keys) -> None:
    if isinstance(module, FusedStaticFP8MLP):
        module._sfm_refresh()


_SFM_ATTRS = (
    "_sfm_enabled", "_sfm_quant_fn", "_sfm_mlp_fn", "_sfm_names", "_sfm_in_attr", "_sfm_hidden_attr",
    "_sfm_down_scale_attr", "_sfm_up_scale_attr", "_sfm_K", "_sfm_device_types", "_sfm_cuda_devices",
    "_sfm_endpoint", "_sfm_kernel", "_sfm_hook", "_sfm_layers", "_sfm_warned_skipped", "_sfm_seen",
)


def _layer_ref(layer: Any):
    """A callable returning `layer`: a weak reference where it takes one (a replaced
    projection's weights are not kept alive by it), else the object itself."""
    try:
        return weakref.ref(layer)
    except TypeError:  # builtins such as torch.relu
        return lambda: layer


def _install(plan: _Plan, fns: dict[str, Any], kernel_label: str, device_types: frozenset, cuda_devices: frozenset) -> None:
    module = plan.module
    if plan.names in GATED_NAME_SETS:
        mixin = FusedGatedMLP
    else:
        mixin = FusedMergedGatedMLP if plan.names == MERGED_NAMES else FusedDenseGeluMLP
    first, last = plan.linears[plan.names[0]], plan.linears[plan.names[-1]]
    d = module.__dict__
    d["_sfm_enabled"] = False
    d["_sfm_quant_fn"] = fns[QUANT_ENDPOINT]
    d["_sfm_mlp_fn"] = fns[plan.endpoint]
    d["_sfm_names"] = plan.names
    # (name, reference) of each layer whose own forward the fused path skips
    skipped = plan.names + ((plan.act_attr,) if plan.act_attr else ())
    d["_sfm_layers"] = tuple((n, _layer_ref(getattr(module, n))) for n in skipped)
    d["_sfm_in_attr"] = first.input_scale_attr
    d["_sfm_up_scale_attr"] = first.weight_scale_attr
    d["_sfm_hidden_attr"] = last.input_scale_attr
    d["_sfm_down_scale_attr"] = last.weight_scale_attr
    d["_sfm_K"] = plan.K
    d["_sfm_device_types"] = device_types
    d["_sfm_cuda_devices"] = cuda_devices
    d["_sfm_endpoint"] = plan.endpoint
    d["_sfm_kernel"] = kernel_label
    module.__class__ = _fused_class(type(module), mixin)
    try:
        module._sfm_refresh()
        d["_sfm_hook"] = module.register_load_state_dict_post_hook(_state_dict_post_hook)
    except Exception:
        _unfuse_one(module)
        raise


def _unfuse_one(module: nn.Module) -> None:
    base = getattr(type(module), "_sfm_base_cls", None)
    hook = module.__dict__.get("_sfm_hook")
    if hook is not None:
        hook.remove()
    for name in [b for b in module._buffers if b.startswith("_sfm_")]:
        del module._buffers[name]
        module._non_persistent_buffers_set.discard(name)
    for attr in _SFM_ATTRS:
        module.__dict__.pop(attr, None)
    if base is not None:
        module.__class__ = base


def unfuse_static_fp8_mlps(model: nn.Module) -> int:
    """Restore every fused module's original class; returns how many were restored."""
    n = 0
    for m in model.modules():
        if isinstance(m, FusedStaticFP8MLP):
            _unfuse_one(m)
            n += 1
    return n


def refresh_fused_mlps(model: nn.Module) -> int:
    """Rebuild the derived buffers (concatenated gate/up weight, scales) of fused modules
    after their parameters were modified in place outside `load_state_dict`."""
    n = 0
    for m in model.modules():
        if isinstance(m, FusedStaticFP8MLP):
            m._sfm_refresh()
            n += 1
    return n


# ========================================================================== main API


def _cuda_devices_covered(archs: tuple[str, ...], check_arch: bool) -> frozenset:
    if not torch.cuda.is_available():
        return frozenset()
    n = torch.cuda.device_count()
    if not check_arch or not archs:
        return frozenset(range(n))
    try:
        from kernels.archs import _supports_cuda_capability
    except ImportError:  # pragma: no cover
        return frozenset(range(n))
    return frozenset(i for i in range(n) if _supports_cuda_capability(list(archs), torch.cuda.get_device_capability(i)))


def fuse_static_fp8_mlps(
    model: nn.Module,
    fusion_config: Any,
    *,
    strict: bool = False,
    smoke_test: bool | None = None,
    check_arch: bool = True,
    dry_run: bool = False,
    devices: Iterable[str] = ("cuda",),
    kernel_modules: Mapping[str, ModuleType] | None = None,
) -> FusionReport:
    """Fuse the static-FP8 MLPs of `model` (in place) with the kernels `fusion_config` names.

    strict: raise kernel resolution/validation errors instead of warning and leaving
        the model untouched.
    smoke_test: run each endpoint once against the reference before use (None: when
        CUDA is available).
    check_arch: refuse builds that do not cover the current GPU (kernels' check).
    dry_run: analyse and report only; the model is not modified.
    devices: device types the fused path runs on. The default ('cuda',) is what the
        kernels support; tests add 'cpu' to run pure-PyTorch stand-in kernels.
    kernel_modules: family -> an already imported kernel module to use instead of
        resolving that entry's spec (its function names and validation still apply);
        for machines without the `kernels` library.

    Returns a `FusionReport`; a malformed config raises `FusionConfigError`.
    """
    from .loader import resolve_kernel, resolved_from_module
    from .validate import validate_endpoints

    cfg = FusionConfig.parse(fusion_config)
    report = FusionReport(enabled=cfg.enabled, dry_run=dry_run)
    if not cfg.enabled:
        logger.info(report.headline())
        return report

    specs = cfg.families()
    fns: dict[str, Any] = {}
    resolved = {}
    errors: list[tuple[str, RegistryError]] = []
    for family, spec in specs.items():
        summary = KernelSummary(family=family, spec=spec.describe(), ok=False)
        report.kernels[family] = summary
        try:
            if kernel_modules and family in kernel_modules:
                rk = resolved_from_module(kernel_modules[family], spec)
            else:
                rk = resolve_kernel(spec, check_arch=check_arch)
            summary.resolved = rk.describe()
            vr = validate_endpoints(rk, spec.functions(), smoke=smoke_test)
            summary.validation = vr.summary()
            vr.raise_if_failed()
        except RegistryError as exc:
            summary.error = str(exc)
            summary.error_kind = getattr(exc, "kind", type(exc).__name__)
            errors.append((family, exc))
            continue
        summary.ok = True
        resolved[family] = rk
        for endpoint, fname in spec.functions().items():
            fns[endpoint] = getattr(rk.module, fname)

    if errors:
        if strict:
            raise errors[0][1]
        msg = "; ".join(f"{fam}: {exc}" for fam, exc in errors)
        report.error = msg

    # Analyse every MLP-looking module (read-only apart from the restored probe).
    plans: list[_Plan] = []
    skip_prefixes: list[str] = []
    all_modules = list(model.named_modules())
    all_names = [n for n, _ in all_modules]
    for name, module in all_modules:
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        result = _analyze(name, module, specs)
        if result is None:
            continue
        if isinstance(result, _Plan):
            if report.error:
                report.modules.append(
                    _decision(name, module, result.pattern, "kernel unavailable (see error); model left unchanged",
                              activation=result.activation, scales=result.scales, linear_type=result.linear_type,
                              shape=(result.K, result.H, result.N))
                )
            else:
                plans.append(result)
        else:
            report.modules.append(result)
        skip_prefixes.append(f"{name}." if name else "")

    if report.error:
        warnings.warn(
            f"static-fp8-mlp: fusion skipped, the model is left unchanged: {report.error}",
            StaticFP8FusionWarning,
            stacklevel=2,
        )
        return report

    device_types = frozenset(devices)
    for plan in plans:
        family_kernel = resolved[plan.pattern]
        decision = ModuleDecision(
            name=plan.name, pattern=plan.pattern, fused=True, module_type=type(plan.module).__name__,
            activation=plan.activation, linear_type=plan.linear_type, scales=plan.scales,
            shape=(plan.K, plan.H, plan.N), endpoint=plan.endpoint,
        )
        if not dry_run:
            cuda_devices = _cuda_devices_covered(tuple(family_kernel.archs), check_arch) & _cuda_devices_covered(
                tuple(resolved["input_quant"].archs), check_arch
            )
            try:
                _install(plan, fns, family_kernel.short(), device_types, cuda_devices)
            except Exception as exc:  # noqa: BLE001 - never leave a half-fused module
                if strict:
                    raise
                decision.fused = False
                decision.endpoint = None
                decision.reason = f"installing the fused forward failed: {type(exc).__name__}: {exc}"
        report.modules.append(decision)

    order = {n: i for i, n in enumerate(all_names)}
    report.modules.sort(key=lambda m: order.get(m.name, math.inf))
    logger.info(report.headline())
    return report
