# Call 24 (~4 min; carry .whl, .gpu-tune/{head,fine16}/$T): (1) the kernel and registry
# suites on head (the gated-MLP rule from 9 tokens, the 4-8 window off for precision);
# (2) experiment 8, fine16 = head with SFM_SWAP_FINE_PROMOTE_TOKENS 16 (each k32 wgmma of a
# K tile into its own partial sum at token tiles <= 16, promoted into fp32 together):
# does it bring the swap-AB kernel's error against the fp32 reference down towards the
# warp kernel's (call 23: 4e-3 against 5e-5 mean; over 1e-2 on 2 of 80 draws at 576x1536
# M = 4), and at what speed (forced swap-AB and auto, whole MLPs, 7 rounds)? Then the
# swap-AB subset of the kernel suite and memcheck on fine16.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; F=.gpu-tune/fine16/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head timeout 200 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py
for b in head fine16; do
  python3 scripts/path_error_probe.py --build .gpu-tune/$b/$T --shapes 576x1536x576,896x4864x896 --m 4,8,16 \
    --paths tensor_core_swap_ab/tensor_core_swap_ab --json $OUT/path_errors_$b.json > $OUT/path_errors_$b.txt 2>&1
  python3 scripts/path_error_probe.py --build .gpu-tune/$b/$T --shapes 2048x16384x2048 --m 1,4,16 \
    --paths auto --json $OUT/path_errors_geglu_$b.json > $OUT/path_errors_geglu_$b.txt 2>&1
  cat $OUT/path_errors_$b.txt $OUT/path_errors_geglu_$b.txt
done
python3 scripts/mlp_ab.py --kinds geglu,swiglu,gelu,geglu_896_4864 --m 1,4,8,16 --rounds 7 \
  $H $F $H:tensor_core_swap_ab/tensor_core_swap_ab $F:tensor_core_swap_ab/tensor_core_swap_ab --json $OUT/ab_fine.json > $OUT/ab_fine.txt 2>&1
cat $OUT/ab_fine.txt | grep -v "^#"
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_fine timeout 120 bash scripts/gpu_check.sh $F tests/test_kernels_gpu.py -k "swap or gated_decode or auto_paths"
bash scripts/memcheck.sh $F fine --kinds geglu,gelu,geglu_896_4864 --paths auto,tensor_core_swap_ab/tensor_core_swap_ab --m 4,16
