"""Helpers for the registry tests: stand-in kernel packages laid out like Hub builds,
a hand-made offline kernels cache, tiny static-FP8 models, and access to the real build.

A stand-in is a directory `<root>/build/<variant>/` holding `metadata.json`, `_ops.py`
and an `__init__.py` that implements the four v1 endpoints in plain PyTorch (the
registry's reference math), so the registry's resolution, validation and fusion code
paths run on a CPU-only machine. Every stand-in gets its own `metadata.id` and op
namespace unless a test asks for a collision on purpose.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import textwrap
import uuid
from pathlib import Path

import pytest

from static_fp8_mlp_registry.contract import ENDPOINTS
from static_fp8_mlp_registry.loader import expected_variant

ALL_ARCHS = ("8.9", "9.0a", "10.0a", "12.0")

_FUNCS = {
    "channel_scale_quantize_fp8_static_bf16": '''
def channel_scale_quantize_fp8_static_bf16(input, channel_scale, scale, *, out=None):
    CALLS.append("channel_scale_quantize_fp8_static_bf16")
    return _result(_ref.input_quant(input, channel_scale, scale), out)
''',
    "fp8_swiglu_mlp_bf16": '''
def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, *, out=None):
    CALLS.append("fp8_swiglu_mlp_bf16")
    return _result(_ref.gated_mlp(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, "silu"), out)
''',
    "fp8_geglu_mlp_bf16": '''
def fp8_geglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, *, out=None):
    CALLS.append("fp8_geglu_mlp_bf16")
    return _result(_ref.gated_mlp(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, "gelu_tanh"), out)
''',
    "fp8_gelu_mlp_bf16": '''
def fp8_gelu_mlp_bf16(input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale, hidden_scale, down_weight_scale, *, out=None):
    CALLS.append("fp8_gelu_mlp_bf16")
    return _result(_ref.dense_gelu_mlp(input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale, hidden_scale, down_weight_scale), out)
''',
}


def contract_schema(name: str) -> str:
    return ENDPOINTS[name].op_schema


def make_standin(
    root: Path,
    *,
    name: str = "static-fp8-mlp",
    kernel_id: str | None = None,
    archs: tuple[str, ...] = ALL_ARCHS,
    variant: str | None = None,
    omit: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    op_schemas: dict[str, str] | None = None,
    extra: str = "",
    with_ops_file: bool = True,
) -> Path:
    """Write a stand-in kernel project at `root` and return `root`.

    `replace` maps an endpoint name to replacement source code (a full `def`);
    `omit` leaves endpoints out; `op_schemas` maps op names to the schema (without
    name) the stand-in registers under its own torch.library namespace and exposes as
    `ops` (e.g. a wrong one, to test the schema check).
    """
    kernel_id = kernel_id or f"_static_fp8_mlp_standin_{uuid.uuid4().hex[:10]}"
    ns = kernel_id
    variant = variant or expected_variant()
    vdir = Path(root) / "build" / variant
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "metadata.json").write_text(
        json.dumps(
            {
                "name": name,
                "id": kernel_id,
                "version": 1,
                "license": "apache-2.0",
                "python-depends": [],
                "backend": {"type": "cuda", "archs": list(archs)},
            }
        )
    )
    if with_ops_file:
        (vdir / "_ops.py").write_text(
            textwrap.dedent(
                f"""
                import torch
                ops = torch.ops.{ns}

                def add_op_namespace_prefix(op_name: str) -> str:
                    return f"{ns}::{{op_name}}"
                """
            )
        )
    parts = [
        "import builtins",
        "import torch",
        "from static_fp8_mlp_registry import reference as _ref",
        "builtins.__dict__.setdefault('_sfm_standin_loads', []).append(__file__)",
        "CALLS = []",
        # the endpoints' `out=` convention: fill and return it, or return the new tensor
        "def _result(r, out):\n"
        "    if out is not None:\n"
        "        out.copy_(r)\n"
        "        return out\n"
        "    return r",
    ]
    if with_ops_file:
        parts.append("from ._ops import ops, add_op_namespace_prefix")
    if op_schemas:
        parts.append(f"_LIB = torch.library.Library({ns!r}, 'DEF')")
        for op, schema in op_schemas.items():
            parts.append(f"_LIB.define({op + schema!r})")
    replace = replace or {}
    for fn, src in _FUNCS.items():
        if fn in omit:
            continue
        parts.append(textwrap.dedent(replace.get(fn, src)))
    for fn, src in replace.items():
        if fn not in _FUNCS:
            parts.append(textwrap.dedent(src))
    parts.append(textwrap.dedent(extra))
    (vdir / "__init__.py").write_text("\n".join(parts) + "\n")
    return Path(root)


def variant_dir(root: Path) -> Path:
    return Path(root) / "build" / expected_variant()


def standin_loads() -> list[str]:
    return list(builtins.__dict__.get("_sfm_standin_loads", []))


def make_offline_cache(cache: Path, repo_id: str, build_src: Path, *, versions=(1,), sha: str | None = None) -> str:
    """Lay out a kernels/HF cache by hand: `kernels--o--n/{refs/v<N>, snapshots/<sha>/build/...}`.

    `build_src` is a directory holding variant directories (a `build/`). Returns the sha.
    """
    sha = sha or uuid.uuid4().hex + uuid.uuid4().hex[:8]
    assert len(sha) == 40
    repo_dir = Path(cache) / f"kernels--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    for v in versions:
        (repo_dir / "refs" / f"v{v}").write_text(sha)
    snap = repo_dir / "snapshots" / sha / "build"
    snap.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(build_src, snap, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (repo_dir / "blobs").mkdir(exist_ok=True)
    return sha


def real_build_dir(request) -> Path:
    """The real `static-fp8-mlp` build: the `built_variant` fixture (tests/conftest.py) or
    $STATIC_FP8_MLP_BUILD (a build/ dir or a variant dir); skips when neither exists."""
    env = os.environ.get("STATIC_FP8_MLP_BUILD")
    if env:
        p = Path(env)
        if not p.exists():
            pytest.skip(f"STATIC_FP8_MLP_BUILD={env} does not exist")
        return p
    try:
        return Path(request.getfixturevalue("built_variant"))
    except pytest.FixtureLookupError:
        pytest.skip("no real build: tests/conftest.py has no built_variant fixture and STATIC_FP8_MLP_BUILD is unset")


# ------------------------------------------------------------------------- fake Hub


def _httpx():
    """The HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        import httpx

        return httpx


class FakeHub:
    """A stand-in for the Hub's kernel-repo API, patched into `huggingface_hub.HfApi`.

    Serves repos from local project directories (each holding `build/<variant>/`), so
    `kernels.get_kernel` runs its real online code path: trust check, branch listing,
    revision lookup (kernels >= 0.18), variant listing, metadata download and snapshot
    download.
    """

    def __init__(self):
        self.repos: dict[str, dict[str, tuple[str, Path]]] = {}
        self.trusted_orgs: set[str] = set()
        self.known_orgs: set[str] = set()
        self.network_down = False
        self.calls: list[tuple[str, str]] = []

    def add_repo(self, repo_id: str, branches: dict[str, Path], *, trusted: bool = False) -> dict[str, str]:
        org = repo_id.split("/")[0]
        self.known_orgs.add(org)
        if trusted:
            self.trusted_orgs.add(org)
        refs = {}
        for branch, project in branches.items():
            refs[branch] = (uuid.uuid4().hex + uuid.uuid4().hex[:8], Path(project))
        self.repos[repo_id] = refs
        return {b: sha for b, (sha, _) in refs.items()}

    # -- helpers
    def _net(self, what: str, arg: str):
        self.calls.append((what, arg))
        if self.network_down:
            raise _httpx().ConnectError("[Errno -3] Temporary failure in name resolution")

    @staticmethod
    def _http_error(cls, url: str, status: int = 404):
        httpx = _httpx()
        return cls(f"{status} Client Error for url: {url}", response=httpx.Response(status, request=httpx.Request("GET", url)))

    def _repo(self, repo_id: str):
        from huggingface_hub.errors import RepositoryNotFoundError

        if repo_id not in self.repos:
            raise self._http_error(RepositoryNotFoundError, f"https://huggingface.co/api/kernels/{repo_id}")
        return self.repos[repo_id]

    def _dir(self, repo_id: str, revision: str | None) -> Path:
        from huggingface_hub.errors import RevisionNotFoundError

        refs = self._repo(repo_id)
        for branch, (sha, project) in refs.items():
            if revision in (branch, sha):
                return project
        raise self._http_error(RevisionNotFoundError, f"https://huggingface.co/api/kernels/{repo_id}/revision/{revision}")

    # -- patched HfApi methods
    def install(self, monkeypatch) -> "FakeHub":
        from types import SimpleNamespace

        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError
        from huggingface_hub.hf_api import GitRefInfo, GitRefs, RepoFolder

        hub = self

        def get_organization_overview(api, organization, token=None):
            hub._net("org", organization)
            if organization not in hub.known_orgs:
                raise hub._http_error(RepositoryNotFoundError, f"https://huggingface.co/api/organizations/{organization}/overview")
            return SimpleNamespace(name=organization, trustedKernelPublisher=organization in hub.trusted_orgs)

        def list_repo_refs(api, repo_id, *, repo_type=None, include_pull_requests=False, token=None):
            hub._net("refs", repo_id)
            refs = hub._repo(repo_id)
            return GitRefs(
                branches=[GitRefInfo(name=b, ref=f"refs/heads/{b}", target_commit=sha) for b, (sha, _) in refs.items()],
                converts=[],
                tags=[],
            )

        def list_repo_tree(api, repo_id, path_in_repo=None, *, recursive=False, expand=False, revision=None, repo_type=None, token=None, **kw):
            hub._net("tree", repo_id)
            project = hub._dir(repo_id, revision)
            base = project / (path_in_repo or "")
            return [RepoFolder(path=f"{path_in_repo}/{p.name}", oid="0" * 40) for p in sorted(base.iterdir()) if p.is_dir()]

        def hf_hub_download(api, repo_id, filename, *, repo_type=None, revision=None, cache_dir=None, local_files_only=False, **kw):
            hub._net("file", f"{repo_id}/{filename}")
            return str(hub._dir(repo_id, revision) / filename)

        def snapshot_download(api, repo_id, *, repo_type=None, revision=None, allow_patterns=None, ignore_patterns=None, cache_dir=None, local_files_only=False, **kw):
            hub._net("snapshot", repo_id)
            return str(hub._dir(repo_id, revision))

        def repo_info(api, repo_id, *, revision=None, repo_type=None, token=None, **kw):
            # kernels >= 0.18 resolves a revision (branch or sha) to its commit this way
            hub._net("info", repo_id)
            refs = hub._repo(repo_id)
            hub._dir(repo_id, revision)  # RevisionNotFoundError for an unknown one
            sha = next(sha for b, (sha, _) in refs.items() if revision in (b, sha))
            return SimpleNamespace(id=repo_id, sha=sha)

        monkeypatch.setattr(HfApi, "repo_info", repo_info)
        monkeypatch.setattr(HfApi, "get_organization_overview", get_organization_overview)
        monkeypatch.setattr(HfApi, "list_repo_refs", list_repo_refs)
        monkeypatch.setattr(HfApi, "list_repo_tree", list_repo_tree)
        monkeypatch.setattr(HfApi, "hf_hub_download", hf_hub_download)
        monkeypatch.setattr(HfApi, "snapshot_download", snapshot_download)
        return self


def use_offline_cache(monkeypatch, cache: Path) -> None:
    """In-process equivalent of HF_HUB_OFFLINE=1 KERNELS_CACHE=<cache> (kernels 0.17 reads
    the cache dir at import time, so its module constants are patched too; 0.18 and later
    read the variable at each call)."""
    import huggingface_hub.constants as hc
    from static_fp8_mlp_registry.kernels_api import internal

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KERNELS_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    for name in ("hf_hub", "resolver"):
        module = internal(name)
        if hasattr(module, "CACHE_DIR"):
            monkeypatch.setattr(module, "CACHE_DIR", str(cache))


@pytest.fixture
def fresh_registry(monkeypatch):
    """Forget cached resolutions and clear LOCAL_KERNELS for the test."""
    from static_fp8_mlp_registry.loader import clear_resolution_cache

    monkeypatch.delenv("LOCAL_KERNELS", raising=False)
    clear_resolution_cache()
    yield
    clear_resolution_cache()


# ------------------------------------------------------------------ tiny models


def tiny_llama(*, act: str = "silu", inter: int = 128, hidden: int = 64, mlp_bias: bool = False, layers: int = 2, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, hidden_act=act, mlp_bias=mlp_bias,
    )
    return LlamaForCausalLM(cfg).to(torch.bfloat16).eval()


def tiny_phi3(*, act: str = "silu", layers: int = 2, seed: int = 0):
    """Phi-3: one merged gate_up_proj ([gate; up] rows) per MLP."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    cfg = Phi3Config(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, hidden_act=act, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    return Phi3ForCausalLM(cfg).to(torch.bfloat16).eval()


def tiny_starcoder2(*, act: str = "gelu_pytorch_tanh", layers: int = 2, seed: int = 0):
    """StarCoder2: dense MLPs named c_fc / c_proj, with biases."""
    import torch
    from transformers import Starcoder2Config, Starcoder2ForCausalLM

    torch.manual_seed(seed)
    cfg = Starcoder2Config(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, hidden_act=act, use_bias=True,
        bos_token_id=1, eos_token_id=2,
    )
    return Starcoder2ForCausalLM(cfg).to(torch.bfloat16).eval()


def tiny_gpt_neox(*, act: str = "gelu_pytorch_tanh", layers: int = 2, seed: int = 0):
    """GPT-NeoX: dense MLPs named dense_h_to_4h / dense_4h_to_h."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
        max_position_embeddings=64, hidden_act=act, bos_token_id=1, eos_token_id=2,
    )
    return GPTNeoXForCausalLM(cfg).to(torch.bfloat16).eval()


def tiny_gemma(*, act: str = "gelu_pytorch_tanh", layers: int = 2, seed: int = 0):
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(seed)
    cfg = GemmaConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=64, hidden_act=act, hidden_activation=act,
    )
    return GemmaForCausalLM(cfg).to(torch.bfloat16).eval()


def tiny_siglip(*, act: str = "gelu_pytorch_tanh", layers: int = 2, seed: int = 0, use_head: bool = True):
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    cfg = SiglipVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
        image_size=32, patch_size=8, hidden_act=act, vision_use_head=use_head,
    )
    return SiglipVisionModel(cfg).to(torch.bfloat16).eval()


def token_batches(n: int = 3, seed: int = 1, device="cpu"):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (2, 8), generator=g).to(device) for _ in range(n)]


def pixel_batches(n: int = 3, seed: int = 1, device="cpu"):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 32, 32, generator=g).bfloat16().to(device) for _ in range(n)]


def model_out(model, batch):
    import torch
    from static_fp8_mlp_cli.demo_models import model_output

    with torch.no_grad():
        return model_output(model, batch)


def fusion_config_for(spec) -> dict:
    return {"static_quantized_mlp": {"input_quant": spec, "gated_mlp": spec, "dense_gelu_mlp": spec}}


def calibrated_on(kind: str, device: str = "cpu", *, per_channel: bool = False, **kw):
    """A tiny model of `kind` ('llama', 'gemma', 'phi3', 'starcoder2', 'gpt_neox', 'siglip') on `device`, its MLP linears
    calibrated to StaticFP8Linear; returns (model, batches)."""
    from static_fp8_mlp_registry.layers import calibrate_static_fp8

    if kind == "llama":
        model, batches = tiny_llama(**kw), token_batches(device=device)
    elif kind == "gemma":
        model, batches = tiny_gemma(**kw), token_batches(device=device)
    elif kind == "phi3":
        model, batches = tiny_phi3(**kw), token_batches(device=device)
    elif kind == "starcoder2":
        model, batches = tiny_starcoder2(**kw), token_batches(device=device)
    elif kind == "gpt_neox":
        model, batches = tiny_gpt_neox(**kw), token_batches(device=device)
    elif kind == "siglip":
        model, batches = tiny_siglip(**kw), pixel_batches(device=device)
    else:
        raise ValueError(kind)
    model.to(device)
    calibrate_static_fp8(model, batches, progress=False, per_channel=per_channel)
    return model, batches
