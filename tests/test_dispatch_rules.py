"""The Hopper GEMMs' dispatch and shape rules (kernels-src/hopper_dispatch.cuh,
fp8_gemm_wgmma.cuh, fp8_gemm_swap.cuh), checked on the CPU: a
host program compiled with nvcc calls the rule functions (no kernel is instantiated, no
GPU is needed) for the benchmark's shapes on a 132-SM H200, and the test compares the
choices with the ones measured in benchmarks/RESULTS.md. A change to a rule then has to
change this table on purpose. Skips without nvcc."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capture_cases import CAPTURE_CASES, KERNELS

REPO_ROOT = Path(__file__).resolve().parents[1]
SMS = 132  # H200 / H100 SXM

PROGRAM = r"""
#include <cstdio>
#include "hopper_dispatch.cuh"
using namespace static_fp8_mlp;
using E = EpilogueKind;
int main() {
  const long ms[] = {1, 3, 4, 5, 6, 7, 8, 9, 16, 17, 32, 33, 39, 40, 48, 49, 50, 64, 65, 100, 128, 129, 160, 192, 193, 224, 240, 241, 256, 257, 384, 385, 512, 520, 576, 577, 600, 640, 648, 768, 769, 1024, 1040, 2064, 8192};
  for (long m : ms) {
    // tall rows: gated gate/up GEMM (H = 14336, 16384), dense up (4304, 6144), down (4096)
    printf("tall %ld %d %d %d %d %d\n", m,
           wgmma_gemm::tall_rows<E::kGatedToFp8>(m, 14336, SMS),
           wgmma_gemm::tall_rows<E::kGatedToFp8>(m, 16384, SMS),
           wgmma_gemm::tall_rows<E::kBiasGeluToFp8>(m, 4304, SMS),
           wgmma_gemm::tall_rows<E::kBiasGeluToFp8>(m, 6144, SMS),
           wgmma_gemm::tall_rows<E::kBiasToBf16>(m, 4096, SMS));
    // token-tile pairs (x multicast): gated gate/up at K = 4096 / 2048, dense up, down
    printf("share %ld %d %d %d %d\n", m,
           int(wgmma_gemm::share_x<E::kGatedToFp8>(m, 4096)),
           int(wgmma_gemm::share_x<E::kGatedToFp8>(m, 2048)),
           int(wgmma_gemm::share_x<E::kBiasGeluToFp8>(m, 4096)),
           int(wgmma_gemm::share_x<E::kBiasToBf16>(m, 14336)));
    // wide 64-token tiles: gated gate/up, dense up, down (launch)
    printf("wide %ld %d %d %d\n", m, int(wgmma_gemm::wide_shape<E::kGatedToFp8>(m)),
           int(wgmma_gemm::wide_shape<E::kBiasGeluToFp8>(m)),
           int(wgmma_gemm::wide_shape<E::kBiasToBf16>(m)));
    // down GEMMs (N, K): SwiGLU (4096, 14336), GeGLU (2048, 16384), dense (1152, 4304), (1536, 6144)
    printf("split %ld %d %d %d %d\n", m,
           wgmma_gemm::split_k_factor(m, 4096, 14336, SMS),
           wgmma_gemm::split_k_factor(m, 2048, 16384, SMS),
           wgmma_gemm::split_k_factor(m, 1152, 4304, SMS),
           wgmma_gemm::split_k_factor(m, 1536, 6144, SMS));
    // swap-AB, auto: gate/up and down of SwiGLU, GeGLU, the dense 1152x4304 MLP (L2-resident)
    printf("swap_auto %ld %d %d %d %d %d %d\n", m,
           int(swap_gemm::auto_takes(m, false, 28672, 4096, false, SMS)),
           int(swap_gemm::auto_takes(m, true, 4096, 14336, false, SMS)),
           int(swap_gemm::auto_takes(m, false, 32768, 2048, false, SMS)),
           int(swap_gemm::auto_takes(m, true, 2048, 16384, false, SMS)),
           int(swap_gemm::auto_takes(m, false, 4304, 1152, true, SMS)),
           int(swap_gemm::auto_takes(m, true, 1152, 4304, true, SMS)));
    // swap-AB: token tile, gate/up tiles fill the GPU (weight rows: SwiGLU 28672, GeGLU
    // 32768, dense 4304, 6144), down splits (SwiGLU, GeGLU)
    // auto kernel (hopper::Kernel as an int) of SwiGLU gate/up and down, GeGLU gate/up and
    // down (weights from DRAM: the warp and register-sourced kernels do not apply)
    const auto pick = [&](bool gemm2, long w_rows, long k, bool gated) {
      return int(hopper::pick(m, GemmPath::kAuto, gemm2, w_rows, k, false, false, SMS, gated));
    };
    // L2-resident (warp and register-sourced kernels available): the dense 1152x4304
    // MLP's up and down GEMMs, and a gated gate/up GEMM of the same size
    const auto pick_l2 = [&](bool gemm2, long w_rows, long k, bool gated) {
      return int(hopper::pick(m, GemmPath::kAuto, gemm2, w_rows, k, m <= 32, m <= 64, SMS, gated));
    };
    printf("pick_l2 %ld %d %d %d\n", m, pick_l2(false, 4304, 1152, false), pick_l2(true, 1152, 4304, false),
           pick_l2(false, 4304, 1152, true));
    // the hidden row pitch (0: packed) between the dense 1152x4304 MLP's GEMMs (auto),
    // the same H with K = 1536, the gated 1152x4304 MLP's, and the dense 1536x6144's
    const auto pitch = [&](long k, long h, long n, bool gated) {
      const auto up = hopper::Kernel(pick_l2(false, gated ? 2 * h : h, k, gated));
      return int(hopper::padded_hidden_pitch(h, up, hopper::Kernel(pick_l2(true, n, h, false))));
    };
    printf("hidden_pitch %ld %d %d %d %d\n", m, pitch(1152, 4304, 1152, false),
           pitch(1536, 4304, 1536, false), pitch(1152, 4304, 1152, true),
           pitch(1536, 6144, 1536, false));
    // a small LLM's gated MLP, L2-resident (Qwen2.5-0.5B 896x4864): gate/up, down; the
    // same down GEMM in a dense MLP
    printf("pick_l2_gated %ld %d %d %d\n", m, pick_l2(false, 2 * 4864, 896, true),
           pick_l2(true, 896, 4864, true), pick_l2(true, 896, 4864, false));
    // gate/up GEMMs whose 128-row tiles nearly fill the GPU: Llama-3.2-1B 2048x8192 (128
    // tiles, from DRAM) as a gated MLP's and as a dense MLP's; Gemma-3-1B 1152x6912 (108,
    // L2-resident)
    printf("nearly_fills %ld %d %d %d\n", m, pick(false, 2 * 8192, 2048, true), pick(false, 2 * 8192, 2048, false),
           pick_l2(false, 2 * 6912, 1152, true));
    // the dense 1536x6144 MLP's down GEMM (L2-resident, 12 weight tiles)
    printf("pick_l2_1536 %ld %d\n", m, pick_l2(true, 1536, 6144, false));
    // a narrower tower's down GEMM with aligned K (768x3072)
    printf("pick_l2_768 %ld %d\n", m, pick_l2(true, 768, 3072, false));
    // swap-AB down GEMM reduced in clusters: SwiGLU, GeGLU (from DRAM), dense 1152, 1536 (L2)
    printf("down_cluster %ld %d %d %d %d\n", m, int(swap_gemm::down_in_clusters(m, 4096, false)),
           int(swap_gemm::down_in_clusters(m, 2048, false)),
           int(swap_gemm::down_in_clusters(m, 1152, true)),
           int(swap_gemm::down_in_clusters(m, 1536, true)));
    // whether the swap-AB down GEMM lets the next kernel launch as it starts, with the
    // reduction down_in_clusters picks: SwiGLU, GeGLU (from DRAM), dense 1152, 1536 (L2)
    const auto trig = [&](long n, long k, bool l2) {
      return int(swap_gemm::triggers_next(n, swap_gemm::down_in_clusters(m, n, l2), l2));
    };
    printf("trigger %ld %d %d %d %d\n", m, trig(4096, 14336, false), trig(2048, 16384, false),
           trig(1152, 4304, true), trig(1536, 6144, true));
    printf("pick %ld %d %d %d %d\n", m, pick(false, 28672, 4096, true), pick(true, 4096, 14336, true),
           pick(false, 32768, 2048, true), pick(true, 2048, 16384, true));
    printf("swap %ld %d %d %d %d %d %d %d\n", m, swap_gemm::token_tile(m), int(swap_gemm::fills_gpu(28672, SMS)),
           int(swap_gemm::fills_gpu(32768, SMS)), int(swap_gemm::fills_gpu(4304, SMS)),
           int(swap_gemm::fills_gpu(6144, SMS)), swap_gemm::down_splits(m, 4096, 14336, SMS),
           swap_gemm::down_splits(m, 2048, 16384, SMS));
  }
  // Every token tile swap_gemm::token_tile gives must be one launch_tile instantiates
  // (8-56 in steps of 8, 64-192 in steps of 16): count the M that get another one.
  long off_grid = 0, m_off = 0;
  for (long m = 1; m <= 20000; ++m) {
    const int bt = swap_gemm::token_tile(m);
    const bool ok = bt < 64 ? (bt >= 8 && bt % 8 == 0) : (bt <= 192 && bt % 16 == 0);
    if (!ok && off_grid++ == 0) m_off = m;
  }
  printf("tile_grid 0 %ld %ld\n", off_grid, m_off);
  // The gated gate/up GEMM's ring (DEEP) and the weight stages it loads before its wait,
  // per small token tile.
#define SFM_RING(BT)                                                                    \
  printf("gated_ring %d %d %d\n", BT, swap_gemm::SwapPlan<E::kGatedToFp8, BT, true>::kStages, \
         swap_gemm::SwapPlan<E::kGatedToFp8, BT, true>::kEarlyGatedStages);
  SFM_RING(8) SFM_RING(16) SFM_RING(24) SFM_RING(32) SFM_RING(40) SFM_RING(48) SFM_RING(56)
  SFM_RING(64)
#undef SFM_RING
  // The auto cases of tests/capture_cases.py (index, M, K, H, N): gated gate/up and down,
  // dense up and down
  const auto capture = [&](int index, long m, long k, long h, long n) {
    const auto p = [&](bool gemm2, long w_rows, long kk, bool gated) {
      return int(hopper::pick(m, GemmPath::kAuto, gemm2, w_rows, kk, m <= 32, m <= 64, SMS, gated));
    };
    printf("capture %d %d %d %d %d\n", index, p(false, 2 * h, k, true), p(true, n, h, true),
           p(false, h, k, false), p(true, n, h, false));
  };
  CAPTURE_CALLS
}
"""


def capture_calls() -> str:
    return "\n  ".join(f"capture({i}, {c.m}, {c.shape[0]}, {c.shape[1]}, {c.shape[2]});"
                         for i, c in enumerate(CAPTURE_CASES) if c.paths is None)


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[tuple[str, int], list[int]]:
    from static_fp8_mlp_cli import nvcc
    from static_fp8_mlp_cli.errors import CliError

    try:
        compiler = nvcc.find_nvcc()
    except CliError as exc:
        pytest.skip(f"no nvcc: {exc}")
    tmp = tmp_path_factory.mktemp("dispatch")
    src, exe = tmp / "rules.cu", tmp / "rules"
    src.write_text(PROGRAM.replace("SMS", str(SMS)).replace("CAPTURE_CALLS", capture_calls()))
    subprocess.run([str(compiler), "-std=c++17", "-arch=sm_90a", "-w", "-I",
                    str(REPO_ROOT / "kernels-src"), "-o", str(exe), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=60)
    table = {}
    for line in out.stdout.splitlines():
        name, m, *values = line.split()
        table[(name, int(m))] = [int(v) for v in values]
    return table


def test_gated_gate_up_rows(rules):
    """128 rows up to one token tile; 192 at two token tiles (M = 129-256, measured faster,
    RESULTS.md twelfth session); the cost model's choice beyond (192 at 3 tiles here,
    and at M = 8192)."""
    for m in (65, 100, 128):
        assert rules[("tall", m)][:2] == [128, 128], m
    for m in (129, 160, 256, 257, 384, 8192):
        assert rules[("tall", m)][:2] == [192, 192], m
    assert rules[("tall", 512)][:2] == [192, 128]


def test_dense_up_rows_and_down_rows(rules):
    """64-row tiles for the dense up GEMM only, at M = 65-128 (eleventh session); down
    GEMMs never take 64 rows."""
    for m in (65, 100, 128):
        assert rules[("tall", m)][2:4] == [64, 64], m
    for m in (129, 256):
        assert rules[("tall", m)][2:4] == [128, 128], m
    assert all(rules[("tall", m)][4] in (128, 192) for m in (65, 128, 512, 8192))


def test_split_k_factors(rules):
    """Splits of the down GEMM on 132 SMs, as the kernel grids of the twelfth session show
    them (results/split_cluster_grids_*, gated_mid_m_kernels_*): GeGLU 16 at M <= 64,
    1536x6144 11 at M = 65-128, SwiGLU none at M = 384, 1 wherever tiles fill the GPU."""
    assert rules[("split", 17)] == [8, 16, 8, 12]
    assert rules[("split", 100)] == [4, 8, 8, 11]
    assert rules[("split", 160)] == [2, 5, 8, 7]
    assert rules[("split", 384)] == [1, 2, 4, 3]
    assert rules[("split", 8192)] == [1, 1, 1, 1]


def test_token_tile_sharing(rules):
    """Pairs that multicast the token tile only for the gated gate/up GEMM with K >= 4096
    (SwiGLU) at one token tile: measured faster there only (thirteenth session)."""
    for m in (65, 100, 128):
        assert rules[("share", m)] == [1, 0, 0, 0], m
    for m in (129, 256, 512, 8192):
        assert rules[("share", m)] == [0, 0, 0, 0], m


def test_wide_tiles(rules):
    """64-token tiles up to M = 64 for every GEMM, and for the gate/up GEMMs also at
    M = 129-192, where a second 128-token tile would be at most half full (measured
    faster there, thirteenth session); tall tiles at 65-128 and from 193 on."""
    for m in (1, 17, 64):
        assert rules[("wide", m)] == [1, 1, 1], m
    for m in (129, 160, 192):
        assert rules[("wide", m)] == [1, 1, 0], m
    for m in (65, 100, 128, 193, 256, 384, 8192):
        assert rules[("wide", m)] == [0, 0, 0], m


def test_swap_ab_rules(rules):
    """Every token in one tile, M rounded up to 8 below 64 tokens (twenty-fourth session;
    was 64 at least), to 16 from 64; beyond 192, M split evenly
    over the fewest tiles of at most 192 (193: 2 x 112, 385: 3 x 144, 8192: 43 x 192);
    gate/up 128-row tiles fill the GPU for the gated MLPs, not a vision tower's; the down
    GEMM splits K to fill the GPU with its token tiles x weight tiles (SwiGLU 32 tiles
    x 4, GeGLU 16 x 8 at one token tile; at 4 token tiles GeGLU 64 x 2, SwiGLU 128 x 1)."""
    assert [rules[("swap", m)][0]
            for m in (1, 16, 17, 32, 33, 48, 49, 64, 65, 100, 129, 192, 193, 224, 256, 384,
                      385, 8192)] == \
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 112, 144, 192, 112, 112, 128, 192, 144, 192]
    assert rules[("swap", 100)][1:] == [1, 1, 0, 0, 4, 8]
    assert rules[("swap", 384)][5:] == [2, 4]
    assert rules[("swap", 640)][5:] == [1, 2]
    assert rules[("swap", 1024)][5:] == [1, 1]


def test_every_token_tile_is_instantiated(rules):
    """swap_gemm::token_tile gives, for every M from 1 to 20000, a tile that launch_tile
    has an instantiation for (8-56 in steps of 8, 64-192 in steps of 16); any other
    would fail at launch with cudaErrorInvalidValue."""
    assert rules[("tile_grid", 0)] == [0, 0]


def test_swap_ab_auto(rules):
    """Auto routing to the swap-AB kernels (fourteenth and fifteenth sessions,
    scripts/mlp_ab.py): SwiGLU and GeGLU at M = 65-192 (both GEMMs) and 193-240 (gate/up
    GEMMs); GeGLU also at M = 1-64 (sixteenth session: from 1, was 8); the dense MLP's
    down GEMM (L2-resident) at M = 65-160 only, its up GEMM (34 tiles) never. Seventeenth
    session: the gated gate/up GEMMs to 384, GeGLU's (K = 2048) to 512; above 192 down
    GEMMs from DRAM whose wgmma tiles would not split K and whose swap-AB tiles fill the
    GPU in clusters of 2+ splits: SwiGLU's at M = 257-384, GeGLU's at 577-768.
    Eighteenth session: above 512 the gated gate/up GEMMs where the swap-AB token tiles
    pad M less than 128-token tiles (576 = 3 x 192 against 640; 769 = 5 x 160 against
    896; not 577 or 640, 4 x 160 = 640 either way, nor 768, 1024 = 6 x 176 > 1024, 8192).
    Twenty-second session: the dense 1152x4304 MLP's down GEMM (L2-resident, 1152
    columns, unaligned K) at every M from 65 to 896 (was 65-160), not at 1024."""
    for m in (576, 769):
        assert rules[("swap_auto", m)] == [1, 0, 1, 0, 0, 1], m
    for m in (1024, 8192):
        assert rules[("swap_auto", m)] == [0] * 6, m
    for m in (241, 256):
        assert rules[("swap_auto", m)] == [1, 0, 1, 0, 0, 1], m
    for m in (257, 384):
        assert rules[("swap_auto", m)] == [1, 1, 1, 0, 0, 1], m
    for m in (385, 512):
        assert rules[("swap_auto", m)] == [0, 0, 1, 0, 0, 1], m
    for m in (577, 640, 768):
        assert rules[("swap_auto", m)] == [0, 0, 0, 1, 0, 1], m
    for m in (520, 648, 1040, 2064):  # measured faster (eighteenth session)
        assert rules[("swap_auto", m)][0::2] == [1, 1, 0], m
    # Twenty-fourth session: with 16- to 48-token tiles SwiGLU's gate/up GEMM to 48 tokens
    # and its down GEMM from 1 (was 40, in clusters: eighteenth session); twenty-fifth,
    # with the deep ring, its gate/up GEMM to 64.
    for m in (1, 7, 8, 16, 17, 33, 39, 40, 48, 49, 50, 64):
        assert rules[("swap_auto", m)] == [1, 1, 1, 1, 0, 0], m
    for m in (65, 100, 160):
        assert rules[("swap_auto", m)] == [1, 1, 1, 1, 0, 1], m
    assert rules[("swap_auto", 192)] == [1, 1, 1, 1, 0, 1]
    for m in (193, 224, 240):
        assert rules[("swap_auto", m)] == [1, 0, 1, 0, 0, 1], m


def test_auto_kernel_per_gemm(rules):
    """hopper::pick on the gated MLPs (auto): GeGLU's GEMMs on the swap-AB kernels from
    1 token (sixteenth session; was 8); SwiGLU's too since the twenty-fourth session (its
    16- to 48-token tiles), its gate/up GEMM to 48 tokens and on the wide wgmma tiles at
    49-64, to 64 since the twenty-fifth (the deep ring) (before the twenty-fourth: wide
    wgmma tiles to 64, the down GEMM streaming to 16 tokens, split-K
    cluster tiles to 39, swap-AB in clusters from 40), both from 65; above 192 the down GEMMs on the
    split-K wgmma tiles, the gate/up GEMMs on the swap-AB kernel to 240, then the wgmma
    tiles; the swap-AB down GEMMs reduce in clusters from 40 tokens (seventeenth session),
    GeGLU's from 16 (twenty-third session), from 6 (twenty-fourth), both from 2
    (twenty-fifth);
    above 512 the gate/up GEMMs on the swap-AB kernel where its tiles pad M less
    (eighteenth session: M = 576, 769, 1040, not 640, 1024 or 8192).
    Kernel order: warp, reg-wgmma, stream, wgmma, split-K, split-K cluster, swap-AB,
    swap-AB with the down GEMM reduced in clusters, portable."""
    wgmma, stream, split_k, cluster, swap, swap_cluster = 3, 2, 4, 5, 6, 7
    assert rules[("pick", 1)] == [swap, swap, swap, swap]
    for m in (5, 6, 7, 8, 16, 17, 32, 33, 39, 40, 48, 49, 50, 64):
        assert rules[("pick", m)] == [swap, swap_cluster, swap, swap_cluster], m
    for m in (65, 100, 192):
        assert rules[("pick", m)] == [swap, swap_cluster, swap, swap_cluster], m
    for m in (193, 240):
        assert rules[("pick", m)] == [swap, split_k, swap, split_k], m
    assert rules[("pick", 241)] == [swap, split_k, swap, split_k]
    assert rules[("pick", 384)] == [swap, swap_cluster, swap, split_k]
    assert rules[("pick", 512)] == [wgmma, wgmma, swap, split_k]
    assert rules[("pick", 640)] == [wgmma, wgmma, wgmma, swap_cluster]
    for m in (1024, 8192):
        assert rules[("pick", m)] == [wgmma] * 4, m
    assert rules[("pick", 576)] == [swap, wgmma, swap, wgmma]
    assert rules[("pick", 1040)] == [swap, wgmma, swap, wgmma]


def test_auto_kernel_l2_resident(rules):
    """hopper::pick on L2-resident GEMMs (a vision tower's MLP): the warp kernel up to 8 tokens
    (its fp32 sums: the thirty-eighth session measured the swap-AB kernel faster at 4-8 but
    less precise, and left that window off), the register-sourced wgmma kernel from 9; the
    dense up GEMM on the swap-AB kernel from 8 tokens and the down GEMM from 33 (thirtieth
    session; from 40 for both since the sixteenth), SigLIP's down GEMM (1152 columns, K =
    4304 not a multiple of 128) from 8 too (thirty-first session; the aligned 768x3072 and
    1536x6144 ones were slower there, and stay off it below 33); a gated gate/up GEMM of the
    same size on the swap-AB kernel from 9 tokens to 64
    (test_auto_kernel_l2_resident_gated); above 64 the dense up GEMM on the wgmma tiles and
    the down GEMM on the swap-AB kernel to 896 tokens (1152 columns, K = 4304 not a multiple
    of 128; was 160 before the twenty-second session), the aligned 768x3072 and 1536x6144
    ones not above 160 (measured slower there). Kernel order as in
    test_auto_kernel_per_gemm."""
    warp, rs, wgmma, swap = 0, 1, 3, 6
    for m in (1, 3, 4, 5, 6, 7):
        assert rules[("pick_l2", m)] == [warp, warp, warp], m
    assert rules[("pick_l2", 8)] == [swap, swap, warp]
    for m in (1, 3, 4, 7, 8):
        assert rules[("pick_l2_768", m)] == [warp], m
        assert rules[("pick_l2_1536", m)] == [warp], m
    for m in (16, 17, 32):
        assert rules[("pick_l2", m)] == [swap, swap, swap], m
    for m in (16, 32):
        assert rules[("pick_l2_768", m)][0] in (warp, rs), m
        assert rules[("pick_l2_1536", m)][0] in (warp, rs), m
    for m in (33, 39, 40, 50, 64):
        assert rules[("pick_l2", m)] == [swap, swap, swap], m
    for m in (65, 100, 128):
        assert rules[("pick_l2", m)][:2] == [wgmma, swap], m
    for m in (129, 160, 192, 193, 512, 768, 769):
        assert rules[("pick_l2", m)][1] == swap, m
    for m in (1024, 8192):
        assert rules[("pick_l2", m)][1] != swap, m
    for m in (193, 512, 768):
        assert rules[("pick_l2_1536", m)][0] not in (swap, 7), m
        assert rules[("pick_l2_768", m)][0] not in (swap, 7), m


def test_auto_kernel_l2_resident_gated(rules):
    """hopper::pick on a small LLM's gated MLP whose weights are L2-resident (Qwen2.5-0.5B,
    896x4864): both GEMMs on the swap-AB kernel from 9 tokens to 64 (thirty-eighth
    session: 8-40% faster than the register-sourced kernel for five such MLPs), the warp
    kernel below (its fp32 sums: more precise, see test_auto_kernel_l2_resident); the
    same down GEMM in a dense MLP keeps the dense routing (register-sourced at 9-32). The
    gate/up GEMM stays on the swap-AB kernel to 128 tokens (thirty-ninth session: 6-15%
    faster at 65 and 96), then the wgmma tiles (its 76 tiles of 128 rows do not fill the
    GPU; mixed above 128)."""
    warp, rs, wgmma, swap = 0, 1, 3, 6
    for m in (1, 3, 4, 8):
        assert rules[("pick_l2_gated", m)] == [warp, warp, warp], m
    for m in (9, 16, 17, 32, 33, 50, 64):
        assert rules[("pick_l2_gated", m)][:2] == [swap, swap], m
    for m in (16, 32):
        assert rules[("pick_l2_gated", m)][2] == rs, m
    for m in (65, 100, 128):
        assert rules[("pick_l2_gated", m)][0] == swap, m
    for m in (129, 160, 192, 256, 512):
        assert rules[("pick_l2_gated", m)][0] == wgmma, m


def test_auto_gated_gate_up_nearly_filling_the_gpu(rules):
    """A gated MLP's gate/up GEMM whose 128-row weight tiles cover at least 80% of the SMs
    (Llama-3.2-1B: 128 tiles, Gemma-3-1B: 108) takes the swap-AB kernel from 65 tokens to
    512 as one that fills the GPU does (thirty-ninth session: 0.6-4.7 us faster or even at
    every M measured); a dense MLP's up GEMM of the same rows keeps the wgmma tiles, and
    below 65 the rule is unchanged (not measured there)."""
    wgmma, swap = 3, 6
    for m in (65, 100, 128, 160, 192, 256, 384, 512):
        assert rules[("nearly_fills", m)] == [swap, wgmma, swap], m
    for m in (17, 32, 50, 64, 520, 1024):
        assert rules[("nearly_fills", m)][:2] == [wgmma, wgmma], m


def test_swap_ab_down_reduction(rules):
    """The swap-AB down GEMM's K splits reduce in clusters (no workspace, no reduce kernel)
    from 40 tokens, L2-resident ones only with N >= 1536: measured faster for SwiGLU and
    GeGLU at M = 40-192 and the 1536x6144 MLP at 40-160, slower for GeGLU at M = 1 and the
    1152x4304 MLP at 40-64 and 160 (seventeenth session, scripts/mlp_ab.py); GeGLU-sized
    ones (N <= 2048 from DRAM, letting the next kernel launch early) from 6 tokens
    (twenty-third session: from 16, -1.0 to -1.8 us at M = 16-39, +0.9 at 1 and 8 with
    64-token tiles; twenty-fourth session, tiles of M rounded up to 8: -0.1 to -1.5 us at
    M = 6-15, +0.03 to +0.15 at 1-4); with the deep ring (twenty-fifth session) every
    down GEMM from DRAM with N <= 4096 from 2 tokens (SwiGLU M = 8-39 -0.8 to -1.1 us,
    GeGLU M = 2-5 -0.55 to -0.75, M = 1 equal). The 1536x6144 down GEMM takes the swap-AB
    kernel over a workspace at 33-39 tokens (thirtieth session) and with clusters from 40
    to 160."""
    assert rules[("down_cluster", 1)] == [0, 0, 0, 0]
    for m in (5, 6, 7, 8, 16, 17, 32, 39):
        assert rules[("down_cluster", m)] == [1, 1, 0, 0], m
    for m in (40, 50, 64, 65, 100, 128, 160, 192):
        assert rules[("down_cluster", m)] == [1, 1, 0, 1], m
    rs, swap, swap_cluster = 1, 6, 7
    for m in (16, 32):
        assert rules[("pick_l2_1536", m)] == [rs], m
    for m in (33, 39):
        assert rules[("pick_l2_1536", m)] == [swap], m
    for m in (40, 64, 65, 100, 160):
        assert rules[("pick_l2_1536", m)] == [swap_cluster], m


def test_swap_ab_down_triggers_next(rules):
    """The swap-AB down GEMM (and its reduce kernel) let the next kernel launch as they
    start only for down weights from DRAM: GeGLU's and SwiGLU's at every M (workspace or
    clusters, N = 2048 / 4096); never the L2-resident vision towers' (1152x4304 +2.1 us
    at M = 160); twenty-third session, scripts/mlp_ab.py."""
    for m in (1, 16, 39, 40, 64, 65, 128, 192):
        assert rules[("trigger", m)] == [1, 1, 0, 0], m


def test_input_quant_hand_off_test_follows_an_early_trigger(rules):
    """tests/test_kernels_gpu.py's test_input_quant_reads_the_previous_kernels_output needs
    the kernel before each quant to let it launch early: GeGLU's down GEMM on the swap-AB
    kernel (over a workspace at M = 1, in clusters at 50 and 600), which triggers."""
    swap, swap_cluster = 6, 7
    for m, kernel in ((1, swap), (50, swap_cluster), (600, swap_cluster)):
        assert rules[("pick", m)][3] == kernel, m
        assert rules[("trigger", m)][1] == 1, m


def test_gated_gate_up_early_weight_stages(rules):
    """The gated gate/up GEMM's deep ring holds 12 stages at 8-16 tokens and fewer as the
    token tile grows (shared memory); before its wait it loads the weights of the whole
    ring up to 32 tokens, of at most 8 stages from 40 (twenty-sixth session: GeGLU
    M = 33-64 0.4-0.6 us faster than the whole 9-10-stage ring)."""
    for bt in (8, 16):
        assert rules[("gated_ring", bt)] == [12, 12], bt
    for bt in (24, 32):
        stages, early = rules[("gated_ring", bt)]
        assert 10 <= stages <= 12 and early == stages, bt
    for bt in (40, 48, 56, 64):
        stages, early = rules[("gated_ring", bt)]
        assert stages >= 8 and early == 8, bt


def test_hidden_rows_padded_between_wgmma_gemms(rules):
    """Where both GEMMs of an MLP run the wgmma kernel and H is not a whole number of
    128-byte K tiles (SigLIP's H = 4304), the hidden state's rows are padded to 4352 bytes
    (hopper::padded_hidden_pitch), so that the down GEMM's token rows do not straddle L2
    lines; 0 (packed) wherever another kernel writes or reads it, and for H = 6144."""
    for m in (1, 16, 64, 128, 512, 648):  # the register-sourced, swap-AB or split-K kernels
        assert rules[("hidden_pitch", m)] == [0, 0, 0, 0], m
    # N = 1152 keeps the swap-AB down GEMM to 896 tokens (narrow_l2_down_takes); N = 1536
    # takes the wgmma tiles from 769 (split-K below)
    assert rules[("hidden_pitch", 768)] == [0, 4352, 0, 0]
    for m in (1024, 1040, 2064, 8192):  # above narrow_l2_down_takes' 896 tokens
        assert rules[("hidden_pitch", m)][:3] == [4352, 4352, 4352], m
        assert rules[("hidden_pitch", m)][3] == 0, m


def test_first_call_capture_cases_reach_their_kernels(rules):
    """Each auto case of the first-call capture test (tests/capture_cases.py) reaches the
    kernels it names, and together with the forced cases they cover every Hopper kernel
    family: a routing change that moves a case elsewhere has to update the table."""
    covered = set()
    for i, case in enumerate(CAPTURE_CASES):
        if case.paths is None:
            assert tuple(KERNELS[k] for k in rules[("capture", i)]) == case.kernels, case.id
            covered.update(case.kernels)
        else:
            covered.add({"tensor_core_split_k": "split_k", "weight_stream": "stream"}.get(
                case.paths[1], "wgmma"))
    assert covered == set(KERNELS)
