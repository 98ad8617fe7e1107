"""2-D and N-D blocks end to end: indexing with None, expand_dims, broadcast_to, reshape,
trans, permute, zeros_like, full_like and numpy broadcasting, on every backend.

Block sizes are deliberately odd (1xN, Nx1, 1x1, 3x5, non-powers of two) and larger
than the tensor where masks matter; outputs start as a sentinel so that a stray or
missing store shows up.
"""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl

SENTINEL = -777.0


@pypto.jit
def copy2d(x, y, M, N, sxm, sxn, sym, syn, BM: pl.constexpr, BN: pl.constexpr):
    rm = pl.program_id(0) * BM + pl.arange(0, BM)
    rn = pl.program_id(1) * BN + pl.arange(0, BN)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    t = pl.load(x + rm[:, None] * sxm + rn[None, :] * sxn, mask=mask, other=-1.0)
    pl.store(y + rm[:, None] * sym + rn[None, :] * syn, t, mask=mask)


@pypto.jit
def transpose2d(x, y, M, N, BM: pl.constexpr, BN: pl.constexpr):
    rm = pl.program_id(0) * BM + pl.arange(0, BM)
    rn = pl.program_id(1) * BN + pl.arange(0, BN)
    t = pl.load(x + rm[:, None] * N + rn[None, :], mask=(rm[:, None] < M) & (rn[None, :] < N))
    tt = pl.trans(t)  # [BN, BM]
    pl.store(y + rn[:, None] * M + rm[None, :], tt, mask=(rn[:, None] < N) & (rm[None, :] < M))


BLOCKS = [(1, 8), (8, 1), (1, 1), (3, 5), (16, 16)]


@pytest.mark.parametrize("bm,bn", BLOCKS, ids=lambda v: str(v))
def test_copy2d_blocks(backend, bm, bn):
    x = torch.randn(7, 13)
    y = torch.full((7, 13), SENTINEL)
    grid = (pypto.cdiv(7, bm), pypto.cdiv(13, bn))
    copy2d[grid](x, y, 7, 13, 13, 1, 13, 1, BM=bm, BN=bn, backend=backend)
    assert torch.equal(y, x)


def test_copy2d_non_contiguous_source(backend):
    base = torch.randn(13, 7)
    x = base.t()  # (7, 13) with strides (1, 7)
    y = torch.full((7, 13), SENTINEL)
    copy2d[(3, 3)](x, y, 7, 13, x.stride(0), x.stride(1), 13, 1, BM=3, BN=5, backend=backend)
    assert torch.equal(y, x)


@pytest.mark.parametrize("bm,bn", [(3, 5), (1, 8), (8, 1)], ids=lambda v: str(v))
def test_trans(backend, bm, bn):
    x = torch.randn(7, 13)
    y = torch.full((13, 7), SENTINEL)
    transpose2d[(pypto.cdiv(7, bm), pypto.cdiv(13, bn))](x, y, 7, 13, BM=bm, BN=bn, backend=backend)
    assert torch.equal(y, x.t())


@pypto.jit
def permute3d(x, y, A: pl.constexpr, B: pl.constexpr, C: pl.constexpr):
    a = pl.arange(0, A)
    b = pl.arange(0, B)
    c = pl.arange(0, C)
    t = pl.load(x + a[:, None, None] * (B * C) + b[None, :, None] * C + c[None, None, :])
    p = pl.permute(t, (2, 0, 1))  # [C, A, B]
    pl.store(y + c[:, None, None] * (A * B) + a[None, :, None] * B + b[None, None, :], p)


def test_permute3d(backend):
    x = torch.randn(2, 3, 5)
    y = torch.full((5, 2, 3), SENTINEL)
    permute3d[(1,)](x, y, A=2, B=3, C=5, backend=backend)
    assert torch.equal(y, x.permute(2, 0, 1))


@pypto.jit
def reshape_kernel(x, y, z, M: pl.constexpr, N: pl.constexpr):
    r = pl.arange(0, M)
    c = pl.arange(0, N)
    t = pl.load(x + r[:, None] * N + c[None, :])  # [M, N]
    flat = pl.reshape(t, (M * N,))
    i = pl.arange(0, M * N)
    pl.store(y + i, flat)
    cube = pl.reshape(t, (2, M * N // 6, 3))
    a = pl.arange(0, 2)
    b = pl.arange(0, M * N // 6)
    d = pl.arange(0, 3)
    pl.store(z + a[:, None, None] * (M * N // 2) + b[None, :, None] * 3 + d[None, None, :], cube)


def test_reshape_row_major(backend):
    x = torch.randn(4, 6)
    y = torch.full((24,), SENTINEL)
    z = torch.full((2, 4, 3), SENTINEL)
    reshape_kernel[(1,)](x, y, z, M=4, N=6, backend=backend)
    assert torch.equal(y, x.reshape(-1))
    assert torch.equal(z, x.reshape(2, 4, 3))


@pypto.jit
def expand_broadcast(v, out_rows, out_cols, out_neg, M: pl.constexpr, N: pl.constexpr):
    n = pl.arange(0, N)
    m = pl.arange(0, M)
    x = pl.load(v + n)  # [N]
    rows = pl.broadcast_to(pl.expand_dims(x, 0), (M, N))  # every row is v
    cols = pl.broadcast_to(pl.expand_dims(x, 1), (N, M))  # every column is v
    neg = pl.broadcast_to(pl.expand_dims(x, -1), (N, M))  # axis -1 == axis 1 here
    pl.store(out_rows + m[:, None] * N + n[None, :], rows)
    pl.store(out_cols + n[:, None] * M + m[None, :], cols)
    pl.store(out_neg + n[:, None] * M + m[None, :], neg)


def test_expand_dims_broadcast_to(backend):
    v = torch.randn(5)
    rows, cols, neg = (torch.full(s, SENTINEL) for s in [(3, 5), (5, 3), (5, 3)])
    expand_broadcast[(1,)](v, rows, cols, neg, M=3, N=5, backend=backend)
    assert torch.equal(rows, v.expand(3, 5))
    assert torch.equal(cols, v[:, None].expand(5, 3))
    assert torch.equal(neg, v[:, None].expand(5, 3))


@pypto.jit
def outer_ops(
    a,
    b,
    c,
    s_out,
    p_out,
    m_out,
    cube_out,
    scalar,
    M: pl.constexpr,
    N: pl.constexpr,
    K: pl.constexpr,
):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m)  # [M]
    y = pl.load(b + n)  # [N]
    z = pl.load(c + k)  # [K]
    off2 = m[:, None] * N + n[None, :]
    pl.store(s_out + off2, x[:, None] + y[None, :])  # (M,1) + (1,N)
    pl.store(p_out + off2, x[:, None] * y)  # (M,1) * (N,) -> (M,N)
    pl.store(m_out + off2, scalar - pl.maximum(x[:, None], y[None, :]))  # scalar with a block
    cube = x[:, None, None] + y[None, :, None] * z[None, None, :]  # (M,1,1)+(1,N,1)*(1,1,K)
    off3 = m[:, None, None] * (N * K) + n[None, :, None] * K + k[None, None, :]
    pl.store(cube_out + off3, cube)


def test_numpy_broadcasting_in_binary_ops(backend):
    a, b, c = torch.randn(3), torch.randn(5), torch.randn(2)
    s, p, mx = (torch.full((3, 5), SENTINEL) for _ in range(3))
    cube = torch.full((3, 5, 2), SENTINEL)
    outer_ops[(1,)](a, b, c, s, p, mx, cube, 1.5, M=3, N=5, K=2, backend=backend)
    assert torch.equal(s, a[:, None] + b[None, :])
    assert torch.equal(p, a[:, None] * b)
    assert torch.equal(mx, 1.5 - torch.maximum(a[:, None], b[None, :]))
    torch.testing.assert_close(cube, a[:, None, None] + b[None, :, None] * c[None, None, :])


@pypto.jit
def like_kernel(x, zeros_out, full_out, int_out, N: pl.constexpr):
    n = pl.arange(0, N)
    t = pl.load(x + n)
    i = n.to(pl.int32) * 3
    pl.store(zeros_out + n, pl.zeros_like(t) + 1.0)
    pl.store(full_out + n, pl.full_like(t, 2.5) * t)
    pl.store(int_out + n, pl.zeros_like(i) + (i // 2))  # stays integer: 3n // 2


def test_zeros_like_full_like(backend):
    x = torch.randn(7)
    z, f = torch.full((7,), SENTINEL), torch.full((7,), SENTINEL)
    i = torch.full((7,), -1, dtype=torch.int32)
    like_kernel[(1,)](x, z, f, i, N=7, backend=backend)
    assert torch.equal(z, torch.ones(7))
    assert torch.equal(f, 2.5 * x)
    assert torch.equal(i, (torch.arange(7, dtype=torch.int32) * 3) // 2)


@pypto.jit
def arange_offset(y, START: pl.constexpr, END: pl.constexpr):
    r = pl.arange(START, END)
    pl.store(y + r - START, r * 10)


def test_arange_nonzero_start_odd_length(backend):
    y = torch.full((7,), -1, dtype=torch.int32)
    arange_offset[(1,)](y, START=3, END=10, backend=backend)
    assert torch.equal(y, torch.arange(3, 10, dtype=torch.int32) * 10)


@pypto.jit
def rows_to_cols(x, y, M, N, BN: pl.constexpr):
    # one program per row: a [1, BN] row block turned into a [BN, 1] column block
    row = pl.program_id(0)
    cols = pl.arange(0, BN)
    r = pl.load(x + row * N + cols[None, :], mask=cols[None, :] < N)  # [1, BN]
    c = pl.reshape(r, (BN, 1))
    pl.store(y + cols[:, None] * M + row, c, mask=cols[:, None] < N)


def test_1xN_to_Nx1(backend):
    x = torch.randn(4, 11)
    y = torch.full((11, 4), SENTINEL)
    rows_to_cols[(4,)](x, y, 4, 11, BN=16, backend=backend)
    assert torch.equal(y, x.t())


@pypto.jit
def method_forms(x, y, M: pl.constexpr, N: pl.constexpr):
    t = pl.load(x + pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :])
    u = t.reshape((M * N,)).reshape(N, M).trans()  # Triton's tensor-member forms
    pl.store(y + pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :], u + t.T.T)
    pl.store(y + M * N + pl.arange(0, N)[:, None] * M + pl.arange(0, M)[None, :], t.T)


def test_member_forms_reshape_trans_T(backend):
    x = torch.randn(3, 4)
    y = torch.full((24,), SENTINEL)
    method_forms[(1,)](x, y, M=3, N=4, backend=backend)
    assert torch.equal(y[:12].reshape(3, 4), x.reshape(4, 3).t() + x)
    assert torch.equal(y[12:].reshape(4, 3), x.t())


@pypto.jit
def unmasked_tile(x, y, BM: pl.constexpr, BN: pl.constexpr):
    rm = pl.arange(0, BM)
    rn = pl.arange(0, BN)
    t = pl.load(x + rm[:, None] * 5 + rn[None, :])  # reads past the 4x5 tensor
    pl.store(y + rm[:, None] * 5 + rn[None, :], t, mask=(rm[:, None] < 4) & (rn[None, :] < 5))


def test_sim_names_a_2d_out_of_bounds_load():
    with pytest.raises(pypto.OutOfBoundsError) as info:
        unmasked_tile[(1,)](torch.randn(4, 5), torch.zeros(4, 5), BM=4, BN=8, backend="sim")
    assert info.value.param == "x"
    assert info.value.loc.line == unmasked_tile.fn.__code__.co_firstlineno + 4
    assert info.value.index >= 20


@pypto.jit
def grid3d(out, N0: pl.constexpr, N1: pl.constexpr):
    p0, p1, p2 = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    n1, n2 = pl.num_programs(1), pl.num_programs(2)
    idx = (p0 * n1 + p1) * n2 + p2
    v = pl.full((N0, N1), 0, pl.int32) + idx * 1000 + p0 * 100 + p1 * 10 + p2
    pl.store(out + idx * (N0 * N1) + pl.arange(0, N0)[:, None] * N1 + pl.arange(0, N1)[None, :], v)


def test_three_dimensional_grid_with_2d_blocks(backend):
    out = torch.full((2 * 3 * 4, 2, 3), -1, dtype=torch.int32)
    grid3d[(2, 3, 4)](out, N0=2, N1=3, backend=backend)
    ids = torch.arange(24).reshape(2, 3, 4)
    p0, p1, p2 = torch.meshgrid(torch.arange(2), torch.arange(3), torch.arange(4), indexing="ij")
    expected = (ids * 1000 + p0 * 100 + p1 * 10 + p2).reshape(24, 1, 1).expand(24, 2, 3)
    assert torch.equal(out, expected.to(torch.int32))
