# Call 4 (~3 min; carry .gpu-tune/{strace,etrace}/$T): span traces
# (1) of the persistent wgmma kernel at large M (where a CTA's cycles go: epilogues, their
# math, stage waits, wgmma waits; the producer's waits for free stages), strace (= HEAD +
# SFM_PHASE_TRACE, 29th session) and etrace (eparam + trace); (2) of the swap-AB kernel at
# decode M (29th session: its consumer's epilogues, full-stage waits, wgmma waits over all
# tiles) for the GeGLU / SwiGLU M = 50 decode-floor points and the dense M = 50 / 128.
# First run of both span kinds: compare the traced kernels' times with kernel_grids.
# Ran in the thirtieth session: results/phase_trace_spans_h200_2026-12-05_thirtieth.txt
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
for b in strace etrace; do for kind in gelu gelu2 geglu; do
  python3 scripts/phase_trace.py .gpu-tune/$b/$T --kind $kind --m 2048,8192 --reps 8 --json $OUT/trace_${b}_$kind.json
done; done > $OUT/traces.txt 2>&1
for kind in geglu swiglu gelu; do
  python3 scripts/phase_trace.py .gpu-tune/strace/$T --kind $kind --m 16,50,128 --reps 20 --json $OUT/swap_trace_$kind.json
done > $OUT/swap_traces.txt 2>&1
cat $OUT/traces.txt $OUT/swap_traces.txt
