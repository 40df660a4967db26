"""The pieces of `kernels` that `get_kernel` is made of, across kernels 0.17.2 to 0.19.x.

The registry locates and validates a build before importing it (loader.py, phase 1),
with the resolvers and validators `get_kernel` itself runs. Those live in private modules
that move between releases: `kernels.<name>` up to 0.18, `kernels._internals.<name>`
from 0.19; and 0.18 renamed the composite metadata validator (`AllValidator` became
`AllMetadataValidator`). This module is the one place that knows;
the test suite runs under 0.19.1 and, by `scripts/kernels_compat.sh`, 0.17.2 and 0.18.3.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Newest layout first.
_PREFIXES = ("kernels._internals.", "kernels.")


def internal(name: str) -> ModuleType:
    """kernels' private module `name` (e.g. "resolver"), wherever this release keeps it."""
    for prefix in _PREFIXES:
        try:
            return importlib.import_module(prefix + name)
        except ModuleNotFoundError as exc:
            if exc.name not in (prefix + name, prefix.rstrip(".")):
                raise  # the module exists but one of its own imports failed
    import kernels

    raise ModuleNotFoundError(
        f"kernels {getattr(kernels, '__version__', '?')} has no module {name!r} (looked for "
        f"{', '.join(p + name for p in _PREFIXES)}); static_fp8_mlp_registry supports kernels "
        "0.17.2 to 0.19.x",
        name=f"kernels.{name}",
    )


class AllOf:
    """Runs metadata validators in turn (kernels' own composite, whatever its name)."""

    def __init__(self, validators):
        self.validators = list(validators)

    def validate_metadata(self, *, metadata, variant: str) -> None:
        for validator in self.validators:
            validator.validate_metadata(metadata=metadata, variant=variant)


def metadata_validator(*, check_arch: bool) -> AllOf:
    """The metadata checks `get_kernel(check_arch=...)` applies: kernels' defaults (Python
    dependencies, minimum kernels version, ...) and, with check_arch, the device's
    architecture."""
    validate = internal("validate")
    validators = list(validate.default_metadata_validators())
    if check_arch:
        validators.append(validate.ArchValidator())
    return AllOf(validators)


def loaded_kernels() -> dict:
    """kernels' own record of the builds it imported: {variant path: LoadedKernel}."""
    return internal("importer")._loaded_kernels
