"""f32 EXP blocks: a loop of their own with the prelude's explicit vector exp (``pypto_expf_n``).

Its results must be the bits of the scalar ``pypto_expf`` (a scalar EXP in the same kernel)
for every kind of input -- NaN, infinities, overflow, subnormal results, underflow -- and
every tail length of the last, partial vector.
"""

from __future__ import annotations

import numpy as np
import torch
from conftest import needs_cc
from test_fusion import same_bits

import pypto_jit as pypto
import pypto_jit.language as pl

pytestmark = needs_cc


@pypto.jit
def exp_both_ways(x, vec, one, n, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    pl.store(vec + offs, pl.exp(pl.load(x + offs, mask=offs < n, other=0.0)), mask=offs < n)
    for i in pl.range(0, n):
        pl.store(one + i, pl.exp(pl.load(x + i)))


def _inputs(n: int) -> torch.Tensor:
    special = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 88.72, 88.73, 89.5, 1e30]
    special += [-87.3, -100.0, -103.9, -103.97, -104.0, -104.5, -1e30, 1e-45, -1e-45, 0.5]
    rng = np.random.default_rng(n)
    x = np.concatenate([special, rng.uniform(-110, 95, max(n - len(special), 0))])[:n]
    return torch.from_numpy(x.astype(np.float32))


def test_vector_exp_has_the_scalar_bits(backend):
    if backend == "interpret":  # numpy's exp: covered by the ulp test in test_fusion
        return
    for n, block in [(1, 1), (15, 16), (17, 32), (19, 32), (200, 256), (256, 256), (8, 8)]:
        x = _inputs(n)
        vec, one = torch.zeros(n), torch.zeros(n)
        exp_both_ways[(1,)](x, vec, one, n, BLOCK=block, backend=backend)
        same_bits(vec, one)
        assert torch.isnan(vec).sum() == torch.isnan(x).sum()


def test_vector_exp_matches_torch(backend):
    x = torch.randn(100) * 30
    vec, one = torch.zeros(100), torch.zeros(100)
    exp_both_ways[(1,)](x, vec, one, 100, BLOCK=128, backend=backend)
    torch.testing.assert_close(vec, torch.exp(x))
