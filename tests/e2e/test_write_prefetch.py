"""Stores whose rows are prefetched for writing (``passes.write_prefetch``): the results are
the reference's on every backend, for full rows, prefix-masked rows of any length, and
output rows that do not start on a cache line -- prefetched before their loop, or early,
right after the program's last memory access."""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl


@pypto.jit
def center_rows(x, out, n, x_stride, out_stride, BLOCK: pl.constexpr):
    # two passes over a row: its mean, then the row again minus the mean, stored
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK)
    mask = cols < n
    v = pl.load(x + row * x_stride + cols, mask=mask, other=0.0)
    mean = pl.sum(v, axis=0) / n
    again = pl.load(x + row * x_stride + cols, mask=mask, other=0.0)
    pl.store(out + row * out_stride + cols, again - mean, mask=mask)


@pypto.jit
def scale_by_weight(x, w, out, n, BLOCK: pl.constexpr):
    # the store loop reads a small weight (warm) and a row read before
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK)
    peak = pl.max(pl.load(x + row * n + cols), axis=0)
    pl.store(out + row * n + cols, pl.load(x + row * n + cols) * pl.load(w + cols) + peak)


@pytest.mark.parametrize("n,shift", [(1024, 0), (1000, 3), (17, 1), (1, 0), (0, 0)])
def test_prefix_masked_rows(backend, n, shift):
    rows, block = 6, 1024
    x = torch.randn(rows, max(n, 1))
    buf = torch.zeros(rows * block + 8)
    out = buf[shift : shift + rows * block].view(rows, block)  # rows start off a line
    center_rows[(rows,)](x, out, n, x.stride(0), block, BLOCK=block, backend=backend)
    if n:
        want = x[:, :n] - x[:, :n].sum(1, keepdim=True) / n
        torch.testing.assert_close(out[:, :n], want, rtol=1e-5, atol=1e-5)
    assert out[:, n:].eq(0).all() and buf[:shift].eq(0).all()  # nothing past the mask
    assert buf[shift + rows * block :].eq(0).all()
    if backend == "cpu":
        ck = center_rows.warmup(x, out, n, x.stride(0), block, BLOCK=block, backend="cpu")
        assert "prefetch=true" in ck.asm["opt_ir"] and "pypto_prefetchw(q," in ck.asm["c"]
        plain = torch.zeros(rows, block)  # the checking backend: the same C, no prefetches
        center_rows[(rows,)](x, plain, n, x.stride(0), block, BLOCK=block, backend="sim")
        assert torch.equal(out, plain)


def test_full_rows(backend):
    x, w = torch.randn(8, 256), torch.randn(256)
    out = torch.empty_like(x)
    scale_by_weight[(8,)](x, w, out, 256, BLOCK=256, backend=backend)
    torch.testing.assert_close(out, x * w + x.amax(1, keepdim=True), rtol=1e-6, atol=1e-6)
    if backend == "cpu":
        ck = scale_by_weight.warmup(x, w, out, 256, BLOCK=256, backend="cpu")
        assert "pypto_prefetchw(q, 1024);" in ck.asm["c"]


@pypto.jit
def softmax_rows(x, out, n, x_stride, out_stride, BLOCK: pl.constexpr):
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK)
    v = pl.load(x + row * x_stride + cols, mask=cols < n, other=-float("inf"))
    e = pl.exp(v - pl.max(v, axis=0))
    pl.store(out + row * out_stride + cols, e / pl.sum(e, axis=0), mask=cols < n)


@pytest.mark.parametrize("n,shift", [(1024, 0), (1000, 3), (17, 1), (1, 0)])
def test_early_prefetched_rows(backend, n, shift):
    """The row is prefetched after the max's loop reads x (its address computed there),
    then exp, the sum and the division run on arrays and the row is stored."""
    rows, block = 5, 1024
    x = torch.randn(rows, n) * 3
    buf = torch.zeros(rows * block + 8)
    out = buf[shift : shift + rows * block].view(rows, block)  # rows start off a line
    softmax_rows[(rows,)](x, out, n, x.stride(0), block, BLOCK=block, backend=backend)
    torch.testing.assert_close(out[:, :n], torch.softmax(x, 1))
    assert out[:, n:].eq(0).all() and buf[:shift].eq(0).all()  # nothing past the mask
    assert buf[shift + rows * block :].eq(0).all()
    if backend == "cpu":
        ck = softmax_rows.warmup(x, out, n, x.stride(0), block, BLOCK=block, backend="cpu")
        c = ck.asm["c"]
        assert 'prefetch="early"' in ck.asm["opt_ir"]
        at = c.index("pypto_prefetchw(p1 + ")
        assert c.index("part") < at < c.index("pypto_expf_v16(u")  # after the max's loop
        plain = torch.zeros(rows, block)  # the checking backend: the same C, no prefetches
        softmax_rows[(rows,)](x, plain, n, x.stride(0), block, BLOCK=block, backend="sim")
        assert torch.equal(out, plain)
