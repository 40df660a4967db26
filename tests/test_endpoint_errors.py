"""Bad arguments raise errors that name the argument and the expectation, on any
device, through the real built artifact (CPU: no GPU needed). Also `__all__`."""

from __future__ import annotations

import inspect

import pytest
import torch

from static_fp8_mlp_registry import contract

FP8 = torch.float8_e4m3fn


@pytest.fixture(scope="module")
def kernel(kernel_module):
    return kernel_module


@pytest.fixture(params=["checks_first", "op_first"])
def sfm(kernel, request, monkeypatch):
    """The endpoints, with their checks run up front (as on any device but CUDA) or, as
    for eager CUDA calls, only after the op refused (here the CPU tensors make the real
    op refuse): every error must read the same either way."""
    if request.param == "op_first":
        monkeypatch.setattr(kernel, "_checks_deferred", lambda input, out: out is None and isinstance(input, torch.Tensor))
    return kernel


def gated_args(k=32, h=64, n=16, m=4):
    return [
        torch.zeros(m, k, dtype=torch.uint8).view(FP8),      # input
        torch.ones(2 * h, k, dtype=torch.uint8).view(FP8),    # gate_up_weight
        torch.ones(n, h, dtype=torch.uint8).view(FP8),        # down_weight
        torch.tensor(1.0),                                    # input_scale
        torch.tensor(1.0),                                    # gate_up_weight_scale
        torch.tensor(1.0),                                    # hidden_scale
        torch.tensor(1.0),                                    # down_weight_scale
    ]


def dense_args(k=32, h=64, n=16, m=4):
    return [
        torch.ones(m, k, dtype=torch.uint8).view(FP8),
        torch.ones(h, k, dtype=torch.uint8).view(FP8),
        torch.zeros(h, dtype=torch.bfloat16),
        torch.ones(n, h, dtype=torch.uint8).view(FP8),
        torch.zeros(n, dtype=torch.bfloat16),
        torch.tensor(1.0),
        torch.tensor(1.0),
        torch.tensor(1.0),
        torch.tensor(1.0),
    ]


def test_all_exports_the_contract_endpoints_with_their_signatures(sfm):
    for name, endpoint in contract.ENDPOINTS.items():
        assert name in sfm.__all__
        params = inspect.signature(getattr(sfm, name)).parameters
        positional = [p.name for p in params.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert tuple(positional) == endpoint.params
        assert params["out"].kind is inspect.Parameter.KEYWORD_ONLY


GATED_ERRORS = (
        (0, torch.zeros(4, 32, dtype=torch.bfloat16), r"`input` must be of dtype torch.float8_e4m3fn"),
        (1, torch.ones(63, 32, dtype=torch.uint8).view(FP8), r"`gate_up_weight` must be of shape \[2H, K\]"),
        (1, torch.ones(128, 16, dtype=torch.uint8).view(FP8), r"`gate_up_weight` must be of shape \[2H, K\]"),
        (2, torch.ones(16, 32, dtype=torch.uint8).view(FP8), r"`down_weight` must be of shape \[N, H\]"),
        (2, torch.ones(64, 16, dtype=torch.uint8).view(FP8).t(), r"`down_weight` must be contiguous"),
        (3, torch.ones(2), r"`input_scale` must be a one-element fp32 tensor"),
        (3, torch.tensor(1.0, dtype=torch.float64), r"`input_scale` must be of dtype torch.float32"),
        (4, torch.ones(5), r"`gate_up_weight_scale` must be one element or shape \[128\]"),
        (5, torch.ones(1, 1), r"`hidden_scale` must be a one-element fp32 tensor"),
        (6, torch.ones(15), r"`down_weight_scale` must be one element or shape \[16\]"),
        (6, "1.0", r"`down_weight_scale` must be a torch.Tensor"),
)


@pytest.mark.parametrize("index, bad, message", GATED_ERRORS)
def test_gated_argument_errors(sfm, index, bad, message):
    args = gated_args()
    args[index] = bad
    for fn in (sfm.fp8_swiglu_mlp_bf16, sfm.fp8_geglu_mlp_bf16):
        with pytest.raises(ValueError, match=message):
            fn(*args)


def test_shape_alignment_errors_name_the_dimension(sfm):
    with pytest.raises(ValueError, match=r"K \(input.shape\[-1\]\) must be a multiple of 16"):
        sfm.fp8_swiglu_mlp_bf16(*gated_args(k=24))
    with pytest.raises(ValueError, match=r"H \(gate_up_weight.shape\[0\] // 2\) must be a multiple of 16"):
        sfm.fp8_swiglu_mlp_bf16(*gated_args(h=40))
    with pytest.raises(ValueError, match=r"N \(down_weight.shape\[0\]\) must be a multiple of 16"):
        sfm.fp8_gelu_mlp_bf16(*dense_args(n=20))


DENSE_ERRORS = (
        (2, torch.zeros(63, dtype=torch.bfloat16), r"`up_bias` must be of shape \[H\] = \[64\]"),
        (2, torch.zeros(64), r"`up_bias` must be of dtype torch.bfloat16"),
        (4, torch.zeros(15, dtype=torch.bfloat16), r"`down_bias` must be of shape \[N\] = \[16\]"),
        (6, torch.ones(3), r"`up_weight_scale` must be one element or shape \[64\]"),
)


@pytest.mark.parametrize("index, bad, message", DENSE_ERRORS)
def test_dense_argument_errors(sfm, index, bad, message):
    args = dense_args()
    args[index] = bad
    with pytest.raises(ValueError, match=message):
        sfm.fp8_gelu_mlp_bf16(*args)


def test_out_errors(sfm):
    with pytest.raises(ValueError, match=r"`out` must be of shape \[4, 16\]"):
        sfm.fp8_gelu_mlp_bf16(*dense_args(), out=torch.empty(4, 15, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"`out` must be of dtype torch.bfloat16"):
        sfm.fp8_gelu_mlp_bf16(*dense_args(), out=torch.empty(4, 16))
    with pytest.raises(ValueError, match=r"`out` must be of dtype torch.float8_e4m3fn"):
        sfm.channel_scale_quantize_fp8_static_bf16(
            torch.zeros(4, 16, dtype=torch.bfloat16), torch.ones(16, dtype=torch.bfloat16),
            torch.tensor(1.0), out=torch.empty(4, 16, dtype=torch.bfloat16))


def test_input_quant_argument_errors(sfm):
    x = torch.zeros(4, 16, dtype=torch.bfloat16)
    cs = torch.ones(16, dtype=torch.bfloat16)
    s = torch.tensor(1.0)
    with pytest.raises(ValueError, match=r"`input` must be of dtype torch.bfloat16"):
        sfm.channel_scale_quantize_fp8_static_bf16(x.float(), cs, s)
    with pytest.raises(ValueError, match=r"`channel_scale` must be of shape \[K\] = \[16\]"):
        sfm.channel_scale_quantize_fp8_static_bf16(x, cs[:8], s)
    with pytest.raises(ValueError, match=r"`scale` must be a one-element fp32 tensor"):
        sfm.channel_scale_quantize_fp8_static_bf16(x, cs, torch.ones(2))


def test_valid_arguments_on_cpu_fail_only_for_the_device(sfm):
    """Everything else correct: the one error left is that the kernels run on CUDA."""
    with pytest.raises(ValueError, match=r"`input` must be a CUDA tensor, got device cpu"):
        sfm.fp8_swiglu_mlp_bf16(*gated_args())
    with pytest.raises(ValueError, match=r"`input` must be a CUDA tensor, got device cpu"):
        sfm.fp8_gelu_mlp_bf16(*dense_args())
    with pytest.raises(ValueError, match=r"`input` must be a CUDA tensor, got device cpu"):
        sfm.channel_scale_quantize_fp8_static_bf16(
            torch.zeros(4, 16, dtype=torch.bfloat16), torch.ones(16, dtype=torch.bfloat16),
            torch.tensor(1.0))


def test_fake_impls_make_the_ops_traceable_on_meta(sfm):
    """The registered fakes let the ops run on meta tensors (what torch.compile traces)."""
    out = torch.empty(4, 16, dtype=torch.bfloat16, device="meta")
    args = [a.to("meta") for a in gated_args()]
    sfm.ops.fp8_swiglu_mlp_bf16(out, *args)  # would raise without a fake/meta impl
    q = torch.empty(4, 16, dtype=FP8, device="meta")
    sfm.ops.channel_scale_quantize_fp8_static_bf16(
        q, torch.empty(4, 16, dtype=torch.bfloat16, device="meta"),
        torch.empty(16, dtype=torch.bfloat16, device="meta"), torch.empty((), device="meta"))


def test_covered_archs(sfm):
    covered = sfm.covered_archs()
    for arch in ("8.9", "9.0", "10.0", "12.0"):
        assert arch in covered


class _RecordingOps:
    """Stands in for the registered ops: records each call, or refuses like the op would."""

    def __init__(self, refuse: bool):
        self.calls, self.refuse = [], refuse

    def __getattr__(self, name):
        def op(*args):
            self.calls.append(name)
            if self.refuse:
                raise RuntimeError(f"static_fp8_mlp: the op {name} refused")
        return op


def quant_args(k=16, m=4):
    return [torch.zeros(m, k, dtype=torch.bfloat16), torch.ones(k, dtype=torch.bfloat16), torch.tensor(1.0)]


# endpoint -> (its valid CPU arguments, the index of its one-element input scale)
SCALE_ARG = {
    "fp8_swiglu_mlp_bf16": (gated_args, 3),
    "fp8_gelu_mlp_bf16": (dense_args, 5),
    "channel_scale_quantize_fp8_static_bf16": (quant_args, 2),
}


@pytest.fixture
def op_first(kernel, monkeypatch):
    """The op-first path on CPU tensors: calls take it without CUDA and the device check
    passes (the CPU tensors stand in for CUDA ones). Returns the build's checks module."""
    import importlib

    check = importlib.import_module(kernel.__name__ + "._validation")
    monkeypatch.setattr(kernel, "_checks_deferred", lambda input, out: out is None)
    monkeypatch.setattr(check, "on_cuda", lambda *a: None)
    return check


def with_bad_scale(endpoint, **shape):
    args_of, index = SCALE_ARG[endpoint]
    args = args_of(**shape)
    args[index] = torch.ones(2)
    return args


@pytest.mark.parametrize("endpoint", list(SCALE_ARG))
def test_deferred_checks_run_only_when_the_op_refuses(kernel, op_first, monkeypatch, endpoint):
    """Eager CUDA calls go to the op first: a call it accepts runs none of this layer's
    checks; one it refuses gets them (the op's own error stands when they all pass)."""
    checks_run = []
    monkeypatch.setattr(op_first, "rows_input", lambda *a, _f=op_first.rows_input: checks_run.append(1) or _f(*a))
    args = SCALE_ARG[endpoint][0]()
    fn = getattr(kernel, endpoint)

    monkeypatch.setattr(kernel, "ops", _RecordingOps(refuse=False))
    out = fn(*args)
    assert kernel.ops.calls == [endpoint] and checks_run == []
    assert out.shape == (4, 16)

    monkeypatch.setattr(kernel, "ops", _RecordingOps(refuse=True))
    with pytest.raises(RuntimeError, match="refused"):  # every check passes: the op's error
        fn(*args)
    assert checks_run == [1]
    with pytest.raises(ValueError, match="`scale`|`input_scale`"):  # a check names the argument
        fn(*with_bad_scale(endpoint))


@pytest.mark.parametrize("endpoint", ["fp8_swiglu_mlp_bf16", "fp8_gelu_mlp_bf16"], ids=["gated", "dense"])
def test_deferred_checks_with_no_output_columns(kernel, op_first, monkeypatch, endpoint):
    """N = 0 on the op-first path: nothing is launched, and the checks still run (a bad
    argument is still named)."""
    monkeypatch.setattr(kernel, "ops", _RecordingOps(refuse=False))
    fn = getattr(kernel, endpoint)
    out = fn(*SCALE_ARG[endpoint][0](n=0))
    assert out.shape == (4, 0) and kernel.ops.calls == []
    with pytest.raises(ValueError, match="`input_scale` must be a one-element fp32 tensor"):
        fn(*with_bad_scale(endpoint, n=0))
