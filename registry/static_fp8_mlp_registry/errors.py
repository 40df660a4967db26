"""Exceptions raised by the registry.

Every message says what went wrong *and* what to do about it. All of them derive from
`RegistryError`, so callers (and the fallback logic in `fuse_static_fp8_mlps`) can catch
one type; the subclasses let tests and callers tell the failure modes apart.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


# --------------------------------------------------------------------------- config


class FusionConfigError(RegistryError, ValueError):
    """The `fusion_config` (or a kernel spec in it) is malformed."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [message])


# ----------------------------------------------------------------------- resolution


class KernelResolutionError(RegistryError, RuntimeError):
    """A kernel spec could not be resolved to a loadable build, or loading it failed."""

    kind = "resolution"

    def __init__(self, message: str, *, spec: str | None = None):
        super().__init__(message)
        self.spec = spec


class RepoNotFoundError(KernelResolutionError):
    kind = "repo_not_found"


class VersionNotFoundError(KernelResolutionError):
    kind = "version_not_found"

    def __init__(self, message: str, *, spec: str | None = None, available: list[int] | None = None):
        super().__init__(message, spec=spec)
        self.available = list(available or [])


class RevisionNotFoundError(KernelResolutionError):
    kind = "revision_not_found"


class NotInCacheError(KernelResolutionError):
    """Offline mode (HF_HUB_OFFLINE=1) and the kernel is not in the local cache."""

    kind = "not_in_cache"


class UntrustedPublisherError(KernelResolutionError):
    kind = "untrusted_publisher"


class NoBuildVariantError(KernelResolutionError):
    kind = "no_build_variant"


class ArchitectureNotSupportedError(KernelResolutionError):
    kind = "arch_not_supported"


class NetworkUnreachableError(KernelResolutionError):
    kind = "network_unreachable"


class LocalArtifactError(KernelResolutionError):
    """A local build (`path` spec or LOCAL_KERNELS entry) is missing or malformed."""

    kind = "local_artifact"


class KernelImportError(KernelResolutionError):
    """The build was found but importing it failed."""

    kind = "import_failed"


class DuplicateArtifactError(KernelResolutionError):
    """The op namespace of this build is already registered by something we cannot reuse."""

    kind = "duplicate_artifact"


# ----------------------------------------------------------------------- validation


class EndpointValidationError(RegistryError, RuntimeError):
    """A loaded kernel does not satisfy the endpoint contract.

    `problems` lists one line per failed check; `result` is the full
    `ValidationResult` when available.
    """

    kind = "validation"

    def __init__(self, message: str, *, problems: list[str] | None = None, result=None):
        super().__init__(message)
        self.problems = list(problems or [])
        self.result = result


class FunctionMissingError(EndpointValidationError):
    kind = "function_missing"


class SignatureMismatchError(EndpointValidationError):
    kind = "signature_mismatch"


class SchemaMismatchError(EndpointValidationError):
    kind = "schema_mismatch"


class SmokeTestError(EndpointValidationError):
    kind = "smoke_test_failed"


class StaticFP8FusionWarning(UserWarning):
    """Emitted (once per `fuse_static_fp8_mlps` call) when fusion is skipped entirely."""
