#!/usr/bin/env bash
# Rebuilds, on the CPU machine, every build the prepared GPU calls in this folder carry
# (.gpu-tune/ is local and git-ignored, so a new machine starts without them):
#   bash benchmarks/plans/rebuild_variants.sh [NAME ...]      (default: all; ~80 s each)
# Each variant is this checkout's working tree with its experiment patch applied
# (benchmarks/results/*_patch_*.patch) and its macros prepended by
# scripts/variant_build.sh; kernels-src/ is restored after each. Needs a clean
# kernels-src/ (it refuses otherwise: the restore would lose your edits).
#   head    the release kernels (this checkout's; since the thirtieth session with
#           pipelined promotion in the 8-stage swap-AB kernels)
#   eparam  experiment 1: epilogue parameters in shared-memory slots
#   astage  experiment 2: aligned dynamic smem (a fifth stage for 192-row tiles)
#   afg3    experiment 2 with a first wgmma group of 3 K tiles
#   esg     experiment 3: the next tile's second wgmma group before the epilogue
#   aesg    experiments 2 and 3
#   hidact / eidact  head / eparam with the identity activation (a probe: wrong outputs)
#   strace / etrace  head / eparam with SFM_PHASE_TRACE (span traces)
#   spp     experiment 4: pipelined promotion in the swap-AB kernel, token tiles <= 128
#           (the thirtieth session's A/B; that knob is now the default and the deep-ring
#           kernels are left out in the code, so spp now builds what head builds)
#   l2r40   head with the L2-resident GEMMs on the swap-AB kernel from 40 tokens again
#           (the routing before the thirtieth session's, and before the thirty-first's
#           SigLIP down GEMM from 8, and the thirty-eighth's gated rule; = the
#           thirtieth session's fin2 build)
#   usk     experiment 5 (thirty-first session): a dense up GEMM on the swap-AB kernel
#           at M <= 64 splits K over a cluster of 2-3 CTAs per weight tile (GELU after
#           the reduction over distributed shared memory)
#   usk192  usk with the split up to 192 tokens (auto keeps the dense up GEMM on the
#           wgmma kernel above 64: forced onto the swap-AB kernel in call8's A/B)
#   eupk    this checkout's kernels (= head once rebuilt after the thirty-sixth session,
#           which limited the dense up GEMM's early swap-AB path to K <= 1152; call 12
#           compares it with a head built before)
#   half    experiment 6 (thirty-seventh session): the dense up GEMM on the swap-AB kernel
#           at 64 weight rows per CTA up to 64 tokens, the two consumer warpgroups
#           splitting K (SwapPlan's HALF); slower for 1152x4304 (call 15), not landed
#   dchain  experiment 7 (thirty-seventh session; call 17: slower): the 8-stage swap-AB
#           kernels (dense up GEMM, down GEMM over a workspace) at token tiles up to 64
#           split each K tile's four k32 wgmmas over two accumulators (two chains of 2);
#           a macro since the thirty-ninth session (SFM_SWAP_DUAL_CHAIN_TOKENS), its
#           patch (results/dual_chain_patch_*) kept as the record of call 17's build
#   small4  call 20's build (and call 22's baseline): the L2-resident GEMMs at 4-8 tokens on the swap-AB kernel
#           (SFM_SWAP_MIN_L2_SMALL_TOKENS 4, measured faster, left off for precision) and
#           no gated-MLP rule (SFM_SWAP_L2_GATED 0)
#   nosmall the routing before the thirty-eighth session (no window, no gated rule); call 20
#   gated4  call 22's build: the window at 4-8 and the gated-MLP rule from 4 tokens
#           (SFM_SWAP_MIN_L2_GATED_TOKENS 4; head keeps 9 for precision)
#   fine16  experiment 8 (thirty-eighth session): each k32 wgmma of a K tile in its own
#           partial sum at swap-AB token tiles <= 16 in every swap-AB kernel
#           (SFM_SWAP_FINE_PROMOTE_DEEP_ONLY 0); call 24: mean error -30%, dense 1152x4304
#           +0.37 us at M = 16. Head since the thirty-ninth session does this in the
#           deep-ring kernels only (fine16d of call 25, landed; its patch,
#           results/fine_promotion_patch_2026-12-05_thirtyeighth.patch, is in the tree)
#   fine16d what head builds since then (call 25's name for it)
#   prev39  head before the thirty-ninth session's two landings (fine promotion off, the
#           gated gate/up GEMM's swap-AB rules of call 26 off); call 27's baseline
#   sx64    experiment 9 (thirty-ninth session): the dense up GEMM's tall 64-row tiles at
#           one token tile (M = 65-128) in x-sharing pairs (SFM_WGMMA_SHARE_X_DENSE64)
#   ered    experiment 10 (thirty-ninth session): the swap-AB down GEMM over a workspace lets
#           its reduce kernel launch as it starts where the chain does not trigger early
#           (L2-resident weights; SFM_SWAP_EARLY_REDUCE)
#   coarse  head before that landing (SFM_SWAP_FINE_PROMOTE_TOKENS 0: one chain of four
#           k32 wgmmas per K tile everywhere)
# Not a kernel build, and not in the default list: `probes` compiles the standalone
# probes that calls carry as .gpu-tune/probes (call 14: benchmarks/split_h_probe.cu).
set -euo pipefail
cd "$(dirname "$0")/../.."
R=benchmarks/results
P1=$R/epilogue_param_slots_patch_2026-12-04_twentyeighth.patch
P2=$R/aligned_smem_patch_2026-12-04_twentyeighth.patch
P3=$R/early_second_group_patch_2026-12-04_twentyeighth.patch
PI=$R/identity_activation_probe_patch_h200_2026-12-04_twentyseventh.patch
PU=$R/up_split_cluster_patch_2026-12-05_thirtyfirst.patch
PH=$R/half_rows_patch_2026-12-05_thirtyseventh.patch
T='#define SFM_PHASE_TRACE 1'
I='#define SFM_PROBE_IDENTITY_ACTIVATION 1'
A='#define SFM_WGMMA_ALIGNED_SMEM 1'
S='#define SFM_WGMMA_EARLY_SECOND_GROUP 1'
F='#define SFM_WGMMA_FIRST_GROUP_TILES 3'
PP='#define SFM_SWAP_PIPELINED_PROMOTE_TOKENS 128'
L1='#define SFM_SWAP_MIN_L2_TOKENS 40'
L2='#define SFM_SWAP_MIN_L2_EARLY_TOKENS 40'
U192='#define SFM_SWAP_UP_SPLIT_TOKENS 192'
W4='#define SFM_SWAP_MIN_L2_SMALL_TOKENS 4'
G4='#define SFM_SWAP_MIN_L2_GATED_TOKENS 4'
NG='#define SFM_SWAP_L2_GATED 0'
DC='#define SFM_SWAP_DUAL_CHAIN_TOKENS 64'
FA='#define SFM_SWAP_FINE_PROMOTE_DEEP_ONLY 0'
FC='#define SFM_SWAP_FINE_PROMOTE_TOKENS 0'
GU64='#define SFM_SWAP_MAX_L2_GATED_UP_TOKENS 64'
NF100='#define SFM_SWAP_NEARLY_FILLS_PERCENT 100'
SX64='#define SFM_WGMMA_SHARE_X_DENSE64 1'
ER='#define SFM_SWAP_EARLY_REDUCE 1'

if ! git diff --quiet -- kernels-src; then
  echo "kernels-src/ has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
trap 'git checkout -q -- kernels-src' EXIT

# variant NAME "PATCH ..." [MACRO ...]
variant() {
  local name=$1 patches=$2
  shift 2
  echo "== $name (patches: ${patches:-none}; macros: $*)" >&2
  for p in $patches; do git apply "$p"; done
  local t0=$SECONDS
  bash scripts/variant_build.sh "$name" "$@" > "/tmp/rebuild-$name.log" 2>&1 ||
    { echo "build of $name failed: /tmp/rebuild-$name.log" >&2; exit 1; }
  git checkout -q -- kernels-src
  echo "   built .gpu-tune/$name in $((SECONDS - t0)) s" >&2
}

all=(head eparam astage afg3 esg aesg hidact eidact strace etrace spp l2r40 usk usk192 eupk half dchain small4 nosmall gated4 fine16 fine16d coarse prev39 sx64 ered)
for name in "${@:-${all[@]}}"; do
  case $name in
    head) variant head "" ;;
    eparam) variant eparam "$P1" ;;
    astage) variant astage "$P2" "$A" ;;
    afg3) variant afg3 "$P2" "$A" "$F" ;;
    esg) variant esg "$P3" "$S" ;;
    aesg) variant aesg "$P2 $P3" "$A" "$S" ;;
    hidact) variant hidact "$PI" "$I" ;;
    eidact) variant eidact "$P1 $PI" "$I" ;;
    strace) variant strace "" "$T" ;;
    etrace) variant etrace "$P1" "$T" ;;
    spp) variant spp "" "$PP" ;;
    l2r40) variant l2r40 "" "$L1" "$L2" "$NG" ;;
    usk) variant usk "$PU" ;;
    usk192) variant usk192 "$PU" "$U192" ;;
    eupk) variant eupk "" ;;
    half) variant half "$PH" ;;
    dchain) variant dchain "" "$DC" ;;
    small4) variant small4 "" "$W4" "$NG" ;;
    nosmall) variant nosmall "" "$NG" ;;
    gated4) variant gated4 "" "$W4" "$G4" ;;
    fine16) variant fine16 "" "$FA" ;;
    fine16d) variant fine16d "" ;;
    coarse) variant coarse "" "$FC" ;;
    sx64) variant sx64 "" "$SX64" ;;
    ered) variant ered "" "$ER" ;;
    prev39) variant prev39 "" "$FC" "$GU64" "$NF100" ;;
    probes)
      mkdir -p .gpu-tune/probes
      nvcc -std=c++17 -O3 -arch=sm_90a -o .gpu-tune/probes/split_h_probe benchmarks/split_h_probe.cu
      echo "   built .gpu-tune/probes/split_h_probe" >&2 ;;
    *) echo "unknown variant $name; known: ${all[*]} probes" >&2; exit 2 ;;
  esac
done
