"""Check a loaded kernel module against the v1 endpoint contract before anything uses it.

Per endpoint (`contract.ENDPOINTS`), with the function name a spec maps it to:

1. the module has the function and it is callable;
2. `inspect.signature` shows the contract's positional parameters, by name and in
   order (more optional positional parameters and keyword-only ones are fine);
3. where the module exposes `ops` with that op, its schema matches the contract
   (`contract.normalize_schema(str(op.default._schema)) == endpoint.op_schema`);
4. optionally (default: on when CUDA is available) a tiny smoke call compared with
   the fp32 reference: input quant byte-exact, MLPs within the contract's relative
   Frobenius error (1e-2), no NaN/inf.

`validate_endpoints` returns a `ValidationResult`; `.raise_if_failed()` raises an
`EndpointValidationError` subclass listing every problem.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import contract
from .errors import (
    EndpointValidationError,
    FunctionMissingError,
    SchemaMismatchError,
    SignatureMismatchError,
    SmokeTestError,
)


@dataclass
class EndpointCheck:
    endpoint: str
    """Contract name."""
    function: str
    """Name looked up in the module (an override, or the contract name)."""
    family: str
    ok: bool = True
    signature: str | None = None
    op_schema: str | None = None
    """The registered op's schema (normalized), when the module exposes the op."""
    smoke: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(code, message) pairs; codes: missing, not_callable, signature, schema, smoke."""
    notes: list[str] = field(default_factory=list)

    def fail(self, code: str, message: str) -> None:
        self.ok = False
        self.problems.append((code, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "function": self.function,
            "family": self.family,
            "ok": self.ok,
            "signature": self.signature,
            "op_schema": self.op_schema,
            "expected_op_schema": contract.ENDPOINTS[self.endpoint].op_schema,
            "smoke": self.smoke,
            "problems": [m for _, m in self.problems],
            "notes": list(self.notes),
        }


@dataclass
class ValidationResult:
    kernel: str
    checks: list[EndpointCheck]
    smoke_ran: bool = False
    smoke_skipped_reason: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.function}: {m}" for c in self.checks for _, m in c.problems]

    def summary(self) -> str:
        if not self.ok:
            return f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        parts = ["functions, signatures and op schemas OK"]
        if self.smoke_ran:
            parts.append("smoke test OK")
        elif self.smoke_skipped_reason:
            parts.append(f"smoke test skipped: {self.smoke_skipped_reason}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "ok": self.ok,
            "summary": self.summary(),
            "smoke_ran": self.smoke_ran,
            "smoke_skipped_reason": self.smoke_skipped_reason,
            "endpoints": [c.to_dict() for c in self.checks],
        }

    def raise_if_failed(self) -> "ValidationResult":
        if self.ok:
            return self
        codes = {code for c in self.checks for code, _ in c.problems}
        cls = EndpointValidationError
        if len(codes) == 1:
            cls = {
                "missing": FunctionMissingError,
                "not_callable": FunctionMissingError,
                "signature": SignatureMismatchError,
                "schema": SchemaMismatchError,
                "smoke": SmokeTestError,
            }.get(next(iter(codes)), EndpointValidationError)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        raise cls(
            f"{self.kernel} does not satisfy the static-fp8-mlp v1 endpoint contract:\n{lines}\n"
            "Use a build of static-fp8-mlp v1 (or a compatible package), or map the entries to the right "
            "functions with the fusion_config overrides (func, swiglu_func, geglu_func, gelu_func).",
            problems=self.problems,
            result=self,
        )


_CACHE: dict[tuple, ValidationResult] = {}
_LOCK = threading.Lock()


def validate_endpoints(
    kernel: Any,
    functions: Mapping[str, str] | None = None,
    *,
    smoke: bool | None = None,
    device: Any = None,
    label: str | None = None,
) -> ValidationResult:
    """Validate `kernel` (a `ResolvedKernel` or a module).

    `functions` maps contract endpoint names to function names (default: all four,
    under their contract names). `smoke=None` runs the smoke test when CUDA is
    available; `device` picks where it runs (default: the current CUDA device).
    Results are cached per (module, functions, smoke, device).
    """
    module: ModuleType = getattr(kernel, "module", kernel)
    if label is None:
        label = kernel.short() if hasattr(kernel, "short") else getattr(module, "__name__", repr(module))
    functions = dict(functions) if functions is not None else {n: n for n in contract.ENDPOINT_NAMES}
    for endpoint in functions:
        if endpoint not in contract.ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {contract.ENDPOINT_NAMES}")

    smoke_device, skip_reason = _smoke_device(smoke, device)
    key = (id(module), tuple(sorted(functions.items())), str(smoke_device))
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.kernel == label:
            return cached

    checks = []
    for endpoint, fname in functions.items():
        checks.append(_check_static(module, contract.ENDPOINTS[endpoint], fname))
    result = ValidationResult(kernel=label, checks=checks, smoke_skipped_reason=skip_reason)
    if smoke_device is not None and result.ok:
        for check in checks:
            _smoke(module, check, smoke_device)
        result.smoke_ran = True
    with _LOCK:
        _CACHE[key] = result
    return result


def _smoke_device(smoke: bool | None, device: Any):
    import torch

    if smoke is False:
        return None, "disabled"
    if device is not None:
        return torch.device(device), None
    if not torch.cuda.is_available():
        if smoke:
            return None, "requested, but no CUDA device is available"
        return None, "no CUDA device"
    return torch.device("cuda", torch.cuda.current_device()), None


# --------------------------------------------------------------------- static checks


def _check_static(module: ModuleType, endpoint: contract.Endpoint, fname: str) -> EndpointCheck:
    check = EndpointCheck(endpoint=endpoint.name, function=fname, family=endpoint.family)
    fn = getattr(module, fname, None)
    if fn is None:
        public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None)))
        near = [n for n in public if "fp8" in n or "quant" in n or "mlp" in n] or public
        shown = ", ".join(near[:12]) + (" ..." if len(near) > 12 else "")
        check.fail(
            "missing",
            f"the kernel module has no function {fname!r} (contract endpoint {endpoint.name}); "
            f"it exposes: {shown or 'nothing callable'}",
        )
        return check
    if not callable(fn):
        check.fail("not_callable", f"{fname!r} is a {type(fn).__name__}, not a callable")
        return check

    _check_signature(fn, endpoint, check)
    _check_op_schema(module, endpoint, fname, check)
    return check


def _check_signature(fn: Any, endpoint: contract.Endpoint, check: EndpointCheck) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        check.notes.append("signature not introspectable; relying on the op schema and smoke test")
        return
    check.signature = f"{check.function}{sig}"
    params = list(sig.parameters.values())
    P = inspect.Parameter
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind is P.VAR_POSITIONAL for p in params)
    expected = list(endpoint.params)
    names = [p.name for p in positional]
    want = f"({', '.join(expected)})"
    if len(positional) < len(expected):
        if has_varargs and names == expected[: len(names)]:
            check.notes.append("takes *args; the remaining positional parameters cannot be checked by name")
        else:
            check.fail(
                "signature",
                f"takes {len(positional)} positional parameter{'s' if len(positional) != 1 else ''} "
                f"({', '.join(names)}), the contract calls it with {len(expected)}: {want}",
            )
            return
    elif names[: len(expected)] != expected:
        check.fail(
            "signature",
            f"positional parameters are ({', '.join(names[:len(expected)])}), the contract needs {want} in this order",
        )
        return
    extra = [p.name for p in positional[len(expected):] if p.default is P.empty]
    if extra:
        check.fail("signature", f"has extra required positional parameter(s) {', '.join(extra)} beyond {want}")
        return
    if "out" not in sig.parameters and not any(p.kind is P.VAR_KEYWORD for p in params):
        check.notes.append("no `out=` keyword (the contract's optional preallocated result); not used by fusion")


def _find_op(ops: Any, names: list[str]):
    for name in names:
        try:
            op = getattr(ops, name)
        except (AttributeError, RuntimeError):
            continue
        if op is not None:
            return name, op
    return None, None


def _check_op_schema(module: ModuleType, endpoint: contract.Endpoint, fname: str, check: EndpointCheck) -> None:
    ops = getattr(module, "ops", None)
    if ops is None:
        check.notes.append("module exposes no `ops`; op schema not checked")
        return
    op_name, op = _find_op(ops, list(dict.fromkeys([fname, endpoint.name])))
    if op is None:
        check.notes.append(f"`ops` has no op {fname!r}; op schema not checked")
        return
    overloads = []
    try:
        overloads = [getattr(op, o) for o in op.overloads()]
    except Exception:  # noqa: BLE001
        default = getattr(op, "default", None)
        overloads = [default] if default is not None else []
    if not overloads:
        check.notes.append(f"op {op_name!r} has no overloads to check")
        return
    schemas = []
    for ov in overloads:
        try:
            schemas.append(contract.normalize_schema(str(ov._schema)))
        except Exception as exc:  # noqa: BLE001
            check.notes.append(f"op {op_name!r}: schema unreadable ({exc})")
    if not schemas:
        return
    check.op_schema = schemas[0]
    if endpoint.op_schema in schemas:
        check.op_schema = endpoint.op_schema
        return
    check.fail(
        "schema",
        f"op {op_name!r} has schema {schemas[0]}; the contract expects {endpoint.op_schema}"
        + _schema_diff(schemas[0], endpoint.op_schema),
    )


def _split_args(schema: str) -> list[str]:
    inner = schema[schema.find("(") + 1 : schema.rfind(")", 0, schema.find("->") if "->" in schema else None)]
    return [a.strip() for a in inner.split(",") if a.strip()]


def _schema_diff(actual: str, expected: str) -> str:
    a, e = _split_args(actual), _split_args(expected)
    if len(a) != len(e):
        return f" ({len(a)} arguments instead of {len(e)})"
    diffs = [f"argument {i}: {x!r} instead of {y!r}" for i, (x, y) in enumerate(zip(a, e)) if x != y]
    if diffs:
        return " (" + "; ".join(diffs[:4]) + ")"
    return " (return type differs)"


# ------------------------------------------------------------------------- smoke test


def _smoke(module: ModuleType, check: EndpointCheck, device) -> None:
    import torch

    from . import reference as ref

    fn = getattr(module, check.function)
    gen = torch.Generator(device="cpu").manual_seed(1234)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device)

    M, K, H, N = 5, 64, 32, 48
    try:
        if check.endpoint == "channel_scale_quantize_fp8_static_bf16":
            x = randn(M, K, scale=3.0)
            x[0, :6] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-30])
            x = x.bfloat16()
            cs = (torch.rand(K, generator=gen) + 0.5).bfloat16().to(device)
            scale = torch.tensor([0.0173], device=device)
            out = fn(x, cs, scale)
            expected = ref.input_quant(x, cs, scale)
            _expect(out, expected.shape, torch.float8_e4m3fn, device)
            if not torch.equal(out.view(torch.uint8), expected.view(torch.uint8)):
                bad = int((out.view(torch.uint8) != expected.view(torch.uint8)).sum())
                raise AssertionError(f"{bad} of {out.numel()} bytes differ from the reference (must be byte-exact)")
            check.smoke = "byte-exact"
            return

        input_scale = torch.tensor([0.02], device=device)
        xq = ref.q_fp8(randn(M, K, scale=8.0))
        if check.family == "gated_mlp":
            act = "silu" if check.endpoint == "fp8_swiglu_mlp_bf16" else "gelu_tanh"
            w_gu = ref.q_fp8(randn(2 * H, K, scale=64.0))
            w_d = ref.q_fp8(randn(N, H, scale=64.0))
            s_gu = (torch.rand(2 * H, generator=gen) * 0.002 + 0.001).to(device)  # per-row, as the contract allows
            s_h = torch.tensor([0.01], device=device)
            s_d = torch.tensor([0.0015], device=device)
            out = fn(xq, w_gu, w_d, input_scale, s_gu, s_h, s_d)
            expected = ref.gated_mlp(xq, w_gu, w_d, input_scale, s_gu, s_h, s_d, act)
        else:
            w_up = ref.q_fp8(randn(H, K, scale=64.0))
            w_d = ref.q_fp8(randn(N, H, scale=64.0))
            b_up = randn(H, scale=0.1).bfloat16()
            b_d = randn(N, scale=0.1).bfloat16()
            s_up = torch.tensor([0.002], device=device)
            s_h = torch.tensor([0.01], device=device)
            s_d = (torch.rand(N, generator=gen) * 0.002 + 0.001).to(device)
            out = fn(xq, w_up, b_up, w_d, b_d, input_scale, s_up, s_h, s_d)
            expected = ref.dense_gelu_mlp(xq, w_up, b_up, w_d, b_d, input_scale, s_up, s_h, s_d)
        _expect(out, expected.shape, torch.bfloat16, device)
        err = ref.rel_frobenius_error(out, expected)
        if not (err <= ref.CONTRACT_REL_TOL):
            raise AssertionError(
                f"relative Frobenius error {err:.3g} against the reference exceeds {ref.CONTRACT_REL_TOL:g}"
                if math.isfinite(err)
                else "output has NaN/inf where the reference is finite"
            )
        check.smoke = f"rel. error {err:.2e}"
    except Exception as exc:  # noqa: BLE001
        check.smoke = "failed"
        check.fail("smoke", f"smoke call on {device} failed: {type(exc).__name__}: {exc}")


def _expect(out: Any, shape, dtype, device) -> None:
    import torch

    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"returned {type(out).__name__}, expected a tensor")
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise AssertionError(f"returned {out.dtype} {tuple(out.shape)}, expected {dtype} {tuple(shape)}")
    if out.device.type != torch.device(device).type:
        raise AssertionError(f"returned a tensor on {out.device}, expected {device}")
