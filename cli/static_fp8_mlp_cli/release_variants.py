"""Variant names, the required variant set, and what `build.toml` asks of each variant.

The required set is kernel-builder's: `nix-builder/build-variants.json` of the pinned
kernel-builder commit (flake.nix) lists, for `x86_64-linux` / `cuda`, torch 2.12 and
2.13 x CUDA 12.6, 13.0 and 13.2. `nix build .#bundle` builds exactly these;
`static-fp8-mlp validate` fails when one of them is missing unless `--variants`
narrows the list.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# kernel-builder 8ac69fc5 nix-builder/build-variants.json, "x86_64-linux" -> "cuda".
REQUIRED_VARIANTS: tuple[str, ...] = (
    "torch212-cxx11-cu126-x86_64-linux",
    "torch212-cxx11-cu130-x86_64-linux",
    "torch212-cxx11-cu132-x86_64-linux",
    "torch213-cxx11-cu126-x86_64-linux",
    "torch213-cxx11-cu130-x86_64-linux",
    "torch213-cxx11-cu132-x86_64-linux",
)

_VARIANT_RE = re.compile(
    r"^torch(?P<tmaj>\d)(?P<tmin>\d+)-(?P<abi>cxx11|cxx98)-cu(?P<cmaj>\d\d?)(?P<cmin>\d)"
    r"-(?P<arch>x86_64|aarch64)-(?P<os>linux)$"
)


@dataclass(frozen=True)
class VariantName:
    name: str
    torch: tuple[int, int]
    cxx_abi: str
    cuda: tuple[int, int]
    cpu: str
    os: str

    @property
    def cuda_str(self) -> str:
        return f"{self.cuda[0]}.{self.cuda[1]}"


def parse_variant(name: str) -> VariantName | None:
    """Parse a CUDA torch variant name (`torch211-cxx11-cu130-x86_64-linux`), else None.

    CUDA versions are written `cu<major><one-digit minor>` as kernel-builder does
    (`cu126` = 12.6, `cu130` = 13.0).
    """
    m = _VARIANT_RE.match(name)
    if not m:
        return None
    return VariantName(
        name=name,
        torch=(int(m["tmaj"]), int(m["tmin"])),
        cxx_abi=m["abi"],
        cuda=(int(m["cmaj"]), int(m["cmin"])),
        cpu=m["arch"],
        os=m["os"],
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(text).split("."))


@dataclass(frozen=True)
class BuildSpec:
    """The parts of `build.toml` that a published variant must agree with."""

    path: Path
    name: str
    version: int
    license: str | None
    repo_id: str | None
    kernels: dict[str, dict]

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")

    def expected_archs(self, cuda: tuple[int, int]) -> list[str]:
        """Capabilities the variant for CUDA `cuda` must advertise.

        The union of `cuda-capabilities` over the CUDA `[kernel.*]` sections that apply
        to that CUDA version: a section whose `cuda-minver` is above it (or
        `cuda-maxver` below it) is skipped, exactly as kernel-builder skips it.
        """
        archs: set[str] = set()
        for section in self.kernels.values():
            if section.get("backend", "cuda") != "cuda":
                continue
            minver = section.get("cuda-minver")
            maxver = section.get("cuda-maxver")
            if minver is not None and _version_tuple(minver) > cuda:
                continue
            if maxver is not None and _version_tuple(maxver) < cuda:
                continue
            archs.update(section.get("cuda-capabilities", []))
        return sorted(archs)


def read_build_toml(path: Path) -> BuildSpec:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    general = doc.get("general", {})
    return BuildSpec(
        path=path,
        name=general["name"],
        version=int(general["version"]),
        license=general.get("license"),
        repo_id=general.get("hub", {}).get("repo-id"),
        kernels=dict(doc.get("kernel", {})),
    )


def find_build_toml(build_dir: Path) -> Path | None:
    """`build.toml` next to the build output: in it, its parent, or the current dir."""
    for candidate in (build_dir / "build.toml", build_dir.parent / "build.toml", Path("build.toml")):
        if candidate.is_file():
            return candidate
    return None
