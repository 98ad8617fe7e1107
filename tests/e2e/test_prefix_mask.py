"""Prefix masks ``offs < n`` (``passes.prefix_mask``): stores, row reductions and the loops
that fill a block (a loop-carried accumulator) run their active lanes first, unmasked, then
the rest masked.

Which ops the pass marks, and kernels whose count of active lanes is every case (none, some,
all, past the row, a start past ``n``, int32 offsets that wrap around within the row)
against the masked loops (bit for bit, on cpu), torch and every backend.
"""

from __future__ import annotations

import torch
from conftest import needs_cc
from test_fusion import launch_unfused, opt_ir, same_bits

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.codegen import render_c
from pypto_jit.ir.parser import parse_module

pytestmark = needs_cc


@pypto.jit
def bias_kernel(x, b, out, n, start, BLOCK: pl.constexpr):
    offs = start + pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    mask = offs < n
    v = pl.load(x + offs, mask=mask, other=-1.0)
    w = pl.load(b + pl.arange(0, BLOCK), mask=mask, other=2.0)
    pl.store(out + offs, pl.erf(v + w) * v, mask=mask)


@pypto.jit
def other_mask_kernel(x, out, n, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    pl.store(out + offs, pl.load(x + offs), mask=offs > n)  # not a prefix


@pypto.jit
def wrap_kernel(x, out, s, n, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    m = (s + offs) < n
    pl.store(out + offs, pl.load(x + offs) + 1.0, mask=m)
    pl.store(out + BLOCK, pl.sum(pl.load(x + offs, mask=m, other=0.0), axis=0))


@pypto.jit
def row_stats(x, out, n, start, BLOCK: pl.constexpr):
    offs = start + pl.arange(0, BLOCK)
    mask = offs < n
    v = pl.load(x + offs, mask=mask, other=-float("inf"))
    mx = pl.max(v, axis=0)
    e = pl.where(mask, v - mx, 0.0)
    pl.store(out, mx)
    pl.store(out + 1, pl.sum(e * e, axis=0))
    pl.store(out + 2, pl.sum(pl.load(x + offs, mask=mask, other=0.5), axis=0))


@pypto.jit
def column_sums(x, out, n, BLOCK: pl.constexpr):
    """Triton's layer-norm loop: accumulate masked blocks of a row, then reduce."""
    acc = pl.zeros([BLOCK], dtype=pl.float32)
    sq = pl.zeros([BLOCK], dtype=pl.float32)
    for off in range(0, n, BLOCK):
        cols = off + pl.arange(0, BLOCK)
        v = pl.load(x + cols, mask=cols < n, other=0.0)
        acc += v
        sq += pl.where(cols < n, v * v - 1.0, 0.0)
    pl.store(out, pl.sum(acc, axis=0))
    pl.store(out + 1, pl.sum(sq, axis=0))


@pypto.jit
def scaled_copy(x, out, sums, start, n, BLOCK: pl.constexpr):
    """A column loop with a side effect in every iteration and a start that is not a
    multiple of the block: full blocks run in a loop of their own, the rest after it."""
    acc = pl.zeros([BLOCK], dtype=pl.float32)
    for off in range(start, n, BLOCK):
        cols = off + pl.arange(0, BLOCK)
        v = pl.load(x + cols, mask=cols < n, other=0.0)
        pl.store(out + cols, v * 2.0 + 1.0, mask=cols < n)
        acc += v
    pl.store(sums, pl.sum(acc, axis=0))


def _row_stats_ref(x, n, start):
    v = x[start:n].double()
    if len(v) == 0:
        return [-float("inf"), float("nan"), 0.5 * (64 - len(v))]
    mx = v.max()
    return [mx, ((v - mx) ** 2).sum(), v.sum() + 0.5 * (64 - len(v))]


def _bias(x, b, n, start, block, backend):
    out = torch.full_like(x, 7.0)
    grid = (max(pypto.cdiv(max(n - start, 0), block), 1),)
    bias_kernel[grid](x, b, out, n, start, BLOCK=block, backend=backend)
    return out


def _bias_ref(x, b, n, start, block):
    out = torch.full_like(x, 7.0)
    stop = min(n, x.numel())
    for s0 in range(start, stop, block):
        lanes = torch.arange(s0, min(s0 + block, stop))
        v = x[lanes]
        out[lanes] = torch.erf(v + b[lanes - s0]) * v
    return out


def test_marks_prefix_stores_only():
    x, b, out = torch.randn(64), torch.randn(16), torch.empty(64)
    assert "prefix=true" in opt_ir(bias_kernel, [x, b, out, 64, 0], {"BLOCK": 16})
    assert opt_ir(row_stats, [x, out, 64, 0], {"BLOCK": 64}).count("lt %") == 1  # one mask
    assert "prefix=true" in opt_ir(row_stats, [x, out, 64, 0], {"BLOCK": 64})
    assert "prefix=true" not in opt_ir(other_mask_kernel, [x, out, 3], {"BLOCK": 64})
    text = render_c(parse_module(opt_ir(bias_kernel, [x, b, out, 64, 0], {"BLOCK": 16})), "cpu")
    assert "j < m_" in text and "j = m_" in text
    text = render_c(parse_module(opt_ir(row_stats, [x, out, 64, 0], {"BLOCK": 64})), "cpu")
    assert "c < cf_" in text and "c = cf_" in text
    text = render_c(parse_module(opt_ir(column_sums, [x, out, 64], {"BLOCK": 16})), "cpu")
    assert text.count("i < m_") == 2 and text.count("i = m_") == 2  # both accumulators
    assert "== 16) do {" in text and "== 16);" in text  # full blocks first, a loop of their own


def test_reductions_over_prefix_masks(backend, tmp_path):
    torch.manual_seed(2)
    x = torch.randn(200) * 3
    for n, start in [(64, 0), (63, 0), (33, 0), (31, 0), (1, 0), (200, 5), (40, 30), (10, 20)]:
        out = torch.zeros(3)
        row_stats[(1,)](x, out, n, start, BLOCK=64, backend=backend)
        want = _row_stats_ref(x, min(n, start + 64), start)
        assert out[0].item() == want[0]
        if n > start:
            torch.testing.assert_close(
                out[1:].double(), torch.tensor(want[1:]), rtol=1e-5, atol=1e-5
            )
        if backend == "cpu":
            ref = torch.zeros(3)
            launch_unfused(row_stats, (1,), [x, ref, n, start], {"BLOCK": 64}, tmp_path)
            same_bits(out, ref)


def test_accumulators_over_prefix_masks(backend, tmp_path):
    torch.manual_seed(3)
    x = torch.randn(300)
    for n in (300, 256, 255, 17, 1, 0):
        out = torch.zeros(2)
        column_sums[(1,)](x, out, n, BLOCK=64, backend=backend)
        v = x[:n].double()
        want = torch.stack([v.sum(), (v * v - 1.0).sum()]).float()
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-4)
        if backend == "cpu":
            ref = torch.zeros(2)
            launch_unfused(column_sums, (1,), [x, ref, n], {"BLOCK": 64}, tmp_path)
            same_bits(out, ref)


def test_loops_over_full_then_partial_blocks(backend, tmp_path):
    torch.manual_seed(4)
    x = torch.randn(300)
    for start, n in [(0, 300), (0, 256), (5, 300), (40, 45), (70, 64), (0, 0)]:
        out, sums = torch.full((300,), 7.0), torch.zeros(1)
        scaled_copy[(1,)](x, out, sums, start, n, BLOCK=32, backend=backend)
        want = torch.full((300,), 7.0)
        want[start:n] = x[start:n] * 2.0 + 1.0
        assert torch.equal(out, want), (start, n)
        torch.testing.assert_close(sums, x[start:n].sum(0, keepdim=True), rtol=1e-5, atol=1e-5)
        if backend == "cpu":
            ref_out, ref_sums = torch.full((300,), 7.0), torch.zeros(1)
            args = [x, ref_out, ref_sums, start, n]
            launch_unfused(scaled_copy, (1,), args, {"BLOCK": 32}, tmp_path)
            same_bits(sums, ref_sums)


def test_prefix_counts(backend):
    torch.manual_seed(0)
    x, b = torch.randn(300) * 2, torch.randn(64)
    for n, start in [(300, 0), (257, 0), (5, 0), (0, 0), (300, 40), (100, 150), (300, 3)]:
        got = _bias(x, b, n, start, 64, backend)
        torch.testing.assert_close(got, _bias_ref(x, b, n, start, 64), rtol=2e-6, atol=1e-6)


def test_prefix_matches_masked_loop_bit_for_bit(tmp_path):
    torch.manual_seed(1)
    x, b = torch.randn(300) * 3, torch.randn(64)
    for n in (300, 131, 1):
        want = torch.full_like(x, 7.0)
        grid = (pypto.cdiv(n, 64),)
        launch_unfused(bias_kernel, grid, [x, b, want, n, 0], {"BLOCK": 64}, tmp_path)
        same_bits(_bias(x, b, n, 0, 64, "cpu"), want)


def test_int32_wrap_keeps_the_masked_lanes(backend):
    x = torch.arange(64, dtype=torch.float32)
    big = 2**31 - 1
    for s, n in [(big - 4, big), (big - 40, big), (-5, 3)]:
        out = torch.zeros(65)
        wrap_kernel[(1,)](x, out, s, n, BLOCK=64, backend=backend)
        lanes = (torch.arange(64, dtype=torch.int64) + s + 2**31) % 2**32 - 2**31  # int32 wrap
        want = torch.where(lanes < n, x + 1.0, torch.zeros(64))
        assert torch.equal(out[:64], want), (s, n)
        assert out[64].item() == torch.where(lanes < n, x, torch.zeros(64)).sum().item()
