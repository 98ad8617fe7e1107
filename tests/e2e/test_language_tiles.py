"""Tile style end to end: pl.load_tile / pl.store_tile on 1-D, 2-D and 3-D tensor
parameters (any strides), reading ``padding`` outside the tensor and writing only the
in-bounds part of a tile.
"""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl

SENTINEL = -777.0


@pypto.jit
def tile_copy2d(x, y, BM: pl.constexpr, BN: pl.constexpr):
    r0 = pl.program_id(0) * BM
    c0 = pl.program_id(1) * BN
    t = pl.load_tile(x, (r0, c0), (BM, BN), padding=0.0)
    pl.store_tile(y, (r0, c0), t * 2.0)


@pytest.mark.parametrize("bm,bn", [(4, 8), (1, 5), (3, 1), (16, 16)], ids=str)
def test_tile_copy_edge_tiles(backend, bm, bn):
    x = torch.randn(10, 13)
    y = torch.full((10, 13), SENTINEL)
    tile_copy2d[(pypto.cdiv(10, bm), pypto.cdiv(13, bn))](x, y, BM=bm, BN=bn, backend=backend)
    assert torch.equal(y, 2.0 * x)


def test_tile_copy_strided_views(backend):
    base = torch.randn(13, 20)
    x = base.t()[::2]  # (10, 13), strides (2, 20)
    ybase = torch.full((10, 26), SENTINEL)
    y = ybase[:, ::2]  # (10, 13), strides (26, 2): the odd columns must stay untouched
    tile_copy2d[(3, 2)](x, y, BM=4, BN=8, backend=backend)
    assert torch.equal(y, 2.0 * x)
    assert (ybase[:, 1::2] == SENTINEL).all()


@pypto.jit
def tile_padding(x, out, r0, c0, BM: pl.constexpr, BN: pl.constexpr):
    t = pl.load_tile(x, (r0, c0), (BM, BN), padding=-1.5)
    rm = pl.arange(0, BM)
    rn = pl.arange(0, BN)
    pl.store(out + rm[:, None] * BN + rn[None, :], t)  # the whole padded tile


@pytest.mark.parametrize("r0,c0", [(0, 0), (8, 10), (-2, -3), (20, 0)], ids=str)
def test_load_tile_padding(backend, r0, c0):
    x = torch.randn(10, 13)
    out = torch.zeros(4, 6)
    tile_padding[(1,)](x, out, r0, c0, BM=4, BN=6, backend=backend)
    padded = torch.full((40, 40), -1.5)
    padded[10:20, 10:23] = x
    expected = padded[10 + r0 : 14 + r0, 10 + c0 : 16 + c0]
    assert torch.equal(out, expected)


@pypto.jit
def tile_store_partial(y, r0, c0, BM: pl.constexpr, BN: pl.constexpr):
    t = pl.full((BM, BN), 5.0, dtype=pl.float32)
    pl.store_tile(y, (r0, c0), t)


@pytest.mark.parametrize("r0,c0", [(8, 10), (-2, -3), (20, 0)], ids=str)
def test_store_tile_writes_only_in_bounds(backend, r0, c0):
    y = torch.zeros(10, 13)
    tile_store_partial[(1,)](y, r0, c0, BM=4, BN=6, backend=backend)
    expected = torch.zeros(40, 40)
    expected[10 + r0 : 14 + r0, 10 + c0 : 16 + c0] = 5.0
    assert torch.equal(y, expected[10:20, 10:23])


@pypto.jit
def tile_3d(x, y, B0: pl.constexpr, B1: pl.constexpr, B2: pl.constexpr):
    p = pl.program_id(0)
    t = pl.load_tile(x, (p * B0, 1, 0), (B0, B1, B2), padding=0.0)
    pl.store_tile(y, (p * B0, 1, 0), t + 1.0)


def test_tile_3d(backend):
    x = torch.randn(5, 4, 3)
    y = torch.zeros(5, 4, 3)
    tile_3d[(3,)](x, y, B0=2, B1=4, B2=4, backend=backend)  # rows 1..4 only, padded in 1 and 2
    expected = torch.zeros(5, 4, 3)
    expected[:, 1:] = x[:, 1:] + 1.0
    assert torch.equal(y, expected)


@pypto.jit
def tile_1d_int(x, y, n_tiles, B: pl.constexpr):
    for i in range(n_tiles):
        t = pl.load_tile(x, (i * B,), (B,), padding=0)
        pl.store_tile(y, (i * B,), t * 3)


def test_tile_1d_int_loop(backend):
    x = torch.arange(-20, 21, dtype=torch.int32)
    y = torch.zeros(41, dtype=torch.int32)
    tile_1d_int[(1,)](x, y, pypto.cdiv(41, 16), B=16, backend=backend)
    assert torch.equal(y, 3 * x)
