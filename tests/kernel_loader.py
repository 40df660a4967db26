"""Load a built variant of the kernel package for tests, with or without `kernels`.

The GPU test machine has no `kernels` library, so tests import the variant directory
directly (it is a plain package whose `__init__.py` imports its native module
relatively), under a module name unique to the variant.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from pathlib import Path

import torch


def local_variant_name() -> str:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    cuda = torch.version.cuda or "0.0"
    cmaj, cmin = cuda.split(".")[:2]
    return f"torch{major}{minor}-cxx11-cu{cmaj}{cmin}-{platform.machine()}-linux"


def find_variant(path: Path) -> Path:
    """`path` may be a variant dir, a `build/` dir, or a project dir with `build/`."""
    path = Path(path)
    if (path / "metadata.json").is_file():
        return path
    for candidate in (path / local_variant_name(), path / "build" / local_variant_name()):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise FileNotFoundError(f"no variant {local_variant_name()} under {path}")


def load_kernel_module(path: Path):
    variant = find_variant(path)
    meta = json.loads((variant / "metadata.json").read_text())
    name = f"static_fp8_mlp_under_test_{abs(hash(str(variant.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, variant / "__init__.py", submodule_search_locations=[str(variant)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module.__variant_dir__ = variant
    module.__metadata__ = meta
    return module
