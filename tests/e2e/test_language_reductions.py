"""Reductions and scans end to end on every backend, against torch.

sum / max / min / argmax / argmin along each axis and over everything, keep_dims,
max(..., return_indices=True), cumsum / cumprod (and reverse), Triton's result dtypes
(sum of f16 gives f32, of int8 gives i32), masked-out lanes, 1-element / 1xN / Nx1
blocks and NaN / inf propagation.
"""

from __future__ import annotations

import math

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl


@pypto.jit
def reduce_axis(
    x,
    s_out,
    mx_out,
    mn_out,
    amx_out,
    amn_out,
    M,
    N,
    BM: pl.constexpr,
    BN: pl.constexpr,
    AXIS: pl.constexpr,
):
    rm = pl.arange(0, BM)
    rn = pl.arange(0, BN)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    ptrs = x + rm[:, None] * N + rn[None, :]
    t0 = pl.load(ptrs, mask=mask, other=0.0)
    tlo = pl.load(ptrs, mask=mask, other=-float("inf"))
    thi = pl.load(ptrs, mask=mask, other=float("inf"))
    if AXIS == 0:
        o = rn
        om = rn < N
    else:
        o = rm
        om = rm < M
    pl.store(s_out + o, pl.sum(t0, axis=AXIS), mask=om)
    pl.store(mx_out + o, pl.max(tlo, axis=AXIS), mask=om)
    pl.store(mn_out + o, pl.min(thi, axis=AXIS), mask=om)
    pl.store(amx_out + o, pl.argmax(tlo, axis=AXIS), mask=om)
    pl.store(amn_out + o, pl.argmin(thi, axis=AXIS), mask=om)


def _run_reduce_axis(x, axis, bm, bn, backend):
    m, n = x.shape
    size = n if axis == 0 else m
    outs = [torch.full((size,), -5.0) for _ in range(3)]
    outs += [torch.full((size,), -5, dtype=torch.int32) for _ in range(2)]
    reduce_axis[(1,)](x, *outs, m, n, BM=bm, BN=bn, AXIS=axis, backend=backend)
    return outs


def _check_reduce_axis(x, axis, outs):
    s, mx, mn, amx, amn = outs
    torch.testing.assert_close(s, x.sum(axis), msg="sum", equal_nan=True)
    torch.testing.assert_close(mx, x.amax(axis), msg="max", equal_nan=True)
    torch.testing.assert_close(mn, x.amin(axis), msg="min", equal_nan=True)
    assert torch.equal(amx, x.argmax(axis).to(torch.int32)), "argmax"
    assert torch.equal(amn, x.argmin(axis).to(torch.int32)), "argmin"


SHAPES = [  # (M, N, BM, BN): exact blocks of edge shapes, and a masked block
    (1, 1, 1, 1),
    (1, 7, 1, 7),
    (6, 1, 6, 1),
    (5, 33, 5, 33),
    (5, 33, 8, 40),
]


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("m,n,bm,bn", SHAPES, ids=lambda v: str(v))
def test_reduce_along_axis(backend, axis, m, n, bm, bn):
    torch.manual_seed(m * 100 + n)
    x = torch.randn(m, n)
    _check_reduce_axis(x, axis, _run_reduce_axis(x, axis, bm, bn, backend))


def test_argmax_ties_pick_the_first(backend):
    x = torch.randint(0, 3, (5, 33)).float()  # many ties
    _check_reduce_axis(x, 1, _run_reduce_axis(x, 1, 8, 40, backend))
    _check_reduce_axis(x, 0, _run_reduce_axis(x, 0, 8, 40, backend))


def test_nan_and_inf_propagate(backend):
    nan, inf = math.nan, math.inf
    x = torch.randn(5, 33)
    x[0, 3] = nan  # NaN in a row: sum/max/min NaN, argmax/argmin point at it
    x[1, 4] = inf
    x[2, 5], x[2, 6] = inf, -inf  # sum is NaN
    x[3, 7], x[3, 30] = -inf, nan
    outs = _run_reduce_axis(x, 1, 8, 40, backend)
    s, mx, mn, amx, amn = outs
    torch.testing.assert_close(s, x.sum(1), equal_nan=True)
    _check_reduce_axis(x, 1, outs)
    assert math.isnan(mx[0]) and math.isnan(mn[0]) and amx[0] == 3 and amn[0] == 3
    assert mx[1] == inf and amx[1] == 4
    assert math.isnan(s[2]) and mx[2] == inf and mn[2] == -inf


@pypto.jit
def reduce_all(x, out, iout, M: pl.constexpr, N: pl.constexpr):
    t = pl.load(x + pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :])
    pl.store(out + 0, pl.sum(t))  # axis=None: a scalar
    pl.store(out + 1, pl.max(t))
    pl.store(out + 2, pl.min(t, axis=None))
    pl.store(iout + 0, pl.argmax(t, axis=None))  # index into the flattened block
    pl.store(iout + 1, pl.argmin(t, axis=None))


@pytest.mark.parametrize("m,n", [(1, 1), (3, 7)])
def test_reduce_everything_to_a_scalar(backend, m, n):
    x = torch.randn(m, n)
    out = torch.zeros(3)
    iout = torch.full((2,), -1, dtype=torch.int32)
    reduce_all[(1,)](x, out, iout, M=m, N=n, backend=backend)
    torch.testing.assert_close(out, torch.stack([x.sum(), x.max(), x.min()]))
    assert iout.tolist() == [int(x.argmax()), int(x.argmin())]


@pypto.jit
def keep_dims_kernel(x, rows_out, cols_out, M: pl.constexpr, N: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    t = pl.load(x + m[:, None] * N + n[None, :])
    r = pl.sum(t, axis=1, keep_dims=True)  # [M, 1]
    c = pl.max(t, axis=0, keep_dims=True)  # [1, N]
    pl.static_assert(len(r.shape) == 2)
    pl.store(rows_out + m[:, None] * N + n[None, :], t - r)  # broadcast back over the row
    pl.store(cols_out + m[:, None] * N + n[None, :], t - c)


def test_keep_dims(backend):
    x = torch.randn(4, 6)
    rows, cols = torch.zeros(4, 6), torch.zeros(4, 6)
    keep_dims_kernel[(1,)](x, rows, cols, M=4, N=6, backend=backend)
    torch.testing.assert_close(rows, x - x.sum(1, keepdim=True))
    torch.testing.assert_close(cols, x - x.amax(0, keepdim=True))


@pypto.jit
def max_with_indices(x, v_out, i_out, M: pl.constexpr, N: pl.constexpr):
    m = pl.arange(0, M)
    t = pl.load(x + m[:, None] * N + pl.arange(0, N)[None, :])
    v, i = pl.max(t, axis=1, return_indices=True)
    pl.store(v_out + m, v)
    pl.store(i_out + m, i)
    vmin, imin = pl.min(t, 1, return_indices=True)
    pl.store(v_out + M + m, vmin)
    pl.store(i_out + M + m, imin)


def test_max_min_return_indices(backend):
    x = torch.randint(-4, 4, (5, 9)).float()
    v, i = torch.zeros(10), torch.full((10,), -1, dtype=torch.int32)
    max_with_indices[(1,)](x, v, i, M=5, N=9, backend=backend)
    assert torch.equal(v, torch.cat([x.amax(1), x.amin(1)]))
    assert torch.equal(i, torch.cat([x.argmax(1), x.argmin(1)]).to(torch.int32))


@pypto.jit
def sum_dtypes(h, b8, u8, f_out, i_out, u_out, N: pl.constexpr):
    n = pl.arange(0, N)
    sh = pl.sum(pl.load(h + n), axis=0)
    s8 = pl.sum(pl.load(b8 + n), axis=0)
    su = pl.sum(pl.load(u8 + n), axis=0)
    pl.static_assert(sh.dtype == pl.float32, "sum of float16 gives float32")
    pl.static_assert(s8.dtype == pl.int32, "sum of int8 gives int32")
    pl.static_assert(su.dtype == pl.uint32, "sum of uint8 gives uint32")
    pl.store(f_out, sh)
    pl.store(i_out, s8)
    pl.store(u_out, su)


def test_sum_widens_small_types(backend):
    # fp16 would round 2048 + 1 back to 2048 at every step; int8 would wrap at 127
    h = torch.tensor([2048.0] + [1.0] * 8, dtype=torch.float16)
    b8 = torch.full((9,), 100, dtype=torch.int8)
    u8 = torch.full((9,), 200, dtype=torch.uint8)
    f, i = torch.zeros(1), torch.zeros(1, dtype=torch.int32)
    u = torch.zeros(1, dtype=torch.uint32)
    sum_dtypes[(1,)](h, b8, u8, f, i, u, N=9, backend=backend)
    assert f.item() == 2056.0
    assert i.item() == 900
    assert u.item() == 1800


@pypto.jit
def int_reduce(x, out, M: pl.constexpr, N: pl.constexpr):
    m = pl.arange(0, M)
    t = pl.load(x + m[:, None] * N + pl.arange(0, N)[None, :])
    pl.store(out + m, pl.sum(t, axis=1))
    pl.store(out + M + m, pl.max(t, axis=1))
    pl.store(out + 2 * M + m, pl.min(t, axis=1))
    pl.store(out + 3 * M + m, pl.argmax(t, axis=1))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8], ids=str)
def test_integer_reductions_exact(backend, dtype):
    info = torch.iinfo(dtype)
    lo, hi = (0, 60) if dtype == torch.uint8 else (-(2**20), 2**20)
    x = torch.randint(lo, hi, (3, 4)).to(dtype)
    if dtype == torch.int32:
        x[0, 0] = info.max  # wraps in the sum, two's complement
    out = torch.zeros(12, dtype=dtype)
    int_reduce[(1,)](x, out, M=3, N=4, backend=backend)
    wide = x.to(torch.int64)
    total = wide.sum(1)
    if dtype == torch.int32:
        total = ((total + 2**31) % 2**32) - 2**31
    elif dtype == torch.uint8:
        total = total % 256  # uint8 sum gives uint32, stored back into uint8: wraps
    expected = torch.cat([total, wide.amax(1), wide.amin(1), wide.argmax(1)])
    assert torch.equal(out.to(torch.int64), expected)


@pypto.jit
def bf16_sum_rows(x, out, M: pl.constexpr, N: pl.constexpr):
    m = pl.arange(0, M)
    t = pl.load(x + m[:, None] * N + pl.arange(0, N)[None, :])
    pl.store(out + m, pl.sum(t, axis=1))  # f32 result stored into a bf16 tensor: RNE


def test_bf16_sum_rounds_like_torch(backend):
    torch.manual_seed(3)
    x = torch.randn(6, 37).to(torch.bfloat16)
    out = torch.zeros(6, dtype=torch.bfloat16)
    bf16_sum_rows[(1,)](x, out, M=6, N=37, backend=backend)
    expected = x.float().sum(1).to(torch.bfloat16)
    torch.testing.assert_close(out.float(), expected.float(), rtol=8e-3, atol=1e-2)


@pypto.jit
def scan_kernel(x, cs_out, cp_out, rev_out, M: pl.constexpr, N: pl.constexpr, AXIS: pl.constexpr):
    off = pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :]
    t = pl.load(x + off)
    pl.store(cs_out + off, pl.cumsum(t, axis=AXIS))
    pl.store(cp_out + off, pl.cumprod(t, axis=AXIS))
    pl.store(rev_out + off, pl.cumsum(t, axis=AXIS, reverse=True))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("m,n", [(1, 1), (1, 9), (7, 1), (5, 12)], ids=str)
def test_cumsum_cumprod(backend, axis, m, n):
    x = torch.rand(m, n) + 0.5  # products stay near 1
    cs, cp, rev = (torch.zeros(m, n) for _ in range(3))
    scan_kernel[(1,)](x, cs, cp, rev, M=m, N=n, AXIS=axis, backend=backend)
    torch.testing.assert_close(cs, x.cumsum(axis))
    torch.testing.assert_close(cp, x.cumprod(axis))
    torch.testing.assert_close(rev, x.flip(axis).cumsum(axis).flip(axis))


def test_cumsum_int_exact(backend):
    x = torch.randint(-1000, 1000, (5, 12), dtype=torch.int32)
    cs, cp, rev = (torch.zeros(5, 12, dtype=torch.int32) for _ in range(3))
    scan_kernel[(1,)](x, cs, cp, rev, M=5, N=12, AXIS=1, backend=backend)
    assert torch.equal(cs, x.cumsum(1).to(torch.int32))
    assert torch.equal(rev, x.flip(1).cumsum(1).flip(1).to(torch.int32))
    wrapped = x.to(torch.int64).cumprod(1)  # int64 wraps mod 2^64; keep the low 32 bits
    assert torch.equal(cp, ((wrapped + 2**31) % 2**32 - 2**31).to(torch.int32))


@pypto.jit
def cumsum_f16(x, out, N: pl.constexpr):
    n = pl.arange(0, N)
    c = pl.cumsum(pl.load(x + n), axis=0)
    pl.static_assert(c.dtype == pl.float32, "cumsum of float16 gives float32")
    pl.store(out + n, c)


def test_cumsum_f16_accumulates_in_f32(backend):
    x = torch.tensor([2048.0] + [1.0] * 6, dtype=torch.float16)
    out = torch.zeros(7)
    cumsum_f16[(1,)](x, out, N=7, backend=backend)
    assert out.tolist() == [2048.0 + i for i in range(7)]


@pypto.jit
def masked_row_max(x, out, n_cols, BLOCK: pl.constexpr):
    # the fused-softmax pattern: one row per program, lanes past the row are -inf
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK)
    v = pl.load(x + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    pl.store(out + row, pl.max(v, axis=0))


def test_masked_lanes_do_not_leak_into_max(backend):
    x = -torch.rand(3, 5) - 1.0  # all negative: a leaked 0 from masked lanes would win
    out = torch.zeros(3)
    masked_row_max[(3,)](x, out, 5, BLOCK=8, backend=backend)
    assert torch.equal(out, x.amax(1))


@pypto.jit
def reduce3d(x, s_out, mx_out, cs_out, A: pl.constexpr, B: pl.constexpr, C: pl.constexpr):
    a = pl.arange(0, A)[:, None, None]
    b = pl.arange(0, B)[None, :, None]
    c = pl.arange(0, C)[None, None, :]
    t = pl.load(x + a * (B * C) + b * C + c)
    s = pl.sum(t, axis=1)  # [A, C]
    mx = pl.max(t, axis=-1, keep_dims=True)  # [A, B, 1]
    pl.store(s_out + pl.arange(0, A)[:, None] * C + pl.arange(0, C)[None, :], s)
    pl.store(mx_out + a * B + b, mx)
    pl.store(cs_out + a * (B * C) + b * C + c, pl.cumsum(t, axis=1))


def test_3d_middle_and_negative_axes(backend):
    x = torch.randn(3, 5, 4)
    s, mx, cs = torch.zeros(3, 4), torch.zeros(3, 5, 1), torch.zeros(3, 5, 4)
    reduce3d[(1,)](x, s, mx, cs, A=3, B=5, C=4, backend=backend)
    torch.testing.assert_close(s, x.sum(1))
    assert torch.equal(mx, x.amax(-1, keepdim=True))
    torch.testing.assert_close(cs, x.cumsum(1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_reductions_of_other_float_types(backend, dtype):
    torch.manual_seed(4)
    x = (torch.randn(5, 33) * 10).to(dtype)
    x[2, 9] = float("nan")
    s, mx, mn = (torch.zeros(5, dtype=dtype) for _ in range(3))
    amx, amn = (torch.zeros(5, dtype=torch.int32) for _ in range(2))
    reduce_axis[(1,)](x, s, mx, mn, amx, amn, 5, 33, BM=8, BN=40, AXIS=1, backend=backend)
    wide = x.double()
    tol = {"rtol": 1e-2, "atol": 1e-1} if dtype != torch.float64 else {}
    torch.testing.assert_close(s.double(), wide.sum(1).to(dtype).double(), equal_nan=True, **tol)
    assert torch.equal(mx.isnan(), x.amax(1).isnan())
    assert torch.equal(mx.nan_to_num(), x.amax(1).nan_to_num())  # max/min are exact
    assert torch.equal(mn.nan_to_num(), x.amin(1).nan_to_num())
    assert torch.equal(amx, x.argmax(1).to(torch.int32))
    assert torch.equal(amn, x.argmin(1).to(torch.int32))


def test_fully_masked_rows(backend):
    # a block of 8 rows over a 0-row view: nothing is read; sum 0, max -inf, min +inf
    x = torch.randn(5, 33)
    outs = [torch.full((8,), -5.0) for _ in range(3)]
    outs += [torch.full((8,), -5, dtype=torch.int32) for _ in range(2)]
    reduce_axis[(1,)](x, *outs, 0, 33, BM=8, BN=40, AXIS=1, backend=backend)
    assert (outs[0] == -5.0).all()  # stores are masked by rm < M == 0 as well
    outs = [torch.full((40,), -5.0) for _ in range(3)]
    outs += [torch.full((40,), -5, dtype=torch.int32) for _ in range(2)]
    reduce_axis[(1,)](x, *outs, 0, 33, BM=8, BN=40, AXIS=0, backend=backend)
    assert torch.equal(outs[0][:33], torch.zeros(33))
    assert (outs[1][:33] == -float("inf")).all() and (outs[2][:33] == float("inf")).all()
    assert (outs[0][33:] == -5.0).all()


@pypto.jit
def method_reductions(x, out, M: pl.constexpr, N: pl.constexpr):
    m = pl.arange(0, M)
    t = pl.load(x + m[:, None] * N + pl.arange(0, N)[None, :])
    pl.store(out + m, t.sum(axis=1) + t.max(1))  # Triton's tensor-member forms
    pl.store(out + M + m, t.cumsum(1).min(axis=1))


def test_reduction_methods(backend):
    x = torch.randn(4, 6)
    out = torch.zeros(8)
    method_reductions[(1,)](x, out, M=4, N=6, backend=backend)
    torch.testing.assert_close(out[:4], x.sum(1) + x.amax(1))
    torch.testing.assert_close(out[4:], x.cumsum(1).amin(1))
