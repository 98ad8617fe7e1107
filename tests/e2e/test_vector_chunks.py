"""Full chunks of 16 lanes in vector form (``codegen/vector.py``, cpu mode): stores whose
value computes erf, and the arguments of f32 EXP blocks, exponentiated in the same pass.
The results are the reference's on every backend, and bit for bit those of the sim
backend (the same lanes by the scalar loops), for rows of any length, masked and
unmasked, 1-D and 2-D blocks, rows that start off a vector, and an operand held in an
array."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import needs_cc

import pypto_jit as pypto
import pypto_jit.language as pl

SQRT1_2 = pl.constexpr(1.0 / math.sqrt(2.0))


@pypto.jit
def bias_gelu_rows(x, b, out, n, x_stride, out_stride, BLOCK: pl.constexpr):
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK)
    mask = cols < n
    z = pl.load(x + row * x_stride + cols, mask=mask) + pl.load(b + cols, mask=mask)
    pl.store(out + row * out_stride + cols, 0.5 * z * (1.0 + pl.erf(z * SQRT1_2)), mask=mask)


@pypto.jit
def erf_tile(x, out, R: pl.constexpr, C: pl.constexpr):
    # an unmasked 2-D block: one vector loop per row of the block
    rows = pl.program_id(0) * R + pl.arange(0, R)
    offs = rows[:, None] * C + pl.arange(0, C)[None, :]
    v = pl.load(x + offs)
    pl.store(out + offs, -pl.erf(v) / (v - 3.0))


@pypto.jit
def erf_minus_sum(x, out, BLOCK: pl.constexpr):
    # e is read by the sum first, which fills its array: the store's chunks load from it
    cols = pl.arange(0, BLOCK)
    e = pl.erf(pl.load(x + pl.program_id(0) * BLOCK + cols))
    pl.store(out + pl.program_id(0) * BLOCK + cols, pl.erf(e - pl.sum(e, axis=0)))


@pypto.jit
def softmax_rows(x, out, n, BLOCK: pl.constexpr):
    # exp's argument: the row (an array, filled by the max's loop) minus a splat
    cols = pl.arange(0, BLOCK)
    v = pl.load(x + pl.program_id(0) * n + cols, mask=cols < n, other=-float("inf"))
    e = pl.exp(v - pl.max(v, axis=0))
    pl.store(out + pl.program_id(0) * n + cols, e / pl.sum(e, axis=0), mask=cols < n)


@pypto.jit
def exp_tile(x, out, R: pl.constexpr, C: pl.constexpr):
    # exp's argument: a fused unmasked load, scaled and shifted; one row of chunks per row
    offs = (pl.program_id(0) * R + pl.arange(0, R))[:, None] * C + pl.arange(0, C)[None, :]
    pl.store(out + offs, pl.exp(pl.load(x + offs) * 0.5 - 1.0))


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def _sim(kernel, grid, out, *args, form="pypto_vstore_f32(q + c_, ", **kw) -> torch.Tensor:
    """The output of the sim backend for the same launch (the scalar loop's lanes), after
    checking that the cpu backend's C has the vector ``form``."""
    ck = kernel.warmup(*args, **kw, backend="cpu")
    assert form in ck.asm["c"]
    other = torch.zeros_like(out)
    kernel[grid](*[other if a is out else a for a in args], **kw, backend="sim")
    return other


@pytest.mark.parametrize("n,shift", [(1024, 0), (1000, 3), (33, 1), (17, 0), (16, 5), (1, 0)])
def test_prefix_masked_rows(backend, n, shift):
    rows, block = 5, 1024
    x = torch.randn(rows, n) * 3
    x[0, : min(n, 6)] = torch.tensor([0.0, -0.0, float("nan"), 50.0, -4.0, 3.9])[:n]
    b = torch.randn(n)
    buf = torch.zeros(rows * block + 8)
    out = buf[shift : shift + rows * block].view(rows, block)  # rows start off a vector
    args = (x, b, out, n, x.stride(0), block)
    bias_gelu_rows[(rows,)](*args, BLOCK=block, backend=backend)
    want = torch.nn.functional.gelu(x + b)
    torch.testing.assert_close(out[:, :n], want, equal_nan=True)
    assert out[:, n:].eq(0).all() and buf[:shift].eq(0).all()  # nothing past the mask
    assert buf[shift + rows * block :].eq(0).all()
    if backend == "cpu":
        assert _same_bits(out, _sim(bias_gelu_rows, (rows,), out, *args, BLOCK=block))


def test_unmasked_2d_blocks(backend):
    x = torch.randn(8, 48) * 2
    out = torch.empty_like(x)
    erf_tile[(2,)](x, out, R=4, C=48, backend=backend)  # 48: three chunks, no tail
    torch.testing.assert_close(out, -torch.erf(x) / (x - 3.0))
    if backend == "cpu":
        assert _same_bits(out, _sim(erf_tile, (2,), out, x, out, R=4, C=48))


def test_operand_from_an_array(backend):
    x = torch.randn(3, 256)
    out = torch.empty_like(x)
    erf_minus_sum[(3,)](x, out, BLOCK=256, backend=backend)
    e = torch.erf(x)
    torch.testing.assert_close(out, torch.erf(e - e.sum(1, keepdim=True)), rtol=1e-5, atol=1e-5)
    if backend == "cpu":
        assert _same_bits(out, _sim(erf_minus_sum, (3,), out, x, out, BLOCK=256))


EXP_FORM = "pypto_expf_v16(u"


@pytest.mark.parametrize("n,block", [(1024, 1024), (1000, 1024), (33, 64), (17, 32), (16, 16)])
def test_exp_of_a_row_minus_its_max(backend, n, block):
    x = torch.randn(3, n) * 4
    x[0, : min(n, 4)] = torch.tensor([90.0, -200.0, 0.0, -0.0])[: min(n, 4)]
    x[1, 0] = float("inf")  # its row: exp(inf - inf), NaN
    out = torch.zeros(3, n)
    softmax_rows[(3,)](x, out, n, BLOCK=block, backend=backend)
    torch.testing.assert_close(out, torch.softmax(x, 1), equal_nan=True)
    if backend == "cpu":
        sim = _sim(softmax_rows, (3,), out, x, out, n, BLOCK=block, form=EXP_FORM)
        assert _same_bits(out, sim)


@pytest.mark.parametrize("c", [48, 40, 16])
def test_exp_of_2d_blocks_with_row_tails(backend, c):
    x = torch.randn(8, c) * 60
    x[0, :6] = torch.tensor([float("nan"), float("inf"), -float("inf"), 179.0, -209.0, 0.0])
    out = torch.empty_like(x)
    exp_tile[(2,)](x, out, R=4, C=c, backend=backend)  # 40: two chunks and 8 lanes a row
    torch.testing.assert_close(out, torch.exp(x * 0.5 - 1.0), equal_nan=True)
    if backend == "cpu":
        assert _same_bits(out, _sim(exp_tile, (2,), out, x, out, R=4, C=c, form=EXP_FORM))


@needs_cc
def test_hosts_without_avx512_build_the_scalar_loop_alone(tmp_path):
    """The vector form and its helpers sit under the AVX-512 guard: an AVX2 build of the
    same C compiles without a warning (64-byte vectors would change its calling convention)."""
    from pypto_jit.runtime.compiler import compile_shared

    x, b, out = torch.randn(2, 100), torch.randn(100), torch.empty(2, 100)
    ck = bias_gelu_rows.warmup(x, b, out, 100, 100, 100, BLOCK=128, backend="cpu")
    src = tmp_path / "k.c"
    src.write_text(ck.asm["c"])
    compile_shared(src, tmp_path / "k.so", "cpu", extra_flags=["-mno-avx512f", "-Werror"])
    ck = exp_tile.warmup(torch.randn(4, 40), torch.empty(4, 40), R=4, C=40, backend="cpu")
    assert EXP_FORM in ck.asm["c"]
    src.write_text(ck.asm["c"])
    compile_shared(src, tmp_path / "e.so", "cpu", extra_flags=["-mno-avx512f", "-Werror"])
