"""Registry for static-FP8 MLP Hub kernels: resolve fusion_config specs, validate the
endpoints, and fuse supported MLP modules (falling back to the original module).

    from static_fp8_mlp_registry import fuse_static_fp8_mlps

    report = fuse_static_fp8_mlps(model, {
        "static_quantized_mlp": {
            "input_quant": "owner/static-fp8-mlp",
            "gated_mlp": "owner/static-fp8-mlp",
            "dense_gelu_mlp": "owner/static-fp8-mlp",
        }
    })
    print(report)

Heavy modules (torch, kernels, pydantic) are imported on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (  # noqa: F401 - light, re-exported
    ArchitectureNotSupportedError,
    DuplicateArtifactError,
    EndpointValidationError,
    FunctionMissingError,
    FusionConfigError,
    KernelImportError,
    KernelResolutionError,
    LocalArtifactError,
    NetworkUnreachableError,
    NoBuildVariantError,
    NotInCacheError,
    RegistryError,
    RepoNotFoundError,
    RevisionNotFoundError,
    SchemaMismatchError,
    SignatureMismatchError,
    SmokeTestError,
    StaticFP8FusionWarning,
    UntrustedPublisherError,
    VersionNotFoundError,
)

_LAZY = {
    "FusionConfig": "config",
    "KernelSpec": "config",
    "InputQuantSpec": "config",
    "GatedMLPSpec": "config",
    "DenseGeluMLPSpec": "config",
    "parse_fusion_config": "config",
    "parse_kernel_spec": "config",
    "ResolvedKernel": "loader",
    "resolve_kernel": "loader",
    "resolved_from_module": "loader",
    "loaded_artifacts": "loader",
    "clear_resolution_cache": "loader",
    "ValidationResult": "validate",
    "validate_endpoints": "validate",
    "StaticFP8Linear": "layers",
    "calibrate_static_fp8": "layers",
    "FusionReport": "report",
    "ModuleDecision": "report",
    "fuse_static_fp8_mlps": "fusion",
    "unfuse_static_fp8_mlps": "fusion",
    "refresh_fused_mlps": "fusion",
    "FusedStaticFP8MLP": "fusion",
    "inspect_linear": "fusion",
}

__all__ = sorted(
    [
        *_LAZY,
        "ArchitectureNotSupportedError",
        "DuplicateArtifactError",
        "EndpointValidationError",
        "FunctionMissingError",
        "FusionConfigError",
        "KernelImportError",
        "KernelResolutionError",
        "LocalArtifactError",
        "NetworkUnreachableError",
        "NoBuildVariantError",
        "NotInCacheError",
        "RegistryError",
        "RepoNotFoundError",
        "RevisionNotFoundError",
        "SchemaMismatchError",
        "SignatureMismatchError",
        "SmokeTestError",
        "StaticFP8FusionWarning",
        "UntrustedPublisherError",
        "VersionNotFoundError",
    ]
)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from .config import (
        DenseGeluMLPSpec,
        FusionConfig,
        GatedMLPSpec,
        InputQuantSpec,
        KernelSpec,
        parse_fusion_config,
        parse_kernel_spec,
    )
    from .fusion import (
        FusedStaticFP8MLP,
        fuse_static_fp8_mlps,
        inspect_linear,
        refresh_fused_mlps,
        unfuse_static_fp8_mlps,
    )
    from .layers import StaticFP8Linear, calibrate_static_fp8
    from .loader import (
        ResolvedKernel,
        clear_resolution_cache,
        loaded_artifacts,
        resolve_kernel,
        resolved_from_module,
    )
    from .report import FusionReport, ModuleDecision
    from .validate import ValidationResult, validate_endpoints
