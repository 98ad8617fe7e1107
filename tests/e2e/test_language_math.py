"""Elementwise math end to end on every backend, against torch / numpy.

erf, tanh, sigmoid, fma (one rounding), clamp, true division and div_rn, integer
// and % with C (truncating) semantics, bitwise ops and shifts, umulhi, bitcast,
casts, and f16/bf16 arithmetic rounding exactly like torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl

NP_ID = lambda d: np.dtype(d).name  # noqa: E731 - readable test ids

N = 64  # one block of 64 lanes per test; inputs are exactly N long


@pypto.jit
def transcendental(x, erf_o, tanh_o, sig_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    v = pl.load(x + o)
    pl.store(erf_o + o, pl.erf(v))
    pl.store(tanh_o + o, pl.tanh(v))
    pl.store(sig_o + o, pl.sigmoid(v))


TOL = {
    torch.float32: (2e-6, 1e-6),
    torch.float64: (1e-10, 1e-12),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (8e-3, 8e-3),
}


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_erf_tanh_sigmoid(backend, dtype):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(N - 6) * 3, torch.tensor([0.0, -0.0, 30.0, -30.0, 100.0, -100.0])])
    x = x.to(dtype)
    outs = [torch.zeros(N, dtype=dtype) for _ in range(3)]
    transcendental[(1,)](x, *outs, BLOCK=N, backend=backend)
    wide = x.double()  # every op computes in (at least) f32 and rounds to the type
    rtol, atol = TOL[dtype]
    for name, got, ref in zip(
        ["erf", "tanh", "sigmoid"],
        outs,
        [torch.erf(wide), torch.tanh(wide), torch.sigmoid(wide)],
        strict=True,
    ):
        torch.testing.assert_close(
            got.double(), ref.to(dtype).double(), rtol=rtol, atol=atol, msg=name
        )


@pypto.jit
def fma_kernel(a, b, c, out, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    pl.store(out + o, pl.fma(pl.load(a + o), pl.load(b + o), pl.load(c + o)))


def test_fma_rounds_once(backend):
    # (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24 exactly; a*b rounded to f32 first would lose 2^-24
    a = torch.full((N,), 1.0 + 2.0**-12)
    c = torch.full((N,), -1.0)
    a[1:] = torch.randn(N - 1)
    b = a.clone()
    c[1:] = torch.randn(N - 1)
    out = torch.zeros(N)
    fma_kernel[(1,)](a, b, c, out, BLOCK=N, backend=backend)
    assert out[0].item() == 2.0**-11 + 2.0**-24
    ref = (a.double() * b.double() + c.double()).float()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pypto.jit
def clamp_div_kernel(x, y, lo, hi, clamp_o, clampb_o, div_o, divrn_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    a = pl.load(x + o)
    b = pl.load(y + o)
    pl.store(clamp_o + o, pl.clamp(a, lo, hi))  # scalar bounds
    pl.store(clampb_o + o, pl.clamp(a, -pl.abs(b), pl.abs(b)))  # block bounds
    pl.store(div_o + o, a / b)
    pl.store(divrn_o + o, pl.div_rn(a, b))


def test_clamp_and_division(backend):
    torch.manual_seed(1)
    x, y = torch.randn(N) * 2, torch.randn(N)
    outs = [torch.zeros(N) for _ in range(4)]
    clamp_div_kernel[(1,)](x, y, -0.5, 0.75, *outs, BLOCK=N, backend=backend)
    assert torch.equal(outs[0], torch.clamp(x, -0.5, 0.75))
    assert torch.equal(outs[1], torch.clamp(x, -y.abs(), y.abs()))
    assert torch.equal(outs[2], x / y)  # IEEE division, correctly rounded
    assert torch.equal(outs[3], x / y)


@pypto.jit
def int_div_kernel(x, y, q_o, r_o, t_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    a = pl.load(x + o)
    b = pl.load(y + o)
    pl.store(q_o + o, a // b)
    pl.store(r_o + o, a % b)
    pl.store(t_o + o, a / b)  # true division of integers gives float32


def _trunc_div(a, b):
    """C's a / b and a % b on int64 arrays (b == 0 gives 0 in pypto's semantics)."""
    safe = np.where(b == 0, 1, b)
    q = np.sign(a) * np.sign(safe) * (np.abs(a) // np.abs(safe))
    q = np.where(b == 0, 0, q)
    r = np.where(b == 0, 0, a - q * safe)
    return q, r


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.int64, np.uint32], ids=NP_ID)
def test_int_floordiv_mod_truncate(backend, dtype):
    rng = np.random.default_rng(2)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -(2**40)), min(info.max, 2**40)
    a = rng.integers(lo, hi, N, dtype=np.int64, endpoint=True)
    b = rng.integers(max(lo, -50), min(hi, 50), N, dtype=np.int64, endpoint=True)
    a[:4], b[:4] = [7, -7, 7, -7], [2, 2, -2, -2]
    if info.min < 0:
        a[4], b[4] = info.min, -1  # INT_MIN / -1 == INT_MIN, remainder 0
    a[5], b[5] = 13, 0  # division by zero gives 0
    a, b = a.astype(dtype), b.astype(dtype)
    q, r, t = np.zeros(N, dtype), np.zeros(N, dtype), np.zeros(N, np.float32)
    int_div_kernel[(1,)](a, b, q, r, t, BLOCK=N, backend=backend)
    eq, er = _trunc_div(a.astype(np.int64), b.astype(np.int64))
    if info.min < 0:
        eq[4] = info.min  # wraps
    np.testing.assert_array_equal(q, eq.astype(dtype))
    np.testing.assert_array_equal(r, er.astype(dtype))
    nz = b != 0
    np.testing.assert_array_equal(t[nz], a[nz].astype(np.float32) / b[nz].astype(np.float32))


@pypto.jit
def float_mod_kernel(x, y, r_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    pl.store(r_o + o, pl.load(x + o) % pl.load(y + o))


def test_float_mod_takes_the_sign_of_the_dividend(backend):
    x = torch.tensor([5.5, -5.5, 5.5, -5.5] * (N // 4))
    y = torch.tensor([2.0, 2.0, -2.0, -2.0] * (N // 4))
    x[4:] = torch.randn(N - 4) * 10
    r = torch.zeros(N)
    float_mod_kernel[(1,)](x, y, r, BLOCK=N, backend=backend)
    assert torch.equal(r, torch.fmod(x, y))


@pypto.jit
def bitwise_kernel(x, y, s, and_o, or_o, xor_o, not_o, shl_o, shr_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    a = pl.load(x + o)
    b = pl.load(y + o)
    k = pl.load(s + o)
    pl.store(and_o + o, a & b)
    pl.store(or_o + o, a | b)
    pl.store(xor_o + o, a ^ b)
    pl.store(not_o + o, ~a)
    pl.store(shl_o + o, a << k)
    pl.store(shr_o + o, a >> k)  # arithmetic for signed types, logical for unsigned


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int8, np.uint64, np.int64], ids=NP_ID)
def test_bitwise_and_shifts(backend, dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    bits = info.bits
    a = rng.integers(info.min, info.max, N, dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, N, dtype=dtype, endpoint=True)
    k = rng.integers(0, bits, N).astype(dtype)  # counts in range
    if info.min < 0:
        a[:4] = [-1, info.min, -5, 5]
    outs = [np.zeros(N, dtype) for _ in range(6)]
    bitwise_kernel[(1,)](a, b, k, *outs, BLOCK=N, backend=backend)
    np.testing.assert_array_equal(outs[0], a & b)
    np.testing.assert_array_equal(outs[1], a | b)
    np.testing.assert_array_equal(outs[2], a ^ b)
    np.testing.assert_array_equal(outs[3], ~a)
    np.testing.assert_array_equal(outs[4], np.left_shift(a, k))
    np.testing.assert_array_equal(outs[5], np.right_shift(a, k))


def test_shift_count_wraps_modulo_the_width(backend):
    a = np.arange(1, N + 1, dtype=np.int32) * -3
    k = np.full(N, 33, dtype=np.int32)  # pypto semantics: 33 % 32 == 1
    outs = [np.zeros(N, np.int32) for _ in range(6)]
    bitwise_kernel[(1,)](a, a, k, *outs, BLOCK=N, backend=backend)
    np.testing.assert_array_equal(outs[4], a << 1)
    np.testing.assert_array_equal(outs[5], a >> 1)


@pypto.jit
def umulhi_kernel(x, y, out, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    pl.store(out + o, pl.umulhi(pl.load(x + o), pl.load(y + o)))


def umulhi_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Triton's umulhi: the high half of the exact product of the operands' bits taken as
    UNSIGNED, for signed types too (``__nv_umulhi``), wrapped back into the dtype."""
    bits = np.iinfo(a.dtype).bits
    mask = (1 << bits) - 1
    hi = [((int(p) & mask) * (int(q) & mask)) >> bits for p, q in zip(a, b, strict=True)]
    wrapped = [h - (1 << bits) if a.dtype.kind == "i" and h >> (bits - 1) else h for h in hi]
    return np.array(wrapped, dtype=a.dtype)


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.uint64, np.int64], ids=NP_ID)
def test_umulhi(backend, dtype):
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, N, dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, N, dtype=dtype, endpoint=True)
    edges = [(info.max, info.max), (info.min, info.max), (info.min, info.min), (-1, 1),
             (-1, -1), (-1, info.min), (-2, 3), (info.max, -1), (0, -1), (7, -7)]  # fmt: skip
    for i, (p, q) in enumerate(edges):  # -1 wraps to the max for unsigned types
        a[i], b[i] = np.array([p % 2**info.bits, q % 2**info.bits], np.uint64).astype(dtype)
    out = np.zeros(N, dtype)
    umulhi_kernel[(1,)](a, b, out, BLOCK=N, backend=backend)
    np.testing.assert_array_equal(out, umulhi_ref(a, b))
    if info.min < 0:  # 0xFF..F * 0xF..F = 0xF..FE_0..01 and 0xFF..F * 1 < 2**bits
        assert out[3] == 0 and out[4] == -2


@pypto.jit
def half_arith(x, y, add_o, mul_o, div_o, sqrt_o, exp_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    a = pl.load(x + o)
    b = pl.load(y + o)
    pl.store(add_o + o, a + b)
    pl.store(mul_o + o, a * b - a)  # two ops: rounds after each, as torch
    pl.store(div_o + o, a / b)
    pl.store(sqrt_o + o, pl.sqrt(pl.abs(a)))
    pl.store(exp_o + o, pl.exp(a))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_arithmetic_rounds_like_torch(backend, dtype):
    torch.manual_seed(5)
    x = (torch.randn(N) * 3).to(dtype)
    y = (torch.rand(N) + 0.1).to(dtype)
    outs = [torch.zeros(N, dtype=dtype) for _ in range(5)]
    half_arith[(1,)](x, y, *outs, BLOCK=N, backend=backend)
    assert torch.equal(outs[0], x + y)
    assert torch.equal(outs[1], x * y - x)
    assert torch.equal(outs[2], x / y)
    assert torch.equal(outs[3], torch.sqrt(x.abs()))
    # exp is not correctly rounded in every libm: allow one unit in the last place
    torch.testing.assert_close(
        outs[4], torch.exp(x), rtol=2**-7 if dtype == torch.bfloat16 else 2**-10, atol=0
    )


@pypto.jit
def cast_kernel(x, bf_o, h_o, i_o, b_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    v = pl.load(x + o)
    pl.store(bf_o + o, v.to(pl.bfloat16))
    pl.store(h_o + o, pl.cast(v, pl.float16))
    pl.store(i_o + o, v.to(pl.int32))  # truncates toward zero
    pl.store(b_o + o, v.to(pl.int1))  # x != 0


def test_casts_round_to_nearest_even(backend):
    rng = np.random.default_rng(6)
    bits = rng.integers(0x3F000000, 0x47000000, N, dtype=np.uint32)
    bits[:16] = (bits[:16] & 0xFFFF0000) | 0x8000  # exact bf16 ties
    bits[16:24] = (bits[16:24] & 0xFFFFE000) | 0x1000  # exact f16 ties
    x = torch.from_numpy(bits.view(np.float32).copy())
    x[24:28] = torch.tensor([-2.7, 2.7, -0.0, 0.0])
    outs = [
        torch.zeros(N, dtype=torch.bfloat16),
        torch.zeros(N, dtype=torch.float16),
        torch.zeros(N, dtype=torch.int32),
        torch.zeros(N, dtype=torch.bool),
    ]
    cast_kernel[(1,)](x, *outs, BLOCK=N, backend=backend)
    assert torch.equal(outs[0], x.to(torch.bfloat16))
    assert torch.equal(outs[1], x.to(torch.float16))
    assert torch.equal(outs[2], x.to(torch.int32))
    assert torch.equal(outs[3], x != 0)


@pypto.jit
def int_to_float(x, f_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    pl.store(f_o + o, pl.load(x + o).to(pl.float32))


def test_int_to_float_rounds_to_nearest(backend):
    x = torch.randint(-(2**40), 2**40, (N,), dtype=torch.int64)
    x[0], x[1], x[2] = 2**24 + 1, 2**24 + 3, -(2**24) - 1  # ties and non-ties
    f = torch.zeros(N)
    int_to_float[(1,)](x, f, BLOCK=N, backend=backend)
    assert torch.equal(f, x.to(torch.float32))


@pypto.jit
def bitcast_kernel(x, u_o, back_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    v = pl.load(x + o)
    u = v.to(pl.uint32, bitcast=True)
    pl.store(u_o + o, u)
    pl.store(back_o + o, pl.cast(u ^ 0x80000000, pl.float32, bitcast=True))  # flips the sign


def test_bitcast(backend):
    x = np.random.default_rng(7).standard_normal(N).astype(np.float32)
    u, back = np.zeros(N, np.uint32), np.zeros(N, np.float32)
    bitcast_kernel[(1,)](x, u, back, BLOCK=N, backend=backend)
    np.testing.assert_array_equal(u, x.view(np.uint32))
    np.testing.assert_array_equal(back, -x)


@pypto.jit
def nan_minmax(x, y, mx_o, mn_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    a = pl.load(x + o)
    b = pl.load(y + o)
    pl.store(mx_o + o, pl.maximum(a, b))
    pl.store(mn_o + o, pl.minimum(a, b))


def test_maximum_minimum_propagate_nan(backend):
    x = torch.randn(N)
    y = torch.randn(N)
    x[::3] = float("nan")
    y[1::5] = float("nan")
    x[2], y[2] = float("inf"), -float("inf")
    mx, mn = torch.zeros(N), torch.zeros(N)
    nan_minmax[(1,)](x, y, mx, mn, BLOCK=N, backend=backend)
    torch.testing.assert_close(mx, torch.maximum(x, y), equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(mn, torch.minimum(x, y), equal_nan=True, rtol=0, atol=0)


@pypto.jit
def half_to_half(h, b, h2b_o, b2h_o, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    pl.store(h2b_o + o, pl.load(h + o).to(pl.bfloat16))
    pl.store(b2h_o + o, pl.load(b + o).to(pl.float16))  # large bf16 values overflow to inf


def test_casts_between_half_types(backend):
    torch.manual_seed(8)
    h = (torch.randn(N) * 1000).to(torch.float16)
    b = (torch.randn(N) * 1000).to(torch.bfloat16)
    b[:4] = torch.tensor([1e5, -1e5, 1e-8, 65520.0])
    h2b, b2h = torch.zeros(N, dtype=torch.bfloat16), torch.zeros(N, dtype=torch.float16)
    half_to_half[(1,)](h, b, h2b, b2h, BLOCK=N, backend=backend)
    assert torch.equal(h2b, h.to(torch.bfloat16))
    assert torch.equal(b2h, b.to(torch.float16))
