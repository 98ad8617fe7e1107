"""Atomics end to end on every backend: each kind with masks and returned old values,
scalar pointers, duplicate addresses inside one block, and contention between programs
on the multi-threaded cpu backend (tickets, a histogram equal to torch.bincount, a
max over every program, an atomic_cas spin lock guarding plain loads and stores).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl

NP_ID = lambda d: np.dtype(d).name  # noqa: E731 - readable test ids

N = 40
BLOCK = 64  # > N: the masked-off lanes must neither act nor report anything


@pypto.jit
def int_atomics(add_p, max_p, min_p, and_p, or_p, xor_p, xchg_p, v, old, n, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    m = o < n
    x = pl.load(v + o, mask=m)
    pl.store(old + 0 * BLOCK + o, pl.atomic_add(add_p + o, x, mask=m), mask=m)
    pl.store(old + 1 * BLOCK + o, pl.atomic_max(max_p + o, x, mask=m), mask=m)
    pl.store(old + 2 * BLOCK + o, pl.atomic_min(min_p + o, x, mask=m), mask=m)
    pl.store(old + 3 * BLOCK + o, pl.atomic_and(and_p + o, x, mask=m), mask=m)
    pl.store(old + 4 * BLOCK + o, pl.atomic_or(or_p + o, x, mask=m), mask=m)
    pl.store(old + 5 * BLOCK + o, pl.atomic_xor(xor_p + o, x, mask=m), mask=m)
    pl.store(old + 6 * BLOCK + o, pl.atomic_xchg(xchg_p + o, x, mask=m), mask=m)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int64], ids=NP_ID)
def test_int_atomic_kinds(backend, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -(2**20)), min(info.max, 2**20)
    init = rng.integers(lo, hi, N).astype(dtype)
    v = rng.integers(lo, hi, N).astype(dtype)
    bufs = [init.copy() for _ in range(7)]
    old = np.full(7 * BLOCK, 99, dtype)
    int_atomics[(1,)](*bufs, v, old, N, BLOCK=BLOCK, backend=backend)
    expected = [init + v, np.maximum(init, v), np.minimum(init, v), init & v, init | v, init ^ v, v]
    for name, buf, exp, k in zip(
        ["add", "max", "min", "and", "or", "xor", "xchg"], bufs, expected, range(7), strict=True
    ):
        np.testing.assert_array_equal(buf, exp, err_msg=f"atomic_{name} memory")
        np.testing.assert_array_equal(
            old[k * BLOCK : k * BLOCK + N], init, err_msg=f"atomic_{name} old values"
        )
        assert (old[k * BLOCK + N : (k + 1) * BLOCK] == 99).all(), f"atomic_{name} masked store"


@pypto.jit
def float_atomics(add_p, max_p, min_p, xchg_p, v, old, n, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    m = o < n
    x = pl.load(v + o, mask=m)
    pl.store(old + 0 * BLOCK + o, pl.atomic_add(add_p + o, x, mask=m))  # masked-off: 0
    pl.store(old + 1 * BLOCK + o, pl.atomic_max(max_p + o, x, mask=m))
    pl.store(old + 2 * BLOCK + o, pl.atomic_min(min_p + o, x, mask=m))
    pl.store(old + 3 * BLOCK + o, pl.atomic_xchg(xchg_p + o, x, mask=m))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_float_atomic_kinds(backend, dtype):
    torch.manual_seed(1)
    init = torch.randn(BLOCK, dtype=dtype)  # negative and positive: max/min must order both
    v = torch.randn(N, dtype=dtype)
    bufs = [init.clone() for _ in range(4)]
    old = torch.full((4 * BLOCK,), 99.0, dtype=dtype)
    float_atomics[(1,)](*bufs, v, old, N, BLOCK=BLOCK, backend=backend)
    head = init[:N]
    for name, buf, exp in zip(
        ["add", "max", "min", "xchg"],
        bufs,
        [head + v, torch.maximum(head, v), torch.minimum(head, v), v],
        strict=True,
    ):
        assert torch.equal(buf[:N], exp), f"atomic_{name} memory"
        assert torch.equal(buf[N:], init[N:]), f"atomic_{name} touched a masked-off lane"
    for k in range(4):
        assert torch.equal(old[k * BLOCK : k * BLOCK + N], head), f"old values of kind {k}"
        assert (old[k * BLOCK + N : (k + 1) * BLOCK] == 0).all(), "masked-off lanes return 0"


@pypto.jit
def cas_block(p, cmp, val, old, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    pl.store(old + o, pl.atomic_cas(p + o, pl.load(cmp + o), pl.load(val + o)))


def test_atomic_cas_block(backend):
    mem = torch.arange(16, dtype=torch.int32)
    cmp = mem.clone()
    cmp[1::2] += 100  # odd lanes do not match
    val = torch.arange(16, dtype=torch.int32) * -10 - 1
    old = torch.zeros(16, dtype=torch.int32)
    init = mem.clone()
    cas_block[(1,)](mem, cmp, val, old, BLOCK=16, backend=backend)
    assert torch.equal(old, init)
    assert torch.equal(mem, torch.where(cmp == init, val, init))


@pypto.jit
def tickets(counter, out):
    pid = pl.program_id(0)
    t = pl.atomic_add(counter, 1)  # scalar pointer: a scalar old value
    pl.store(out + pid, t)


def test_atomic_tickets_are_a_permutation(backend):
    g = 2000
    counter = torch.zeros(1, dtype=torch.int32)
    out = torch.full((g,), -1, dtype=torch.int32)
    tickets[(g,)](counter, out, num_threads=2, backend=backend)
    assert counter.item() == g
    assert torch.equal(out.sort().values, torch.arange(g, dtype=torch.int32))


@pypto.jit
def histogram(x, hist, n, BLOCK: pl.constexpr):
    o = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = o < n
    b = pl.load(x + o, mask=m)
    pl.atomic_add(hist + b, 1, mask=m)  # duplicate bins inside one block, and across programs


def test_histogram_matches_bincount(backend):
    torch.manual_seed(2)
    n, bins = 50_000 if backend != "interpret" else 8_000, 37
    x = (torch.randn(n).abs() * 8).long().clamp(max=bins - 1).to(torch.int32)  # skewed
    hist = torch.zeros(bins, dtype=torch.int32)
    histogram[(pypto.cdiv(n, 100),)](x, hist, n, BLOCK=100, num_threads=2, backend=backend)
    assert torch.equal(hist, torch.bincount(x, minlength=bins).to(torch.int32))


@pypto.jit
def global_extrema(x, mx, mn, total, n, BLOCK: pl.constexpr):
    o = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = o < n
    v = pl.load(x + o, mask=m)
    zero = pl.zeros((BLOCK,), dtype=pl.int32)
    pl.atomic_max(mx + zero, v, mask=m)  # every lane hits the same address
    pl.atomic_min(mn + zero, v, mask=m)
    pl.atomic_add(total, pl.sum(pl.where(m, v, 0.0), axis=0))


def test_contended_float_max_min_add(backend):
    torch.manual_seed(3)
    n = 20_000 if backend != "interpret" else 3_000
    x = torch.randint(-1000, 1000, (n,)).float()  # integer-valued: the sum is exact
    mx, mn = torch.full((1,), -float("inf")), torch.full((1,), float("inf"))
    total = torch.zeros(1)
    global_extrema[(pypto.cdiv(n, 64),)](
        x, mx, mn, total, n, BLOCK=64, num_threads=2, backend=backend
    )
    assert mx.item() == x.max().item() and mn.item() == x.min().item()
    assert total.item() == x.sum().item()


@pypto.jit
def locked_increment(lock, value, count_out):
    # Triton's layer-norm pattern: a spin lock around plain loads and stores
    while pl.atomic_cas(lock, 0, 1) == 1:
        pass
    v = pl.load(value)
    pl.store(value, v + 1.0)
    c = pl.load(count_out)
    pl.store(count_out, c + 1)
    pl.atomic_xchg(lock, 0)


def test_atomic_cas_spin_lock(backend):
    g = 1000 if backend != "interpret" else 200
    lock = torch.zeros(1, dtype=torch.int32)
    value, count = torch.zeros(1), torch.zeros(1, dtype=torch.int64)
    locked_increment[(g,)](lock, value, count, num_threads=2, backend=backend)
    assert lock.item() == 0
    assert value.item() == g and count.item() == g


@pypto.jit
def program_order(p, counter, out, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    a = pl.load(p + o)
    pl.store(p + o, a + 1.0)
    b = pl.load(p + o)  # the same address again: must see the store, not reuse `a`
    pl.atomic_add(counter, 1)  # identical side effects must not be merged ...
    pl.atomic_add(counter, 1)
    first = pl.atomic_add(counter, 0)  # ... nor dropped when their results go unused
    pl.store(p + o, b * 2.0)
    c = pl.load(p + o)
    pl.store(out + o, c - a)
    pl.store(out + BLOCK, first.to(pl.float32))


def test_side_effects_keep_program_order(backend):
    p = torch.arange(8, dtype=torch.float32)
    counter = torch.zeros(1, dtype=torch.int32)
    out = torch.zeros(9)
    program_order[(1,)](p, counter, out, BLOCK=8, backend=backend)
    a = torch.arange(8, dtype=torch.float32)
    assert torch.equal(p, (a + 1.0) * 2.0)
    assert torch.equal(out[:8], (a + 1.0) * 2.0 - a)
    assert counter.item() == 2 and out[8].item() == 2.0
