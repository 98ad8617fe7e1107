"""pl.dot end to end on every backend, against torch.matmul.

Odd and degenerate shapes (1xK @ Kx1, 5x7 @ 7x3), an accumulator, trans(b),
f16/bf16 inputs accumulating in f32, int8 giving int32, out_dtype=float16, a K loop
with masks, and a shape mismatch reported as a TypeCheckError at the user's line.
"""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl


@pypto.jit
def dot_kernel(a, b, c, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m[:, None] * K + k[None, :])
    y = pl.load(b + k[:, None] * N + n[None, :])
    pl.store(c + m[:, None] * N + n[None, :], pl.dot(x, y))


SHAPES = [(1, 1, 1), (1, 1, 8), (5, 3, 7), (16, 16, 16), (4, 1, 33)]


@pytest.mark.parametrize("m,n,k", SHAPES, ids=str)
def test_dot_f32_shapes(backend, m, n, k):
    torch.manual_seed(m + 10 * n + 100 * k)
    a, b = torch.randn(m, k), torch.randn(k, n)
    c = torch.full((m, n), -1.0)
    dot_kernel[(1,)](a, b, c, M=m, N=n, K=k, backend=backend)
    torch.testing.assert_close(c, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_dot_half_inputs_accumulate_in_f32(backend, dtype):
    torch.manual_seed(1)
    a, b = torch.randn(8, 24).to(dtype), torch.randn(24, 6).to(dtype)
    c = torch.zeros(8, 6)  # the f32 result is stored as is
    dot_kernel[(1,)](a, b, c, M=8, N=6, K=24, backend=backend)
    torch.testing.assert_close(c, a.float() @ b.float(), rtol=1e-5, atol=1e-5)


def test_dot_int8_gives_int32(backend):
    a = torch.randint(-128, 128, (4, 40), dtype=torch.int8)
    b = torch.randint(-128, 128, (40, 5), dtype=torch.int8)
    c = torch.zeros(4, 5, dtype=torch.int32)
    dot_kernel[(1,)](a, b, c, M=4, N=5, K=40, backend=backend)
    assert torch.equal(c, a.to(torch.int32) @ b.to(torch.int32))


@pypto.jit
def dot_acc_trans(a, b, c0, c, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m[:, None] * K + k[None, :])  # [M, K]
    bt = pl.load(b + n[:, None] * K + k[None, :])  # b is [N, K]: use trans
    acc = pl.load(c0 + m[:, None] * N + n[None, :])
    acc = pl.dot(x, pl.trans(bt), acc)  # positional acc, as Triton
    acc = pl.dot(x, pl.trans(bt), acc=acc)
    pl.static_assert(acc.dtype == pl.float32)
    pl.store(c + m[:, None] * N + n[None, :], acc)


def test_dot_accumulator_and_trans(backend):
    a, b, c0 = torch.randn(3, 10), torch.randn(7, 10), torch.randn(3, 7)
    c = torch.zeros(3, 7)
    dot_acc_trans[(1,)](a, b, c0, c, M=3, N=7, K=10, backend=backend)
    torch.testing.assert_close(c, c0 + 2 * (a @ b.t()), rtol=1e-5, atol=1e-5)


@pypto.jit
def dot_f16_out(a, b, c, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m[:, None] * K + k[None, :])
    y = pl.load(b + k[:, None] * N + n[None, :])
    r = pl.dot(x, y, out_dtype=pl.float16)
    pl.static_assert(r.dtype == pl.float16)
    pl.store(c + m[:, None] * N + n[None, :], r)


def test_dot_out_dtype_f16(backend):
    a = torch.randn(4, 16).to(torch.float16)
    b = torch.randn(16, 4).to(torch.float16)
    c = torch.zeros(4, 4, dtype=torch.float16)
    dot_f16_out[(1,)](a, b, c, M=4, N=4, K=16, backend=backend)
    torch.testing.assert_close(c.float(), a.float() @ b.float(), rtol=1e-2, atol=2e-2)


@pypto.jit
def matmul_k_loop(
    a, b, c, M, N, K, sam, sak, sbk, sbn, BM: pl.constexpr, BN: pl.constexpr, BK: pl.constexpr
):
    rm = pl.program_id(0) * BM + pl.arange(0, BM)
    rn = pl.program_id(1) * BN + pl.arange(0, BN)
    rk = pl.arange(0, BK)
    acc = pl.zeros((BM, BN), dtype=pl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        x = pl.load(
            a + rm[:, None] * sam + kk[None, :] * sak,
            mask=(rm[:, None] < M) & (kk[None, :] < K),
            other=0.0,
        )
        y = pl.load(
            b + kk[:, None] * sbk + rn[None, :] * sbn,
            mask=(kk[:, None] < K) & (rn[None, :] < N),
            other=0.0,
        )
        acc += pl.dot(x, y)
    pl.store(c + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


def test_k_loop_masked_edges_transposed_b(backend):
    torch.manual_seed(7)
    a = torch.randn(19, 45)
    b = torch.randn(30, 45).t()  # non-contiguous (45, 30)
    c = torch.full((19, 30), -1.0)
    grid = (pypto.cdiv(19, 8), pypto.cdiv(30, 16))
    matmul_k_loop[grid](
        a,
        b,
        c,
        19,
        30,
        45,
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        BM=8,
        BN=16,
        BK=16,
        backend=backend,
    )
    torch.testing.assert_close(c, a @ b, rtol=1e-4, atol=1e-4)


@pypto.jit
def bad_dot(a, c):
    x = pl.load(a + pl.arange(0, 4)[:, None] * 3 + pl.arange(0, 3)[None, :])  # [4, 3]
    y = pl.dot(x, x)  # [4, 3] @ [4, 3]: K mismatch
    pl.store(c + pl.arange(0, 4)[:, None] * 3 + pl.arange(0, 3)[None, :], y)


def test_dot_shape_mismatch_is_a_type_error(backend):
    with pytest.raises(pypto.TypeCheckError) as info:
        bad_dot[(1,)](torch.zeros(4, 3), torch.zeros(4, 3), backend=backend)
    assert info.value.loc.line == bad_dot.fn.__code__.co_firstlineno + 3
    assert "dot" in str(info.value)
