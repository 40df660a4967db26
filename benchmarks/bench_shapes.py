"""Shapes, M grid and GEMM-path combinations of the benchmark (standard library only).

A shape is a named MLP problem: `swiglu`/`geglu` (gated, gate_up [2H, K], down [N, H])
or `gelu` (dense, up [H, K] + bias, down [N, H] + bias). Sizes that are not in the
table can be given as `KIND:KxHxN`, e.g. `swiglu:1024x4096x1024`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

KINDS = ("swiglu", "geglu", "gelu")
ENDPOINTS = {"swiglu": "fp8_swiglu_mlp_bf16", "geglu": "fp8_geglu_mlp_bf16",
             "gelu": "fp8_gelu_mlp_bf16"}
ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu_tanh", "gelu": "gelu_tanh"}


@dataclass(frozen=True)
class Shape:
    name: str
    kind: str  # one of KINDS
    k: int
    h: int
    n: int

    @property
    def gated(self) -> bool:
        return self.kind != "gelu"

    @property
    def activation(self) -> str:
        return ACTIVATIONS[self.kind]

    @property
    def endpoint(self) -> str:
        return ENDPOINTS[self.kind]

    @property
    def gemm1_rows(self) -> int:
        return 2 * self.h if self.gated else self.h

    def weight_bytes(self) -> int:
        """FP8 weight bytes (1 byte per element); biases and scales are negligible."""
        return self.gemm1_rows * self.k + self.n * self.h

    def flops(self, m: int) -> int:
        return 2 * m * self.k * self.gemm1_rows + 2 * m * self.h * self.n

    def label(self) -> str:
        return f"{self.name} ({self.k}, {self.h}, {self.n})"

    def as_dict(self) -> dict:
        return {"shape": self.name, "kind": self.kind, "K": self.k, "H": self.h, "N": self.n}


DEFAULT_SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("gemma2b-geglu", "geglu", 2048, 16384, 2048),
        Shape("llama8b-swiglu", "swiglu", 4096, 14336, 4096),
        Shape("siglip-gelu", "gelu", 1152, 4304, 1152),
        Shape("siglip2g-gelu", "gelu", 1536, 6144, 1536),
    )
}
DEFAULT_M = (1, 16, 50, 128, 512, 2048, 8192)
QUICK_M = (16, 512)

GEMM_PATHS = ("auto", "small_m", "large_m", "tensor_core_tma", "weight_stream")
# accepted in --path-combos, not in the default product
EXTRA_GEMM_PATHS = ("tensor_core_split_k", "tensor_core_tall_128", "tensor_core_tall_192",
                    "warp_stream", "tensor_core_stream", "tensor_core_tall_64",
                    "tensor_core_split_k_cluster")
# auto/auto plus every forced pair
DEFAULT_PATH_COMBOS: tuple[tuple[str, str], ...] = (("auto", "auto"),) + tuple(
    itertools.product(GEMM_PATHS[1:], repeat=2)
)

_CUSTOM = re.compile(r"^(swiglu|geglu|gelu):(\d+)x(\d+)x(\d+)$")


def parse_shapes(text: str | None) -> list[Shape]:
    """`None`/"all" -> every default shape; else comma-separated names or KIND:KxHxN."""
    if text is None or text.strip() in ("", "all"):
        return list(DEFAULT_SHAPES.values())
    shapes: list[Shape] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item in DEFAULT_SHAPES:
            shape = DEFAULT_SHAPES[item]
        else:
            m = _CUSTOM.match(item)
            if not m:
                raise ValueError(
                    f"unknown shape {item!r}: use one of {', '.join(DEFAULT_SHAPES)} "
                    "or KIND:KxHxN with KIND in swiglu, geglu, gelu")
            kind, k, h, n = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
            for dim, v in (("K", k), ("H", h), ("N", n)):
                if v <= 0 or v % 16:
                    raise ValueError(f"shape {item!r}: {dim}={v} must be a positive multiple of 16")
            shape = Shape(f"{kind}-{k}x{h}x{n}", kind, k, h, n)
        if shape not in shapes:
            shapes.append(shape)
    if not shapes:
        raise ValueError("--shapes selected no shape")
    return shapes


def parse_ms(text: str | None, default=DEFAULT_M) -> list[int]:
    if text is None or text.strip() == "":
        return list(default)
    ms: list[int] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            m = int(item)
        except ValueError:
            raise ValueError(f"--m: {item!r} is not an integer") from None
        if m <= 0:
            raise ValueError(f"--m: {m} must be positive")
        if m not in ms:
            ms.append(m)
    if not ms:
        raise ValueError("--m selected no M")
    return ms


def parse_path_combos(text: str | None) -> list[tuple[str, str]]:
    """"P1/P2,P1/P2,..." (or one name meaning P/P); None -> DEFAULT_PATH_COMBOS."""
    if text is None or text.strip() == "":
        return list(DEFAULT_PATH_COMBOS)
    combos: list[tuple[str, str]] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        parts = item.split("/")
        if len(parts) == 1:
            parts = parts * 2
        known = GEMM_PATHS + EXTRA_GEMM_PATHS
        if len(parts) != 2 or any(p not in known for p in parts):
            raise ValueError(f"--path-combos: {item!r} must be P1/P2 with P in {', '.join(known)}")
        combo = (parts[0], parts[1])
        if combo not in combos:
            combos.append(combo)
    return combos


def combo_name(combo) -> str:
    return f"{combo[0]}/{combo[1]}"
