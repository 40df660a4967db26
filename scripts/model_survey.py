"""Which transformers architectures the registry fuses: tiny random-weight models, on the CPU.

For each causal-LM architecture the installed transformers registers, then each vision
tower (a model type with "vision" in its name; or the model types named), the survey
builds a tiny model (hidden 64, intermediate 128, 2 layers, 4 experts where it has
experts, 32 x 32 images; EXTRA_CONFIG below for the few that need more), calibrates its
MLP linears to static FP8 (`calibrate_static_fp8`), fuses it with the registry's
pure-PyTorch reference kernels (`kernel_reference`, run on the CPU through the fused
modules' own forward) and records, per architecture:

- the MLPs fused (module class, endpoint) and those left alone, with the registry's reason;
- for every fused MLP, the contract check: its fused output (the reference kernels
  called, counted) against its own unfused forward in fp32, on random bf16 inputs, as a
  relative Frobenius error (<= 1e-2 passes, CONTRACT.md);
- whether the whole fused model still runs and gives finite outputs.

Architectures whose tiny model cannot be built or run with these settings are listed as
not surveyed, with the error: a limit of this survey, not of the registry. So are those
whose config nests the model (a multimodal config: the tiny settings do not reach its
text or vision part; more than 20 M parameters).

    python3 scripts/model_survey.py [--out DIR] [MODEL_TYPE ...]

Prints a table; with --out, writes DIR/model_survey.json and DIR/model_survey.md.
tests/test_model_families.py runs `survey()` on a fixed list of families.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import types
import warnings
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTRACT_TOL = 1e-2
MAX_PARAMS = 20_000_000
VOCAB = 64

TINY_CONFIG = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
    # mixture-of-experts settings (ignored by dense configs): few, small experts
    num_experts=4, num_local_experts=4, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
    shared_expert_intermediate_size=128,
)
# Architectures whose configs spell the sizes differently.
EXTRA_CONFIG = {
    "gptj": dict(n_embd=64, n_head=4, n_layer=2, n_positions=64, rotary_dim=8),
    "codegen": dict(n_embd=64, n_head=4, n_layer=2, n_positions=64, n_ctx=64, rotary_dim=8),
}
# Multi-head latent attention (DeepSeek-V2/V3 and their kin): small latent and rope sizes.
MLA = dict(kv_lora_rank=16, q_lora_rank=32, head_dim=8, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
           n_shared_experts=1, first_k_dense_replace=1, n_group=1, topk_group=1)
EXTRA_CONFIG.update({t: MLA for t in ("deepseek_v2", "deepseek_v3", "deepseek_v32", "glm4_moe_lite", "glm_moe_dsa",
                                      "minicpm3", "axk1", "axk2", "youtu")})
VISION_CONFIG = dict(
    image_size=32, patch_size=8, num_channels=3,
    # Qwen-VL-style towers (patches and a grid_thw in, see model_inputs)
    depth=2, num_heads=4, in_channels=3, temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=64,
    num_position_embeddings=64,
)
FAMILIES = ("input_quant", "gated_mlp", "dense_gelu_mlp")


def model_output(model, batch: dict):
    from static_fp8_mlp_cli.demo_models import model_output as output_of

    return output_of(model, batch)


@dataclass
class FusedMLP:
    name: str
    module_type: str
    endpoint: str
    shape: tuple[int, int, int]
    rel_err: float  # fused (reference kernels) against the module's own forward in fp32
    kernel_calls: int  # endpoint calls during that check: 1 when the fused path ran


@dataclass
class SurveyResult:
    model_type: str
    surveyed: bool
    error: str = ""  # why not surveyed
    fused: list[FusedMLP] = field(default_factory=list)
    declined: list[tuple[str, str, str]] = field(default_factory=list)  # (name, module type, reason)
    model_runs: bool = False  # the fused model's forward ran and gave finite outputs

    @property
    def contract_ok(self) -> bool:
        return all(f.rel_err <= CONTRACT_TOL and f.kernel_calls == 1 for f in self.fused)

    def summary(self) -> str:
        if not self.surveyed:
            return f"not surveyed: {self.error}"
        parts = []
        for module_type, endpoint in sorted({(f.module_type, f.endpoint) for f in self.fused}):
            n = sum(1 for f in self.fused if (f.module_type, f.endpoint) == (module_type, endpoint))
            parts.append(f"{n} {module_type} -> {endpoint}")
        for module_type, reason in sorted({(t, r) for _, t, r in self.declined}):
            n = sum(1 for _, t, r in self.declined if (t, r) == (module_type, reason))
            parts.append(f"{n} {module_type} left alone: {reason}")
        return "; ".join(parts) or "no MLP modules found"


def counting_kernels():
    """A kernel module of the reference endpoints (no __file__: nothing is registered as a
    build) whose calls are counted by name in `.CALLS`."""
    from static_fp8_mlp_registry import kernel_reference
    from static_fp8_mlp_registry.contract import ENDPOINTS

    module = types.ModuleType("model_survey_reference_kernels")
    module.CALLS = []
    for name in ENDPOINTS:
        fn = getattr(kernel_reference, name)

        @functools.wraps(fn)
        def counted(*args, _fn=fn, _name=name, **kwargs):
            module.CALLS.append(_name)
            return _fn(*args, **kwargs)

        setattr(module, name, counted)
    return module


def is_vision(model_type: str) -> bool:
    """A vision tower (SigLIP's, CLIP's, ...): surveyed as a bare model on pixel inputs."""
    return "vision" in model_type


def tiny_model(model_type: str):
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    auto = AutoModel if is_vision(model_type) else AutoModelForCausalLM
    extra = VISION_CONFIG if is_vision(model_type) else {}
    cfg = AutoConfig.for_model(model_type, **{**TINY_CONFIG, **extra, **EXTRA_CONFIG.get(model_type, {})})
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value >= VOCAB:
            setattr(cfg, attr, 1)
    build = auto.from_config if type(cfg) in auto._model_mapping else own_model_class(cfg)._from_config
    with torch.device("meta"):
        params = sum(p.numel() for p in build(cfg).parameters())
    if params > MAX_PARAMS:
        raise ValueError(f"{params / 1e6:.0f} M parameters: its config nests the model, which the tiny settings do not reach")
    torch.manual_seed(0)
    return build(cfg).to(torch.bfloat16).eval()


def own_model_class(cfg):
    """The model class of a config that the Auto classes do not map (Qwen2.5-VL's vision
    tower before transformers 5.25): the one class of its modeling module declared for it."""
    import importlib
    import inspect

    from transformers import PreTrainedModel

    module = importlib.import_module(type(cfg).__module__.replace(".configuration_", ".modeling_"))
    found = [c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, PreTrainedModel)
             and c.__dict__.get("config_class") is type(cfg)]
    if len(found) != 1:
        raise ValueError(f"no Auto class maps {type(cfg).__name__}, and its modeling module declares "
                         f"{len(found)} model classes for it")
    return found[0]


def model_inputs(model_type: str, model, gen) -> list[dict]:
    """Three batches of keyword arguments for the tiny model: token ids; images; or, for
    towers that take flattened patches with their (t, h, w) grid (Qwen-VL's), 2 x 16
    patches of a 4 x 4 grid."""
    import inspect

    import torch

    if not is_vision(model_type):
        return [{"input_ids": torch.randint(0, VOCAB, (2, 8), generator=gen)} for _ in range(3)]
    if "grid_thw" in inspect.signature(model.forward).parameters:
        c = model.config
        features = c.in_channels * c.temporal_patch_size * c.patch_size**2
        grid = torch.tensor([[1, 4, 4], [1, 4, 4]])
        return [{"hidden_states": torch.randn(32, features, generator=gen).bfloat16(), "grid_thw": grid}
                for _ in range(3)]
    return [{"pixel_values": torch.randn(2, 3, 32, 32, generator=gen).bfloat16()} for _ in range(3)]


def survey(model_type: str) -> SurveyResult:
    import torch

    from static_fp8_mlp_registry.fusion import fuse_static_fp8_mlps
    from static_fp8_mlp_registry.layers import calibrate_static_fp8
    from static_fp8_mlp_registry.reference import rel_frobenius_error

    result = SurveyResult(model_type, surveyed=False)
    gen = torch.Generator().manual_seed(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = tiny_model(model_type)
            batches = model_inputs(model_type, model, gen)
            calibrate_static_fp8(model, batches, progress=False)
            with torch.no_grad():
                model_output(model, batches[0])
    except Exception as exc:  # noqa: BLE001 - any failure here is the survey's, not the registry's
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return result
    result.surveyed = True

    kernels = counting_kernels()
    spec = {"repo_id": "survey/reference-kernels", "version": 1}
    report = fuse_static_fp8_mlps(
        model, {"static_quantized_mlp": dict.fromkeys(FAMILIES, spec)}, strict=True, smoke_test=False,
        devices=("cuda", "cpu"), kernel_modules=dict.fromkeys(FAMILIES, kernels),
    )
    result.declined = [(d.name, d.module_type, d.reason) for d in report.not_fused]
    for d in report.fused:
        mlp = model.get_submodule(d.name)
        x = (torch.randn(3, 5, d.shape[0], generator=gen) * 2).bfloat16()
        kernels.CALLS.clear()
        with torch.no_grad():
            fused = mlp(x)
            exact = type(mlp)._sfm_base_cls.forward(mlp, x.float())
        result.fused.append(FusedMLP(
            d.name, d.module_type, d.endpoint, tuple(d.shape), rel_frobenius_error(fused, exact.bfloat16()),
            kernels.CALLS.count(d.endpoint),
        ))
    with torch.no_grad():
        out = model_output(model, batches[0])
    result.model_runs = bool(torch.isfinite(out.float()).all())
    return result


def markdown(results: list[SurveyResult], versions: str) -> str:
    lines = [
        f"Survey of transformers' causal-LM architectures and vision towers ({versions}; "
        "`python3 scripts/model_survey.py --out DIR`, on the CPU).",
        "",
        "The contract check compares each fused MLP (the reference kernels) with its own forward in fp32 "
        "(rel. Frobenius error, bf16 outputs); 0 means bit-identical: the unfused static-FP8 layers compute the "
        "same math.",
        "",
        "| architecture | MLPs fused | left alone | contract check (max rel. err) | outcome |",
        "|---|---:|---:|---|---|",
    ]
    for r in results:
        if not r.surveyed:
            lines.append(f"| {r.model_type} | | | | {r.summary()} |")
            continue
        worst = max((f.rel_err for f in r.fused), default=None)
        check = "" if worst is None else f"{'ok' if r.contract_ok else 'FAIL'} ({worst:.1e})"
        lines.append(f"| {r.model_type} | {len(r.fused)} | {len(r.declined)} | {check} | {r.summary()} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_types", nargs="*",
                        help="transformers model types (default: every causal-LM one, then every vision tower: "
                             "a model type with 'vision' in its name)")
    parser.add_argument("--out", type=Path, help="write model_survey.json and model_survey.md here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT / "registry"))
    import torch
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

    transformers.logging.set_verbosity_error()
    names = args.model_types or [*sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), *sorted(t for t in MODEL_MAPPING_NAMES if is_vision(t))]
    results = []
    for i, model_type in enumerate(names, 1):
        r = survey(model_type)
        results.append(r)
        flag = "" if r.contract_ok and (r.model_runs or not r.surveyed) else "  <-- CHECK FAILED"
        print(f"[{i}/{len(names)}] {model_type}: {r.summary()}{flag}", flush=True)
    versions = (f"transformers {transformers.__version__}, torch {torch.__version__}, {date.today().isoformat()}, "
                f"{os.cpu_count()} CPUs")
    failed = [r.model_type for r in results if r.surveyed and not (r.contract_ok and r.model_runs)]
    surveyed = [r for r in results if r.surveyed]
    print(f"{len(surveyed)} of {len(results)} surveyed ({versions}); "
          f"{sum(1 for r in surveyed if r.fused)} with fused MLPs; contract or run failures: {failed or 'none'}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"versions": versions, "results": [{**asdict(r), "contract_ok": r.contract_ok} for r in results]}
        (args.out / "model_survey.json").write_text(json.dumps(payload, indent=1) + "\n")
        (args.out / "model_survey.md").write_text(markdown(results, versions))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
