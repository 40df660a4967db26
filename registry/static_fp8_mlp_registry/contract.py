"""The v1 endpoint contract (../shared/CONTRACT.md) as data.

One place says what every endpoint is called, which positional arguments it takes in
which order, and what op schema the `static-fp8-mlp` build registers for it. The
kernel package's tests, the registry's endpoint validation and `static-fp8-mlp
validate` all check against this module, so a drift between them is impossible.

The registered ops put the preallocated result first (`Tensor! out`, as the
kernels-community packages do) and return nothing; the Python endpoints allocate
`out` when the caller passes none and return it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("input_quant", "gated_mlp", "dense_gelu_mlp")


@dataclass(frozen=True)
class Endpoint:
    name: str
    family: str
    params: tuple[str, ...]
    """Positional parameters of the Python function, in order (`out` is keyword-only)."""

    @property
    def op_schema(self) -> str:
        """Schema of the registered op, without the namespace and op name."""
        args = ", ".join(["Tensor! out"] + [f"Tensor {p}" for p in self.params])
        return f"({args}) -> ()"


_GATED_PARAMS = (
    "input",
    "gate_up_weight",
    "down_weight",
    "input_scale",
    "gate_up_weight_scale",
    "hidden_scale",
    "down_weight_scale",
)

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "channel_scale_quantize_fp8_static_bf16",
            "input_quant",
            ("input", "channel_scale", "scale"),
        ),
        Endpoint("fp8_swiglu_mlp_bf16", "gated_mlp", _GATED_PARAMS),
        Endpoint("fp8_geglu_mlp_bf16", "gated_mlp", _GATED_PARAMS),
        Endpoint(
            "fp8_gelu_mlp_bf16",
            "dense_gelu_mlp",
            (
                "input",
                "up_weight",
                "up_bias",
                "down_weight",
                "down_bias",
                "input_scale",
                "up_weight_scale",
                "hidden_scale",
                "down_weight_scale",
            ),
        ),
    )
}

ENDPOINT_NAMES: tuple[str, ...] = tuple(ENDPOINTS)


def endpoints_of(family: str) -> list[Endpoint]:
    if family not in FAMILIES:
        raise ValueError(f"unknown endpoint family {family!r}; expected one of {FAMILIES}")
    return [e for e in ENDPOINTS.values() if e.family == family]


_WRITE_ALIAS = re.compile(r"Tensor\([^()]*!\s*(?:->[^()]*)?\)")
_READ_ALIAS = re.compile(r"Tensor\([^()!]*\)")


def normalize_schema(schema: str) -> str:
    """Strip `namespace::name` (and overload) from a full op schema string.

    `_static_fp8_mlp_cuda_abc::fp8_swiglu_mlp_bf16(Tensor! out, ...) -> ()` becomes
    `(Tensor! out, ...) -> ()`, which is what `Endpoint.op_schema` holds.
    """
    schema = " ".join(schema.split())
    # torch prints alias annotations of a registered op as `Tensor(a!)` or, for an
    # anonymous one, `Tensor($0! -> )`; the source form is `Tensor!`.
    schema = _WRITE_ALIAS.sub("Tensor!", schema)
    schema = _READ_ALIAS.sub("Tensor", schema)
    start = schema.find("(")
    if start < 0:
        raise ValueError(f"not an op schema: {schema!r}")
    return schema[start:]


def describe_schema(schema) -> str:
    """`(Tensor! out, Tensor input, ...) -> ()` from a torch FunctionSchema object
    (`op.default._schema`), built from its structure rather than its printed form."""

    def arg(a) -> str:
        mutable = a.alias_info is not None and a.alias_info.is_write
        return f"{a.type}{'!' if mutable else ''} {a.name}"

    returns = [str(r.type) for r in schema.returns]
    ret = returns[0] if len(returns) == 1 else f"({', '.join(returns)})"
    return f"({', '.join(arg(a) for a in schema.arguments)}) -> {ret}"
