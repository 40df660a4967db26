"""The model half of `static-fp8-mlp demo`: four small transformers models with random
weights, static-FP8 conversion with calibrated scales, fusion through the registry,
output agreement and (on a GPU) latency.

Imported only when the demo runs (it imports torch and transformers at the top).
Nothing here downloads anything: the models come from configs, the kernel from
whatever spec `demo.py` resolved (a local Hub mirror, a real Hub repo, or a local
build).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .errors import CliError

MODEL_NAMES = ("llama", "gemma", "phi3", "siglip")

# What each demo model is, for the tables.
MODEL_INFO = {
    "llama": ("LlamaModel", "Llama-style decoder", "SwiGLU MLPs (gate/up/down_proj, SiLU)"),
    "gemma": ("GemmaModel", "Gemma-style decoder", "GeGLU MLPs (gate/up/down_proj, tanh-GELU)"),
    "phi3": ("Phi3Model", "Phi-3-style decoder", "SwiGLU MLPs (merged gate_up_proj, down_proj, SiLU)"),
    "siglip": ("SiglipVisionModel", "SigLIP-style vision encoder", "dense MLPs (fc1/fc2, tanh-GELU)"),
}

# Size presets. `cpu` keeps the whole demo well under a minute on a laptop CPU; `gpu`
# is big enough for the latency table to mean something on one GPU.
PRESETS: dict[str, dict[str, int]] = {
    "cpu": dict(hidden=256, intermediate=768, layers=2, heads=4, vocab_size=1024, batch_size=2, seq_len=64,
                image_size=128, patch_size=16),
    "gpu": dict(hidden=2048, intermediate=8192, layers=4, heads=16, vocab_size=32000, batch_size=4, seq_len=512,
                image_size=384, patch_size=16),
}
SIZE_KEYS = tuple(PRESETS["cpu"])
ALIGN = 16


@dataclass
class Sizes:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab_size: int
    batch_size: int
    seq_len: int
    image_size: int
    patch_size: int

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in SIZE_KEYS}


def check_sizes(s: Sizes) -> None:
    """User errors in the size flags, as CliError (before anything heavy happens)."""
    for name in SIZE_KEYS:
        if getattr(s, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(s, name)})")
    bad = [f"--{n} {getattr(s, n)}" for n in ("hidden", "intermediate") if getattr(s, n) % ALIGN]
    if bad:
        raise CliError(
            f"{' and '.join(bad)}: the kernels need hidden and intermediate sizes that are multiples of {ALIGN}"
        )
    if s.hidden % s.heads:
        raise CliError(f"--hidden {s.hidden} is not divisible by --heads {s.heads}")
    if (s.hidden // s.heads) % 2:
        raise CliError(f"--hidden / --heads = {s.hidden // s.heads} must be even (rotary embeddings)")
    if s.image_size % s.patch_size:
        raise CliError(f"--image-size {s.image_size} is not a multiple of --patch-size {s.patch_size}")


# ============================================================================ models


@dataclass
class DemoModel:
    key: str
    model: nn.Module
    make_inputs: Callable[[torch.Generator], dict[str, Any]]
    tokens: int
    """Tokens per forward (batch x sequence, or batch x patches)."""


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
    except Exception:  # noqa: BLE001
        pass


def build_model(key: str, s: Sizes, device: torch.device, seed: int) -> DemoModel:
    """A transformers model with random weights (no download), in bf16 on `device`."""
    import transformers

    _quiet_transformers()
    torch.manual_seed(seed)
    head_dim = s.hidden // s.heads
    common = dict(
        hidden_size=s.hidden,
        intermediate_size=s.intermediate,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
    )
    if key in ("llama", "gemma", "phi3"):
        dec = dict(
            common,
            vocab_size=s.vocab_size,
            num_key_value_heads=s.heads,
            head_dim=head_dim,
            max_position_embeddings=max(2 * s.seq_len, 128),
            use_cache=False,
        )
        if key == "llama":
            config = transformers.LlamaConfig(hidden_act="silu", **dec)
            cls = transformers.LlamaModel
        elif key == "phi3":
            # Phi-3's config has no head_dim (hidden / heads) and token ids past a small vocabulary
            dec.pop("head_dim")
            config = transformers.Phi3Config(hidden_act="silu", pad_token_id=0, bos_token_id=1, eos_token_id=2, **dec)
            cls = transformers.Phi3Model
        else:
            config = transformers.GemmaConfig(hidden_activation="gelu_pytorch_tanh", hidden_act="gelu_pytorch_tanh", **dec)
            cls = transformers.GemmaModel

        def make_inputs(gen: torch.Generator) -> dict[str, Any]:
            ids = torch.randint(0, s.vocab_size, (s.batch_size, s.seq_len), generator=gen)
            return {"input_ids": ids.to(device), "use_cache": False}

        tokens = s.batch_size * s.seq_len
    elif key == "siglip":
        config = transformers.SiglipVisionConfig(
            image_size=s.image_size,
            patch_size=s.patch_size,
            hidden_act="gelu_pytorch_tanh",
            vision_use_head=False,
            **common,
        )
        cls = transformers.SiglipVisionModel

        def make_inputs(gen: torch.Generator) -> dict[str, Any]:
            px = torch.randn(s.batch_size, 3, s.image_size, s.image_size, generator=gen)
            return {"pixel_values": px.to(device=device, dtype=torch.bfloat16)}

        tokens = s.batch_size * (s.image_size // s.patch_size) ** 2
    else:  # pragma: no cover - argument parsing prevents it
        raise CliError(f"unknown model {key!r}; choose from {', '.join(MODEL_NAMES)}")
    try:
        config._attn_implementation = "sdpa"
    except Exception:  # noqa: BLE001
        pass
    with torch.device(device):
        model = cls(config)
    model = model.to(dtype=torch.bfloat16).eval()
    model.requires_grad_(False)
    return DemoModel(key, model, make_inputs, tokens)


def model_output(model: nn.Module, inputs: dict[str, Any] | torch.Tensor) -> torch.Tensor:
    """The tensor a model's forward returns for `inputs` (keyword arguments, or one
    positional tensor): itself, else its logits, else its last hidden state, else its
    first field. The demo, scripts/model_survey.py and the registry tests compare models
    through this one function."""
    out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    if isinstance(out, torch.Tensor):
        return out
    for name in ("logits", "last_hidden_state"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    return out[0]


# ====================================================================== FP8 layers


def to_transformers_fp8(model: nn.Module) -> int:
    """Swap every StaticFP8Linear for transformers' FP8Linear (static, per tensor)."""
    from static_fp8_mlp_registry import StaticFP8Linear

    try:
        from transformers.integrations.finegrained_fp8 import FP8Linear
    except ImportError as exc:
        raise CliError(
            f"--fp8-layers transformers: this transformers has no static FP8Linear ({exc}); "
            "use --fp8-layers registry"
        ) from exc
    n = 0
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, StaticFP8Linear):
            continue
        if mod.weight_scale.numel() != 1:
            raise CliError("--fp8-layers transformers takes per-tensor weight scales: drop --per-channel")
        dev = mod.weight.device
        try:
            new = FP8Linear(mod.in_features, mod.out_features, block_size=None, activation_scheme="static",
                            has_bias=mod.bias is not None)
        except TypeError as exc:
            raise CliError(f"--fp8-layers transformers: this transformers' FP8Linear differs ({exc})") from exc
        new = new.to(dev)
        with torch.no_grad():
            new.weight = nn.Parameter(mod.weight.detach().clone(), requires_grad=False)
            new.weight_scale_inv = nn.Parameter(mod.weight_scale.detach().float().reshape(()).clone(), requires_grad=False)
            new.activation_scale = nn.Parameter(mod.input_scale.detach().float().reshape(()).clone(), requires_grad=False)
            if mod.bias is not None:
                new.bias = nn.Parameter(mod.bias.detach().to(torch.bfloat16).clone(), requires_grad=False)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        n += 1
    return n


# ====================================================================== measurement


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict[str, Any]:
    """How close output `a` is to reference `b` (flattened, in fp32)."""
    x = a.detach().float().reshape(-1)
    y = b.detach().float().reshape(-1)
    identical = bool(torch.equal(a, b))
    diff = x - y
    ref_norm = float(torch.linalg.vector_norm(y))
    rel = float(torch.linalg.vector_norm(diff)) / ref_norm if ref_norm > 0 else (0.0 if identical else math.inf)
    cos = float(torch.nn.functional.cosine_similarity(x, y, dim=0)) if x.numel() else 1.0
    return {
        "cosine": 1.0 if identical else cos,
        "rel_error": 0.0 if identical else rel,
        "max_abs_diff": 0.0 if identical else float(diff.abs().max()),
        "identical": identical,
        "finite": bool(torch.isfinite(x).all()),
    }


def per_mlp_agreement(fused: nn.Module, unfused: nn.Module, inputs: dict) -> dict[str, Any]:
    """Each fused MLP against its unfused static-FP8 twin on the input it really saw.

    This is the contract-level check: the unfused module runs with fp32 activations,
    so its hidden state is computed exactly as CONTRACT.md's reference does (the model
    itself rounds that to bf16 between the linears). Whole-model agreement compounds
    the per-MLP differences through attention and residuals of random weights, so it
    is reported too but is not the tolerance check.
    """
    from static_fp8_mlp_registry import FusedStaticFP8MLP

    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name, mod in fused.named_modules():
        if isinstance(mod, FusedStaticFP8MLP):
            handles.append(mod.register_forward_pre_hook(
                lambda m, args, name=name: seen.setdefault(name, args[0].detach().clone())))
    try:
        model_output(fused, inputs)
    finally:
        for h in handles:
            h.remove()
    worst: dict[str, Any] = {"mlps": len(seen), "max_rel_error": 0.0, "min_cosine": 1.0}
    for name, x in seen.items():
        got = fused.get_submodule(name)(x)
        ref = unfused.get_submodule(name)(x.float()).to(got.dtype)
        a = agreement(got, ref)
        if a["rel_error"] >= worst["max_rel_error"]:
            worst["max_rel_error"], worst["worst_mlp"] = a["rel_error"], name
        worst["min_cosine"] = min(worst["min_cosine"], a["cosine"])
    return worst


class RunCounter:
    """Counts, per fused module, how often the fused kernels ran and how often its
    forward fell back to the original module (and why)."""

    def __init__(self, model: nn.Module):
        from static_fp8_mlp_registry import FusedStaticFP8MLP

        self.calls: Counter = Counter()
        self.fused: Counter = Counter()
        self.reasons: dict[str, Counter] = {}
        self._handles = []
        self._patched = []
        for name, mod in model.named_modules():
            if isinstance(mod, FusedStaticFP8MLP):
                self._attach(name, mod)

    def _attach(self, name: str, mod: nn.Module) -> None:
        def pre_hook(m, args, kwargs):
            self.calls[name] += 1
            x = args[0] if len(args) == 1 and not kwargs else None
            why = fallback_reason(m, x)
            if why:
                self.reasons.setdefault(name, Counter())[why] += 1

        self._handles.append(mod.register_forward_pre_hook(pre_hook, with_kwargs=True))
        inner = type(mod)._sfm_fused_forward

        def counted(x, *weights, _m=mod, _inner=inner):
            self.fused[name] += 1
            return _inner(_m, x, *weights)

        mod.__dict__["_sfm_fused_forward"] = counted
        self._patched.append(mod)

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        for m in self._patched:
            m.__dict__.pop("_sfm_fused_forward", None)
        self._handles, self._patched = [], []

    def summary(self) -> dict[str, Any]:
        ran = sorted(n for n in self.calls if self.fused[n] > 0)
        fell = sorted(n for n in self.calls if self.fused[n] < self.calls[n])
        reasons: Counter = Counter()
        for n in fell:
            for why in self.reasons.get(n, {"unknown": 1}):
                reasons[why] += 1
        return {"ran_fused": len(ran), "fell_back": len(fell), "fallback_reasons": dict(reasons),
                "fell_back_modules": fell}


def fallback_reason(m: nn.Module, x: Any) -> str:
    """Why a fused module's forward will run the original module for input `x` ('' if it will not)."""
    if not isinstance(x, torch.Tensor):
        return "called with extra arguments"
    if not getattr(m, "_sfm_enabled", False):
        return "fusion disabled after a state change"
    if m.training:
        return "training mode"
    if x.dtype != torch.bfloat16:
        return f"input is {str(x.dtype).replace('torch.', '')}, the kernels take bfloat16"
    if x.device.type not in getattr(m, "_sfm_device_types", ("cuda",)):
        return f"input on {x.device.type}: the kernels run on CUDA only"
    if x.device.type == "cuda" and x.device.index not in getattr(m, "_sfm_cuda_devices", ()):
        return f"GPU {torch.cuda.get_device_name(x.device)} is not covered by the build's archs"
    if not m._sfm_skipped_layers_are_plain():
        return "a projection or the activation was replaced, or given a hook, since fusion"
    if not m._sfm_can_fuse(x):
        return "input not supported by the kernels (device, layout, grad or weight dtype)"
    return ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_eager(fn: Callable[[], Any], *, warmup: int, iters: int, repeats: int = 3) -> float:
    """Median over `repeats` of the mean time of `iters` calls, in ms (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / iters)
    return statistics.median(samples)


def time_graph(fn: Callable[[], Any], *, warmup: int, iters: int, repeats: int = 3) -> float:
    """Capture `fn` in one CUDA graph and time its replay, in ms."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(max(3, warmup)):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    try:
        return time_eager(graph.replay, warmup=warmup, iters=iters, repeats=repeats)
    finally:
        del graph
        torch.cuda.synchronize()


def _short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ======================================================================= per model


def run_model(
    key: str,
    sizes: Sizes,
    *,
    device: torch.device,
    fusion_config: dict,
    kernel_modules: dict | None,
    calib_batches: int,
    keep_bf16: int,
    per_channel: bool,
    fp8_compute: torch.dtype,
    fp8_layers: str,
    seed: int,
    latency: bool,
    compile_fused: bool,
    graphs: bool,
    warmup: int,
    iters: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from static_fp8_mlp_registry import calibrate_static_fp8, fuse_static_fp8_mlps

    from static_fp8_mlp_registry.layers import mlp_linear_names

    cls_name, title, mlp_kind = MODEL_INFO[key]
    res: dict[str, Any] = {"model": cls_name, "title": title, "mlp_kind": mlp_kind}
    log(f"{key}: creating a {title} with random weights, calibrating static-FP8 MLPs, fusing ...")
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    dm = build_model(key, sizes, device, seed)
    res["model"] = type(dm.model).__name__
    res["parameters"] = sum(p.numel() for p in dm.model.parameters())
    res["tokens_per_forward"] = dm.tokens
    timings["create_s"] = time.monotonic() - t0

    gen = torch.Generator().manual_seed(seed + 1)
    calib = [dm.make_inputs(gen) for _ in range(calib_batches)]
    eval_inputs = dm.make_inputs(gen)

    with torch.no_grad():
        # BF16 reference, then the static-FP8 copy, calibrated on sample inputs.
        bf16 = dm.model
        out_bf16 = model_output(bf16, eval_inputs)
        fp8 = copy.deepcopy(bf16)
        linears = mlp_linear_names(fp8)
        mlps = list(dict.fromkeys(n.rpartition(".")[0] for n in linears))
        kept = set(mlps[len(mlps) - keep_bf16:]) if keep_bf16 > 0 else set()
        res["kept_bf16"] = sorted(kept)
        selected = [n for n in linears if n.rpartition(".")[0] not in kept]
        t = time.monotonic()
        converted = calibrate_static_fp8(
            fp8, calib, modules=selected, per_channel=per_channel, compute_dtype=fp8_compute,
            forward=lambda m, b: m(**b), progress=True,
        ) if selected else {}
        timings["calibrate_s"] = time.monotonic() - t
        res["fp8_linears"] = len(converted)
        if fp8_layers == "transformers":
            res["transformers_fp8linear"] = to_transformers_fp8(fp8)
        res["fp8_layer_type"] = (
            "transformers FP8Linear (static)" if fp8_layers == "transformers" else "StaticFP8Linear"
        )
        try:
            out_fp8 = model_output(fp8, eval_inputs)
        except Exception as exc:  # noqa: BLE001 - e.g. FP8Linear cannot reach its own kernel
            raise CliError(f"{key}: the unfused static-FP8 model failed to run: {_short_error(exc)}") from exc

        # The fused copy.
        fused = copy.deepcopy(fp8)
        t = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = fuse_static_fp8_mlps(fused, fusion_config, kernel_modules=kernel_modules)
        timings["fuse_s"] = time.monotonic() - t
        res["fusion_warnings"] = [str(w.message) for w in caught if "static-fp8-mlp" in str(w.message)]
        res["fusion_report"] = report.to_dict()
        res["fusion_report_text"] = str(report)

        counter = RunCounter(fused)
        try:
            out_fused = model_output(fused, eval_inputs)
        finally:
            counter.close()
        runs = counter.summary()

    found = len(report.modules)
    left = [{"name": m.name, "reason": m.reason} for m in report.not_fused]
    endpoints = Counter(m.endpoint for m in report.fused)
    patterns = Counter(m.pattern for m in report.modules)
    res["mlps"] = {
        "found": found,
        "patterns": dict(patterns),
        "fused": len(report.fused),
        "endpoints": dict(endpoints),
        "left_alone": len(left),
        "left_alone_detail": left,
        **runs,
    }
    if report.error:
        res["mlps"]["error"] = report.error
    with torch.no_grad():
        res["per_mlp_agreement"] = per_mlp_agreement(fused, fp8, eval_inputs)
    res["agreement"] = {
        "fused_vs_unfused_fp8": agreement(out_fused, out_fp8),
        "fused_vs_bf16": agreement(out_fused, out_bf16),
        "unfused_fp8_vs_bf16": agreement(out_fp8, out_bf16),
    }

    if latency:
        log(f"  timing {key} on {torch.cuda.get_device_name(device)} ...")
        t = time.monotonic()
        res["latency_ms"], res["latency_errors"], extra = measure_latency(
            {"bf16": bf16, "unfused_fp8": fp8, "fused": fused}, eval_inputs,
            compile_fused=compile_fused, graphs=graphs, warmup=warmup, iters=iters, reference=out_fused, log=log,
        )
        res.update(extra)
        timings["latency_s"] = time.monotonic() - t
    else:
        res["latency_ms"] = None
    res["timings"] = timings

    del bf16, fp8, fused, dm, calib
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


def measure_latency(
    models: dict[str, nn.Module],
    inputs: dict[str, Any],
    *,
    compile_fused: bool,
    graphs: bool,
    warmup: int,
    iters: int,
    reference: torch.Tensor,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, float | None]], dict[str, str], dict[str, Any]]:
    """Eager and CUDA-graph latency of each model, plus torch.compile of the fused one.

    Every cell is measured independently: a failure (e.g. a capture that hits a host
    sync) leaves that cell None and records the error instead of stopping the demo.
    """
    table: dict[str, dict[str, float | None]] = {}
    errors: dict[str, str] = {}
    extra: dict[str, Any] = {}

    def cell(row: str, col: str, fn: Callable[[], float]) -> None:
        table.setdefault(row, {"eager": None, "cuda_graph": None})
        try:
            with torch.no_grad():
                table[row][col] = fn()
        except Exception as exc:  # noqa: BLE001
            errors[f"{row}/{col}"] = _short_error(exc)
            with contextlib.suppress(Exception):
                torch.cuda.synchronize()

    for row, model in models.items():
        call = lambda m=model: model_output(m, inputs)  # noqa: E731
        cell(row, "eager", lambda: time_eager(call, warmup=warmup, iters=iters))
        if graphs:
            cell(row, "cuda_graph", lambda: time_graph(call, warmup=warmup, iters=iters))

    if compile_fused:
        table["fused_compiled"] = {"eager": None, "cuda_graph": None}
        log("  torch.compile of the fused model ...")
        try:
            torch._dynamo.reset()
            compiled = torch.compile(models["fused"])
            t = time.monotonic()
            with torch.no_grad():
                out = model_output(compiled, inputs)
                torch.cuda.synchronize()
            extra["compile_s"] = time.monotonic() - t
            extra["compiled_vs_fused"] = agreement(out, reference)
        except Exception as exc:  # noqa: BLE001
            errors["fused_compiled/compile"] = _short_error(exc)
            compiled = None
        if compiled is not None:
            call = lambda: model_output(compiled, inputs)  # noqa: E731
            cell("fused_compiled", "eager", lambda: time_eager(call, warmup=warmup, iters=iters))
            if graphs:
                cell("fused_compiled", "cuda_graph", lambda: time_graph(call, warmup=warmup, iters=iters))
        with contextlib.suppress(Exception):
            torch._dynamo.reset()
    return table, errors, extra


# ========================================================================== tables


ROW_LABELS = {
    "bf16": "BF16",
    "unfused_fp8": "unfused static FP8",
    "fused": "fused (static-fp8-mlp)",
    "fused_compiled": "fused + torch.compile",
}


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _fmt_agree(a: dict[str, Any]) -> tuple[str, str, str]:
    if a["identical"]:
        return "1.000000", "0", "identical"
    note = "" if a["finite"] else "NON-FINITE"
    return f"{a['cosine']:.6f}", f"{a['rel_error']:.3e}", note


def format_model_table(key: str, r: dict[str, Any], sizes: Sizes, device: torch.device) -> str:
    m = r["mlps"]
    if key == "siglip":
        shape = (f"{sizes.layers} layers, image {sizes.image_size}px / patch {sizes.patch_size}; "
                 f"input {sizes.batch_size} image{'s' if sizes.batch_size != 1 else ''} = {r['tokens_per_forward']} tokens")
    else:
        shape = f"{sizes.layers} layers; input {sizes.batch_size} x {sizes.seq_len} = {r['tokens_per_forward']} tokens"
    lines = [
        f"{key}: {r['title']}, {r['model']} with {r['mlp_kind']}",
        f"  hidden {sizes.hidden}, intermediate {sizes.intermediate}, {shape}; {r['fp8_layer_type']} on {device.type}",
    ]
    pat = ", ".join(f"{k}: {v}" for k, v in sorted(m["patterns"].items())) or "-"
    lines.append(f"  MLPs found          {m['found']:>3}   ({pat})")
    eps = ", ".join(f"{k} x{v}" for k, v in sorted(m["endpoints"].items()))
    lines.append(f"  fused               {m['fused']:>3}" + (f"   -> {eps}" if eps else ""))
    lines.append(f"  left alone          {m['left_alone']:>3}")
    by_reason: dict[str, list[str]] = {}
    for d in m["left_alone_detail"]:
        by_reason.setdefault(d["reason"], []).append(d["name"] or "<root>")
    for why, names in by_reason.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        kept = " (kept in BF16 by --keep-bf16)" if set(names) <= set(r.get("kept_bf16", ())) else ""
        lines.append(f"      {shown}: {why}{kept}")
    if m["fused"]:
        if m["fell_back"]:
            whys = "; ".join(f"{w}" for w in m["fallback_reasons"])
            lines.append(
                f"  at run time         {m['ran_fused']:>3} ran the fused kernels, {m['fell_back']} fell back to "
                f"the original module ({whys})"
            )
        else:
            lines.append(f"  at run time         {m['ran_fused']:>3} ran the fused kernels")
    if m.get("error"):
        lines.append(f"  kernel error: {m['error']}")

    lines.append("  output agreement                 cosine      rel. error")
    labels = {
        "fused_vs_unfused_fp8": "fused vs unfused static FP8",
        "fused_vs_bf16": "fused vs BF16",
        "unfused_fp8_vs_bf16": "unfused static FP8 vs BF16",
    }
    for k, label in labels.items():
        cos, rel, note = _fmt_agree(r["agreement"][k])
        lines.append(f"    {label:<29}{cos:>9}   {rel:>10}   {note}".rstrip())
    per = r.get("per_mlp_agreement")
    if per and per["mlps"]:
        if m.get("ran_fused", 0) == 0:
            note = ("fused MLPs fell back to the original modules (bf16 hidden), so this is the "
                    "original module vs the fp32-hidden contract math")
        else:
            verdict = "within" if per["max_rel_error"] <= 1e-2 else "OUTSIDE"
            note = (f"worst of {per['mlps']} MLPs, {verdict} the contract's 1e-2 (whole-model "
                    "outputs compound per-MLP differences through the layers)")
        lines.append(
            f"    per MLP, fused vs unfused    {per['min_cosine']:>9.6f}   {per['max_rel_error']:>10.3e}   {note}"
        )

    lat = r.get("latency_ms")
    if lat is None:
        lines.append(f"  latency             not measured ({r.get('latency_skipped', 'needs a CUDA device')})")
    else:
        lines.append("  latency (ms)                      eager   CUDA graph")
        for row in ("bf16", "unfused_fp8", "fused", "fused_compiled"):
            if row in lat:
                lines.append(
                    f"    {ROW_LABELS[row]:<28}{_fmt_ms(lat[row]['eager']):>9}   {_fmt_ms(lat[row]['cuda_graph']):>10}"
                )
        b, f = lat.get("bf16", {}), lat.get("fused", {})
        speed = []
        for col, label in (("eager", "eager"), ("cuda_graph", "CUDA graph")):
            if b.get(col) and f.get(col):
                speed.append(f"{b[col] / f[col]:.2f}x {label}")
        if speed:
            lines.append(f"    fused vs BF16 speed-up: {', '.join(speed)}")
        if "compile_s" in r:
            c = r.get("compiled_vs_fused")
            agree = f"; its output vs eager fused: rel. error {c['rel_error']:.2e}" if c else ""
            lines.append(f"    torch.compile took {r['compile_s']:.1f}s{agree}")
        for where, err in (r.get("latency_errors") or {}).items():
            lines.append(f"    n/a {where}: {err}")
    return "\n".join(lines)
