"""How fast can a kernel only *read* DRAM on this GPU, at the sizes of our decode GEMMs?

The decode targets of the speed issue are ratios to weight bytes / copy bandwidth. A
decode GEMM only reads its weights, and in pieces of 8-64 MiB, ramp-up and tail included.
This probe times a plain streaming read (Triton: 16-byte loads, a sum per program, one
store per program) as CUDA-graph replays over buffers that rotate through more than
three times the L2, so that every replay reads DRAM:

- one read of S MiB per kernel, for the sizes of our GEMMs' weights;
- two dependent reads back to back (the gate/up then down weights of one MLP).

    python3 scripts/read_ceiling.py [--json OUT]

Prints the best configuration per size in TB/s next to the 256 MiB device copy rate
(bytes read + written), the `copy` ceiling of the benchmark.
"""

from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.language as tl

from perf_probe import graph_time_us  # same directory: CUDA-graph replay timing


@triton.jit
def _read_kernel(src, out, n_words, BLOCK: tl.constexpr, ITERS: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    acc = tl.zeros([BLOCK], dtype=tl.int32)
    offs = tl.arange(0, BLOCK)
    for i in tl.range(0, ITERS):
        base = (i * nprog + pid).to(tl.int64) * BLOCK
        idx = base + offs
        acc += tl.load(src + idx, mask=idx < n_words, other=0, cache_modifier=".cg")
    tl.store(out + pid, tl.sum(acc, axis=0))


def read(buf: torch.Tensor, out: torch.Tensor, programs: int, block: int, warps: int) -> None:
    n = buf.numel()
    iters = triton.cdiv(n, programs * block)
    _read_kernel[(programs,)](buf, out, n, BLOCK=block, ITERS=iters, num_warps=warps)


def graph_us(steps, reps: int) -> float:
    """Microseconds per replay of `steps` (a list of callables), captured `reps` times."""
    return graph_time_us(lambda: [fn() for fn in steps], reps=reps, batches=7)


def buffers(mib: int, l2_bytes: int) -> list[torch.Tensor]:
    count = max(4, -(-3 * l2_bytes // (mib << 20)))
    return [torch.empty(mib << 18, dtype=torch.int32, device="cuda").random_(0, 1 << 20)
            for _ in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,16,32,56,64,96,112,256", help="MiB per read")
    ap.add_argument("--pairs", default="64+32,112+56", help="two reads back to back, MiB")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    sms, l2 = props.multi_processor_count, props.L2_cache_size
    src = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_bw = 2 * src.numel() / (graph_us([lambda: dst.copy_(src)], reps=10) * 1e-6)
    del src, dst
    print(f"{props.name}, {sms} SMs, L2 {l2 >> 20} MiB; copy 256 MiB: {copy_bw / 1e12:.3f} TB/s")
    out = torch.empty(sms * 64, dtype=torch.int32, device="cuda")
    configs = [(sms * w, b, nw) for w in (2, 4, 8) for b in (1024, 2048, 4096) for nw in (4, 8)]

    def best(bufs_list):
        """Best (us per list, config) of reading each list of buffers in turn."""
        res = []
        for programs, block, warps in configs:
            steps = [lambda bl=bl: [read(b, out, programs, block, warps) for b in bl]
                     for bl in bufs_list]
            res.append((graph_us(steps, reps=2) / len(steps), (programs, block, warps)))
        return min(res)

    result = {"device": props.name, "copy_tb_s": copy_bw / 1e12, "single": [], "pairs": []}
    for mib in [int(v) for v in args.sizes.split(",")]:
        bufs = buffers(mib, l2)
        t, cfg = best([[b] for b in bufs])
        bw = (mib << 20) / (t * 1e-6)
        result["single"].append({"mib": mib, "us": t, "tb_s": bw / 1e12, "config": cfg})
        print(f"read {mib:4d} MiB: {t:8.2f} us  {bw / 1e12:.3f} TB/s  "
              f"({100 * bw / copy_bw:5.1f}% of copy)  programs/block/warps {cfg}", flush=True)
        del bufs
    for pair in args.pairs.split(","):
        a, b = (int(v) for v in pair.split("+"))
        bufs_a, bufs_b = buffers(a, l2 // 2), buffers(b, l2 // 2)
        n = min(len(bufs_a), len(bufs_b))
        t, cfg = best([[bufs_a[i], bufs_b[i]] for i in range(n)])
        bw = ((a + b) << 20) / (t * 1e-6)
        result["pairs"].append({"mib": [a, b], "us": t, "tb_s": bw / 1e12, "config": cfg})
        print(f"read {a} then {b} MiB: {t:8.2f} us  {bw / 1e12:.3f} TB/s  "
              f"({100 * bw / copy_bw:5.1f}% of copy)  {cfg}", flush=True)
        del bufs_a, bufs_b
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
