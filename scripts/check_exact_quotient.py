"""Does the small-M quant kernel's fallback quotient (input_quant.cuh: quotient_rn) give
rn32(v / s) exactly? Checked in exact rational arithmetic on the CPU, each fp32 operation
modelled as exact-then-rn32 (fma: one rounding), y = rn32(1 / s) as __frcp_rn gives.

    python3 scripts/check_exact_quotient.py [--steps 0|1|2]

Inputs: 49 scales (random in [2^-80, 2^80], significands of all ones, a few fixed) x 400
values within 64 fp32 ulps of an FP8 rounding boundary times the scale, plus 100 random
values. Fifteenth session: 2 steps (the kernel's) 0 wrong of 24500, 1 step 0, no
correction 6336 (so the check can fail). About 5 s; tests/test_exact_quotient.py
runs it in CI.
"""
from fractions import Fraction as F
import argparse, random, struct, math

def rn32(x: F) -> F:
    """Round a rational to the nearest fp32 (ties to even), normal and subnormal range, no overflow handling."""
    if x == 0: return F(0)
    sign = -1 if x < 0 else 1
    a = abs(x)
    e = math.floor(math.log2(a.numerator) - math.log2(a.denominator))
    # fix e so that 2^e <= a < 2^(e+1)
    while F(2) ** e > a: e -= 1
    while F(2) ** (e + 1) <= a: e += 1
    e = max(e, -126)
    ulp = F(2) ** (e - 23)
    q = a / ulp
    n = q.numerator // q.denominator
    rem = q - n
    if rem > F(1, 2) or (rem == F(1, 2) and n % 2 == 1): n += 1
    return sign * n * ulp

def f32(x: float) -> F:
    return F(struct.unpack('f', struct.pack('f', x))[0])

def quotient(v: F, s: F, steps: int = 2) -> F:
    """quotient_rn's arithmetic: q0 = rn(v * y), then `steps` fma corrections."""
    y = rn32(1 / s)
    q = rn32(v * y)
    for _ in range(steps):
        q = rn32(rn32(v - q * s) * y + q)
    return q


def cases(n_scales: int = 40, near: int = 400, plain: int = 100, seed: int = 1):
    """(v, s) pairs: random scales in [2^-80, 2^80] plus fixed ones; per scale, `near`
    values within 64 ulps of an FP8 rounding boundary times s and `plain` random ones."""
    rng = random.Random(seed)
    scales = ([f32(2.0 ** rng.uniform(-80, 80)) for _ in range(n_scales)]
              + [f32((2 - 2**-23) * 2.0**e) for e in (-79, -3, 0, 5, 79)]
              + [F(1), F(3), f32(0.37), f32(7.1)])
    for s in scales:
        for _ in range(near):
            # a boundary: the midpoint between two 4-bit FP8 significands, times 2^(k-4)
            k = rng.randint(-11, 8)
            b = (rng.randint(16, 31) + F(1, 2)) * F(2) ** (k - 4)
            v = rn32(b * s * (1 + F(rng.randint(-64, 64), 2**24)))
            if v != 0:
                yield v, s
        for _ in range(plain):
            v = f32(rng.uniform(-1, 1) * 2.0 ** rng.uniform(-60, 60))
            if v != 0:
                yield v, s


def count_wrong(steps: int = 2, **kw) -> tuple[int, int]:
    """(cases, how many of them quotient() rounds differently from rn32(v / s))."""
    n = bad = 0
    for v, s in cases(**kw):
        n += 1
        bad += quotient(v, s, steps) != rn32(v / s)
    return n, bad


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    n, bad = count_wrong(ap.parse_args().steps)
    print(f"{n} cases, {bad} wrong")
