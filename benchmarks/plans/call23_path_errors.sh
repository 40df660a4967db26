# Call 23 (ran in the thirty-eighth session, H100, 20 s, on gated4, that session's build then;
# carry .whl, .gpu-tune/gated4/$T): call 22's one failure,
# test_auto_l2_resident_gated_decode[896x4864, M = 4] at relative error 1.131e-2 (the
# contract's bound 1e-2), on the gated MLP's new swap-AB route. Is the swap-AB kernel
# further from the reference than the warp and register-sourced kernels on the same
# draws, or is that draw unlucky for every path? scripts/path_error_probe.py: 40 draws x
# 2 activations per point, the three small gated shapes and GeGLU (whose swap-AB route
# from DRAM is older), then the failing test's own seed (9300 + 4 + 896).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/gated4/$T
P=auto,warp_stream/warp_stream,tensor_core_stream/tensor_core_stream,tensor_core_swap_ab/tensor_core_swap_ab
python3 scripts/path_error_probe.py --build $H --shapes 896x4864x896,1152x6912x1152,576x1536x576 --m 4,16,64 \
  --paths $P --json $OUT/path_errors.json > $OUT/path_errors.txt 2>&1
cat $OUT/path_errors.txt
python3 scripts/path_error_probe.py --build $H --shapes 2048x16384x2048 --m 4,16 --paths auto,tensor_core_tma/tensor_core_tma \
  --json $OUT/path_errors_geglu.json > $OUT/path_errors_geglu.txt 2>&1
cat $OUT/path_errors_geglu.txt
python3 scripts/path_error_probe.py --build $H --shapes 896x4864x896 --m 4 --paths $P --seeds 1 --seed0 10200 > $OUT/path_errors_test_seed.txt 2>&1
cat $OUT/path_errors_test_seed.txt
