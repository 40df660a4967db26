"""Shared fixtures. `kernel_module` is the kernel package under test: the build named
by STATIC_FP8_MLP_BUILD (a variant, build/ or project dir), else the local build."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kernel_variant_dir(request) -> Path:
    from kernel_loader import find_variant

    env = os.environ.get("STATIC_FP8_MLP_BUILD")
    if env:
        return find_variant(Path(env))
    return request.getfixturevalue("built_variant")


@pytest.fixture(scope="session")
def kernel_module(kernel_variant_dir):
    from kernel_loader import load_kernel_module

    return load_kernel_module(kernel_variant_dir)


@pytest.fixture(scope="session")
def built_variant() -> Path:
    """Run the real local build (`static-fp8-mlp build`) once per session and return
    build/<variant>. Incremental: cheap when build/ is already up to date. Skips without
    nvcc or a CUDA-enabled torch."""
    from static_fp8_mlp_cli.errors import CliError

    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed")
    if torch.version.cuda is None:
        pytest.skip(f"torch {torch.__version__} is CPU-only: the local build needs a CUDA torch")
    from static_fp8_mlp_cli import nvcc
    from static_fp8_mlp_cli.build import build

    try:
        nvcc.find_nvcc()
    except CliError as exc:
        pytest.skip(f"cannot build the kernel here: {exc}")
    try:
        return build(REPO_ROOT).variant_dir
    except CliError as exc:
        pytest.fail(f"static-fp8-mlp build failed: {exc}", pytrace=False)
