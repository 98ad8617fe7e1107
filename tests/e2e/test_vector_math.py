"""The prelude's explicit vector exp and erf: f32 EXP blocks run a loop of their own
(``pypto_expf_n``); ERF blocks call the written-out vector variants of ``pypto_erff``
from the loop gcc vectorizes.

Their results must be the bits of the scalar ``pypto_expf`` / ``pypto_erff`` (a scalar op
in the same kernel) for every kind of input -- NaN, infinities, overflow, subnormals,
underflow, the ends of erf's intervals -- and every tail length of the last, partial
vector.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import needs_cc
from test_fusion import same_bits

import pypto_jit as pypto
import pypto_jit.language as pl

pytestmark = needs_cc


@pypto.jit
def both_ways(x, vec, one, n, FN: pl.constexpr, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    v = pl.load(x + offs, mask=offs < n, other=0.0)
    pl.store(vec + offs, pl.exp(v) if FN == "exp" else pl.erf(v), mask=offs < n)
    for i in pl.range(0, n):
        s = pl.load(x + i)
        pl.store(one + i, pl.exp(s) if FN == "exp" else pl.erf(s))


COMMON = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e30, -1e30, 1e-45, -1e-45]
SPECIAL = {
    "exp": [88.72, 88.73, 89.5, -87.3, -100.0, -103.9, -103.97, -104.0, -104.5, 0.5],
    # interval ends (odd sixteenths, where |x| + 2^20 rounds to even), the end of the
    # small-|x| form (5/16) and of the table (3.92, 3.9375)
    "erf": [1 / 16, 3 / 16, 5 / 16, -5 / 16, 0.3125001, 2.4375, 3.92, 3.9200001, 3.9375, 4.0],
}
RANGE = {"exp": (-110, 95), "erf": (-4.5, 4.5)}


def _inputs(fn: str, n: int) -> torch.Tensor:
    special = COMMON + SPECIAL[fn]
    rng = np.random.default_rng(n)
    x = np.concatenate([special, rng.uniform(*RANGE[fn], max(n - len(special), 0))])[:n]
    return torch.from_numpy(x.astype(np.float32))


@pytest.mark.parametrize("fn", ["exp", "erf"])
def test_vector_math_has_the_scalar_bits(backend, fn):
    if backend == "interpret":  # numpy's functions: covered by the ulp test in test_fusion
        return
    for n, block in [(1, 1), (15, 16), (17, 32), (19, 32), (200, 256), (256, 256), (8, 8)]:
        x = _inputs(fn, n)
        vec, one = torch.zeros(n), torch.zeros(n)
        both_ways[(1,)](x, vec, one, n, FN=fn, BLOCK=block, backend=backend)
        same_bits(vec, one)
        assert torch.isnan(vec).sum() == torch.isnan(x).sum()


@pytest.mark.parametrize("fn", ["exp", "erf"])
def test_vector_math_matches_torch(backend, fn):
    x = torch.randn(100) * (30 if fn == "exp" else 2)
    vec, one = torch.zeros(100), torch.zeros(100)
    both_ways[(1,)](x, vec, one, 100, FN=fn, BLOCK=128, backend=backend)
    torch.testing.assert_close(vec, getattr(torch, fn)(x))
