"""`StaticFP8Linear`, the per-layer reference for static FP8, and a calibration helper.

`StaticFP8Linear` stores what compressed-tensors static FP8 checkpoints store:
`weight` (fp8 e4m3fn `[out, in]`), `weight_scale` (fp32, one element or `[out]`),
`input_scale` (fp32, one element) and an optional `bias`. Its forward is the unfused
static-FP8 math, exactly what the fused kernels compute per layer:

    y = (q(x / input_scale) * input_scale) @ (weight * weight_scale).T + bias

with `q` the contract's saturating FP8 conversion, evaluated in fp32 (or bf16 with
`compute_dtype=torch.bfloat16`), returned in the input's dtype.

`calibrate_static_fp8(model, samples)` turns the MLP linears of a BF16/FP32 model
into `StaticFP8Linear` with amax-calibrated scales, so the registry can fuse them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from .reference import FP8, FP8_MAX, q_fp8

logger = logging.getLogger(__name__)

_MIN_SCALE = 1e-12


class StaticFP8Linear(nn.Module):
    """Static per-tensor (or per-output-channel weight) FP8 linear layer."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        per_channel: bool = False,
        bias_dtype: torch.dtype = torch.bfloat16,
        compute_dtype: torch.dtype = torch.float32,
        device: Any = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.compute_dtype = compute_dtype
        self.weight = nn.Parameter(
            torch.zeros(out_features, in_features, dtype=FP8, device=device), requires_grad=False
        )
        scale_shape = (out_features,) if per_channel else ()
        self.weight_scale = nn.Parameter(
            torch.ones(scale_shape, dtype=torch.float32, device=device), requires_grad=False
        )
        self.input_scale = nn.Parameter(torch.ones((), dtype=torch.float32, device=device), requires_grad=False)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, dtype=bias_dtype, device=device), requires_grad=False)
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        input_amax: torch.Tensor | float,
        *,
        per_channel: bool = False,
        compute_dtype: torch.dtype = torch.float32,
    ) -> "StaticFP8Linear":
        """Quantize a float `nn.Linear` (weight amax-scaled; input scale = input_amax / 448)."""
        w = linear.weight.detach().float()
        if per_channel:
            amax = w.abs().amax(dim=1)
        else:
            amax = w.abs().amax()
        w_scale = torch.clamp(amax / FP8_MAX, min=_MIN_SCALE)
        wq = q_fp8(w / (w_scale.reshape(-1, 1) if per_channel else w_scale))
        in_amax = torch.as_tensor(input_amax, dtype=torch.float32, device=w.device).reshape(())
        in_scale = torch.clamp(in_amax / FP8_MAX, min=_MIN_SCALE)
        has_bias = linear.bias is not None
        bias_dtype = linear.bias.dtype if has_bias else torch.bfloat16
        if bias_dtype not in (torch.bfloat16, torch.float16, torch.float32):
            bias_dtype = torch.bfloat16
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            per_channel=per_channel,
            bias_dtype=bias_dtype,
            compute_dtype=compute_dtype,
            device=w.device,
        )
        with torch.no_grad():
            layer.weight.copy_(wq)
            layer.weight_scale.copy_(w_scale.reshape(layer.weight_scale.shape))
            layer.input_scale.copy_(in_scale)
            if has_bias:
                layer.bias.copy_(linear.bias.detach())
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cdt = self.compute_dtype
        s_in = self.input_scale.float().reshape(())
        xq = q_fp8(x.float() / s_in)
        a = (xq.float() * s_in).to(cdt)
        ws = self.weight_scale.float()
        ws = ws.reshape(()) if ws.numel() == 1 else ws.reshape(-1, 1)
        w = (self.weight.float() * ws).to(cdt)
        y = torch.nn.functional.linear(a, w, None if self.bias is None else self.bias.to(cdt))
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        scheme = "per-tensor" if self.weight_scale.numel() == 1 else "per-channel"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weight_scale={scheme}"
        )


# ----------------------------------------------------------------------- calibration

GATED_NAMES = ("gate_proj", "up_proj", "down_proj")
# Gated MLPs' (gate, up, down) names: Llama and most decoders; LFM2 and Mixtral-style
# MLPs, down = w2(act(w1(x)) * w3(x)).
GATED_NAME_SETS = (GATED_NAMES, ("w1", "w3", "w2"))
MERGED_NAMES = ("gate_up_proj", "down_proj")  # Phi-3, GLM: one [gate; up] projection
# Dense MLPs' (up, down) names: CLIP/SigLIP/Phi-2; GPTBigCode/StarCoder2; GPT-NeoX/Falcon;
# GPT-J/CodeGen; the Qwen3-VL and Qwen3.5 vision towers.
DENSE_NAME_SETS = (
    ("fc1", "fc2"), ("c_fc", "c_proj"), ("dense_h_to_4h", "dense_4h_to_h"), ("fc_in", "fc_out"),
    ("linear_fc1", "linear_fc2"),
)
MLP_NAME_SETS = (*GATED_NAME_SETS, MERGED_NAMES, *DENSE_NAME_SETS)


def mlp_linear_names(model: nn.Module) -> list[str]:
    """Qualified names of the linears of every gated (gate/up/down_proj and the other
    GATED_NAME_SETS, or a merged gate_up_proj and down_proj) or dense (fc1/fc2 and the
    other DENSE_NAME_SETS) MLP."""
    names = []
    for mname, module in model.named_modules():
        for group in MLP_NAME_SETS:
            children = [getattr(module, n, None) for n in group]
            if all(isinstance(c, nn.Linear) for c in children):
                names.extend(f"{mname}.{n}" if mname else n for n in group)
    return names


def _run(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, dict):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(batch)


@torch.no_grad()
def calibrate_static_fp8(
    model: nn.Module,
    samples: Iterable[Any],
    *,
    modules: Iterable[str] | Callable[[str, nn.Module], bool] | None = None,
    per_channel: bool = False,
    compute_dtype: torch.dtype = torch.float32,
    progress: bool = True,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> dict[str, StaticFP8Linear]:
    """Replace MLP linears of `model` (in place) by `StaticFP8Linear` with calibrated scales.

    `samples` are batches fed to the model (a tensor, a tuple of positional args or a
    dict of keyword args; or use `forward(model, batch)`). Every selected linear's
    input amax over all samples gives `input_scale = amax / 448`; weights get
    `weight_scale = amax(|W|) / 448` per tensor (or per output row with
    `per_channel=True`). `modules` selects the linears (qualified names, or a
    predicate); default: the linears of every MLP `mlp_linear_names` finds. Returns
    the new layers by name.
    """
    if modules is None:
        selected = set(mlp_linear_names(model))
        pick = lambda name, mod: name in selected  # noqa: E731
    elif callable(modules):
        pick = modules
    else:
        wanted = set(modules)
        pick = lambda name, mod: name in wanted  # noqa: E731
    targets = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and pick(n, m)}
    if not targets:
        logger.warning("calibrate_static_fp8: no linear layers selected; nothing to do")
        return {}

    amax: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(_mod, args, _out):
            x = args[0].detach()
            m = x.abs().amax().float() if x.numel() else torch.zeros((), device=x.device)
            prev = amax.get(name)
            amax[name] = m if prev is None else torch.maximum(prev, m.to(prev.device))

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in targets.items()]
    was_training = model.training
    model.eval()
    try:
        seq = samples
        if progress:
            try:
                from tqdm.auto import tqdm

                total = len(samples) if hasattr(samples, "__len__") else None
                seq = tqdm(samples, total=total, desc="calibrating static FP8", unit="batch")
            except ImportError:  # pragma: no cover
                pass
        n_batches = 0
        for batch in seq:
            (forward or _run)(model, batch)
            n_batches += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if n_batches == 0:
        raise ValueError("calibrate_static_fp8: `samples` yielded no batches")

    new_layers = {}
    for name, lin in targets.items():
        if name not in amax:
            logger.warning("calibrate_static_fp8: %s saw no input during calibration; left as is", name)
            continue
        layer = StaticFP8Linear.from_linear(lin, amax[name], per_channel=per_channel, compute_dtype=compute_dtype)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer)
        new_layers[name] = layer
    return new_layers
