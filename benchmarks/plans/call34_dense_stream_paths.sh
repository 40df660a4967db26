# Call 34 (thirty-ninth session; ~1 min; carry .whl, .gpu-tune/head/$T): the dense towers at
# 8-64 tokens with either GEMM forced onto the weight-streaming kernel (thin 16-64-row
# tiles over the whole K, one per SM, x resident in shared memory: no K split, so the
# down GEMM needs no reduce kernel; call 28 had each of auto's CTAs pull 78-212 KB, a
# streaming CTA pulls 37-69 KB) or the down GEMM onto the register-sourced kernel or the
# swap-AB kernel reduced in clusters: whole MLPs, 7 rounds, contract-checked.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768 --m 8,16,24,32,50,64 --rounds 7 \
  $H $H:weight_stream/auto $H:auto/weight_stream $H:weight_stream/weight_stream \
  $H:auto/tensor_core_stream $H:auto/tensor_core_swap_ab_cluster \
  --json $OUT/ab_dense_stream.json > $OUT/ab_dense_stream.txt 2>&1
tail -3 $OUT/ab_dense_stream.txt
python3 scripts/ab_verdict.py $OUT/ab_dense_stream.json --json $OUT/ab_dense_stream_verdict.json | tail -100
