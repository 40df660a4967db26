"""The first-call CUDA-graph capture cases of tests/test_kernels_gpu.py: one process per
case whose very first endpoint calls are captured, so that each Hopper kernel family
fills its per-device caches (shared-memory attribute, cluster occupancy, multiprocessor
count) inside a capture at least once.

Auto cases name the kernels the dispatcher picks for them on a 132-SM H200, and
tests/test_dispatch_rules.py checks those picks on the CPU: a routing change that moves
a case off its kernel then fails there, instead of quietly leaving a kernel's first call
uncaptured (until the thirty-third session the shapes had drifted: no auto case reached
the swap-AB kernels from DRAM, the cluster-reduced down GEMMs or the CTA pairs). Kernels
auto does not pick for small shapes are forced."""

from __future__ import annotations

from typing import NamedTuple

# hopper::Kernel, in its enum order (kernels-src/hopper_dispatch.cuh)
KERNELS = ("warp", "rs", "stream", "wgmma", "split_k", "split_k_cluster", "swap", "swap_cluster")

GEGLU_DECODE = (2048, 16384, 2048)  # (K, H, N): weights from DRAM (64 + 32 MiB)


class CaptureCase(NamedTuple):
    id: str
    m: int
    shape: tuple[int, int, int]  # (K, H, N)
    paths: tuple[str, str] | None  # both GEMMs forced, or None for auto
    # auto: the kernels of the gated gate/up GEMM, the gated down GEMM, the dense up GEMM
    # and the dense down GEMM
    kernels: tuple[str, str, str, str] | None = None


CAPTURE_CASES = (
    CaptureCase("auto-warp", 1, (256, 512, 256), None, ("warp", "warp", "warp", "warp")),
    # the dense up GEMM (L2-resident) on the swap-AB kernel from 8 tokens, the gated MLP's
    # GEMMs from 9 (thirty-eighth session); the dense down GEMM register-sourced
    CaptureCase("auto-rs", 9, (256, 512, 256), None, ("swap", "swap", "swap", "rs")),
    # the down GEMM over a workspace and a reduce kernel; early weight loads, PDL triggers
    CaptureCase("auto-swap-workspace", 1, GEGLU_DECODE, None, ("swap", "swap", "stream", "swap")),
    CaptureCase("auto-swap-cluster", 16, GEGLU_DECODE, None,
                ("swap", "swap_cluster", "stream", "swap_cluster")),
    CaptureCase("auto-wgmma", 600, (256, 512, 256), None, ("wgmma",) * 4),
    # H = 528: the down GEMM's K rows straddle 128-byte lines, so its tall CTAs run in
    # pairs (wgmma_gemm::launch; above 896 tokens, where the swap-AB kernel stops taking it)
    CaptureCase("auto-wgmma-pairs", 1300, (256, 528, 256), None, ("wgmma",) * 4),
    CaptureCase("auto-split-k-cluster", 600, (256, 4096, 256), None,
                ("wgmma", "split_k_cluster", "wgmma", "split_k_cluster")),
    CaptureCase("forced-split-k", 50, (1024, 4096, 256), ("auto", "tensor_core_split_k")),
    CaptureCase("forced-weight-stream", 16, (1152, 4304, 256), ("weight_stream", "weight_stream")),
    # the wgmma kernel's wide 64-token tiles
    CaptureCase("forced-wide-wgmma", 50, (1152, 4304, 1152), ("tensor_core_tma", "tensor_core_tma")),
    CaptureCase("forced-tall-192", 300, (1152, 4304, 1152),
                ("tensor_core_tall_192", "tensor_core_tall_192")),
)
