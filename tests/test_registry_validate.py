"""Endpoint validation on stand-in packages: missing functions, wrong signatures, wrong
op schemas, overrides, and the smoke test (run on CPU against pure-PyTorch stand-ins)."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("kernels")
from registry_helpers import contract_schema, fresh_registry, make_standin, real_build_dir  # noqa: F401

from static_fp8_mlp_registry import contract
from static_fp8_mlp_registry.errors import (
    EndpointValidationError,
    FunctionMissingError,
    SchemaMismatchError,
    SignatureMismatchError,
    SmokeTestError,
)
from static_fp8_mlp_registry.loader import resolve_kernel
from static_fp8_mlp_registry.validate import validate_endpoints

pytestmark = pytest.mark.usefixtures("fresh_registry")

ALL = {n: n for n in contract.ENDPOINT_NAMES}


def load(tmp_path, **kw):
    return resolve_kernel({"path": str(make_standin(tmp_path / "k", **kw))})


def test_good_standin_passes_with_contract_schemas(tmp_path):
    schemas = {n: contract_schema(n) for n in contract.ENDPOINT_NAMES}
    rk = load(tmp_path, op_schemas=schemas)
    result = validate_endpoints(rk, ALL, smoke=False)
    assert result.ok, result.problems
    assert [c.op_schema for c in result.checks] == [schemas[n] for n in contract.ENDPOINT_NAMES]
    assert result.checks[1].signature.startswith("fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight,")
    assert result.raise_if_failed() is result
    assert "smoke test skipped: disabled" in result.summary()


def test_missing_function(tmp_path):
    rk = load(tmp_path, omit=("fp8_geglu_mlp_bf16",))
    result = validate_endpoints(rk, ALL, smoke=False)
    assert not result.ok
    with pytest.raises(FunctionMissingError) as info:
        result.raise_if_failed()
    msg = str(info.value)
    assert "no function 'fp8_geglu_mlp_bf16'" in msg
    assert "it exposes: channel_scale_quantize_fp8_static_bf16, fp8_gelu_mlp_bf16, fp8_swiglu_mlp_bf16" in msg
    assert "overrides" in msg  # says what to do


def test_not_callable(tmp_path):
    rk = load(tmp_path, omit=("fp8_gelu_mlp_bf16",), extra="fp8_gelu_mlp_bf16 = 42")
    with pytest.raises(FunctionMissingError, match="is a int, not a callable"):
        validate_endpoints(rk, ALL, smoke=False).raise_if_failed()


@pytest.mark.parametrize(
    "src,needle",
    [
        ("def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale):\n    pass\n",
         "takes 6 positional parameters"),
        ("def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, hidden_scale, gate_up_weight_scale, down_weight_scale):\n    pass\n",
         "the contract needs (input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale) in this order"),
        ("def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, activation):\n    pass\n",
         "extra required positional parameter(s) activation"),
        ("def fp8_swiglu_mlp_bf16(*, input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale):\n    pass\n",
         "takes 0 positional parameters"),
    ],
)
def test_wrong_signature(tmp_path, src, needle):
    rk = load(tmp_path, replace={"fp8_swiglu_mlp_bf16": src})
    with pytest.raises(SignatureMismatchError) as info:
        validate_endpoints(rk, ALL, smoke=False).raise_if_failed()
    assert needle in str(info.value)
    assert "fp8_swiglu_mlp_bf16" in str(info.value)


def test_lenient_signature_forms(tmp_path):
    src = (
        "def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, extra=None):\n"
        "    pass\n"
        "def fp8_geglu_mlp_bf16(input, gate_up_weight, *rest, **kw):\n"
        "    pass\n"
        "def fp8_gelu_mlp_bf16(input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale, hidden_scale, down_weight_scale):\n"
        "    pass\n"
    )
    rk = load(tmp_path, replace={"fp8_swiglu_mlp_bf16": src}, omit=("fp8_geglu_mlp_bf16", "fp8_gelu_mlp_bf16"))
    result = validate_endpoints(rk, ALL, smoke=False)
    assert result.ok, result.problems
    notes = {c.endpoint: c.notes for c in result.checks}
    assert any("*args" in n for n in notes["fp8_geglu_mlp_bf16"])
    assert any("no `out=`" in n for n in notes["fp8_gelu_mlp_bf16"])


def test_wrong_op_schema(tmp_path):
    good = {n: contract_schema(n) for n in contract.ENDPOINT_NAMES}
    bad = dict(good)
    # scales swapped in the registered op
    bad["fp8_swiglu_mlp_bf16"] = (
        "(Tensor! out, Tensor input, Tensor gate_up_weight, Tensor down_weight, Tensor input_scale, "
        "Tensor hidden_scale, Tensor gate_up_weight_scale, Tensor down_weight_scale) -> ()"
    )
    bad["fp8_gelu_mlp_bf16"] = "(Tensor input, Tensor up_weight) -> Tensor"
    rk = load(tmp_path, op_schemas=bad)
    result = validate_endpoints(rk, ALL, smoke=False)
    with pytest.raises(SchemaMismatchError) as info:
        result.raise_if_failed()
    msg = str(info.value)
    assert "argument 5: 'Tensor hidden_scale' instead of 'Tensor gate_up_weight_scale'" in msg
    assert "(2 arguments instead of 10)" in msg
    assert contract_schema("fp8_swiglu_mlp_bf16") in msg
    assert {c.endpoint for c in result.checks if not c.ok} == {"fp8_swiglu_mlp_bf16", "fp8_gelu_mlp_bf16"}


def test_mixed_problems_raise_the_base_error(tmp_path):
    rk = load(tmp_path, omit=("fp8_geglu_mlp_bf16",), op_schemas={"fp8_swiglu_mlp_bf16": "(Tensor x) -> Tensor"})
    with pytest.raises(EndpointValidationError) as info:
        validate_endpoints(rk, ALL, smoke=False).raise_if_failed()
    assert type(info.value) is EndpointValidationError
    assert len(info.value.problems) == 2


def test_function_name_overrides(tmp_path):
    src = (
        "def my_quant(input, channel_scale, scale, *, out=None):\n"
        "    return _ref.input_quant(input, channel_scale, scale)\n"
    )
    rk = load(tmp_path, replace={"my_quant": src}, omit=("channel_scale_quantize_fp8_static_bf16",))
    result = validate_endpoints(rk, {"channel_scale_quantize_fp8_static_bf16": "my_quant"}, smoke=True, device="cpu")
    assert result.ok and result.checks[0].function == "my_quant"
    assert result.checks[0].smoke == "byte-exact"
    with pytest.raises(FunctionMissingError):
        validate_endpoints(rk, {"channel_scale_quantize_fp8_static_bf16": "channel_scale_quantize_fp8_static_bf16"}, smoke=False).raise_if_failed()


def test_smoke_passes_on_reference_standin(tmp_path):
    rk = load(tmp_path)
    result = validate_endpoints(rk, ALL, smoke=True, device="cpu")
    assert result.ok, result.problems
    assert result.smoke_ran
    smoke = {c.endpoint: c.smoke for c in result.checks}
    assert smoke["channel_scale_quantize_fp8_static_bf16"] == "byte-exact"
    assert all(s.startswith("rel. error") for n, s in smoke.items() if n != "channel_scale_quantize_fp8_static_bf16")


@pytest.mark.parametrize(
    "endpoint,src,needle",
    [
        (
            "fp8_swiglu_mlp_bf16",
            "def fp8_swiglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, *, out=None):\n"
            "    return _ref.gated_mlp(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, 'gelu_tanh')\n",
            "relative Frobenius error",
        ),
        (
            "channel_scale_quantize_fp8_static_bf16",
            # no saturation: out-of-range values become NaN, as a plain cast does on torch
            # 2.11 (torch 2.13's plain cast saturates, so the bug is spelled out)
            "def channel_scale_quantize_fp8_static_bf16(input, channel_scale, scale, *, out=None):\n"
            "    v = input.float() * channel_scale.float() / scale\n"
            "    return torch.where(v.abs() > 448, float('nan'), v).to(torch.float8_e4m3fn)\n",
            "bytes differ from the reference",
        ),
        (
            "fp8_gelu_mlp_bf16",
            "def fp8_gelu_mlp_bf16(input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale, hidden_scale, down_weight_scale, *, out=None):\n"
            "    raise RuntimeError('boom')\n",
            "RuntimeError: boom",
        ),
        (
            "fp8_geglu_mlp_bf16",
            "def fp8_geglu_mlp_bf16(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, *, out=None):\n"
            "    return _ref.gated_mlp(input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale, hidden_scale, down_weight_scale, 'gelu_tanh').float()\n",
            "expected torch.bfloat16",
        ),
    ],
)
def test_smoke_catches_wrong_results(tmp_path, endpoint, src, needle):
    rk = load(tmp_path, replace={endpoint: src})
    result = validate_endpoints(rk, ALL, smoke=True, device="cpu")
    with pytest.raises(SmokeTestError) as info:
        result.raise_if_failed()
    assert needle in str(info.value)
    assert [c.endpoint for c in result.checks if not c.ok] == [endpoint]


def test_smoke_default_is_skipped_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    result = validate_endpoints(load(tmp_path), ALL)
    assert not result.smoke_ran and result.smoke_skipped_reason == "no CUDA device"


def test_real_build_passes_static_validation(request):
    build = real_build_dir(request)
    rk = resolve_kernel({"path": str(build)})
    result = validate_endpoints(rk, ALL, smoke=False)
    assert result.ok, result.problems
    for c in result.checks:
        assert c.op_schema == contract.ENDPOINTS[c.endpoint].op_schema
