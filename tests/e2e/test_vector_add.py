"""Vector add and friends, end to end on every backend, against torch and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl


@pypto.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: pl.constexpr):
    pid = pl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + pl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = pl.load(x_ptr + offsets, mask=mask)
    y = pl.load(y_ptr + offsets, mask=mask)
    pl.store(out_ptr + offsets, x + y, mask=mask)


@pypto.jit
def add_unmasked(x_ptr, y_ptr, out_ptr, BLOCK_SIZE: pl.constexpr):
    offsets = pl.program_id(0) * BLOCK_SIZE + pl.arange(0, BLOCK_SIZE)
    pl.store(out_ptr + offsets, pl.load(x_ptr + offsets) + pl.load(y_ptr + offsets))


@pypto.jit
def copy_kernel(x_ptr, out_ptr, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    pl.store(out_ptr + offs, pl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


def launch_add(x, y, out, block, backend):
    n = x.shape[0]
    grid = lambda meta: (pypto.cdiv(n, meta["BLOCK_SIZE"]),)  # noqa: E731
    add_kernel[grid](x, y, out, n, BLOCK_SIZE=block, backend=backend)


@pytest.mark.parametrize("size", [1, 1000, 98432])
@pytest.mark.parametrize("block", [1024, 300])
def test_vector_add_torch(backend, size, block):
    torch.manual_seed(size)
    x, y = torch.rand(size), torch.rand(size)
    out = torch.full_like(x, -1.0)
    launch_add(x, y, out, block, backend)
    torch.testing.assert_close(out, x + y, rtol=0, atol=0)


def test_vector_add_numpy(backend):
    rng = np.random.default_rng(0)
    x, y = rng.random(5000, dtype=np.float32), rng.random(5000, dtype=np.float32)
    out = np.zeros_like(x)
    launch_add(x, y, out, 1024, backend)
    np.testing.assert_array_equal(out, x + y)


def test_unmasked_exact_multiple(backend):
    x, y = torch.randn(4096), torch.randn(4096)
    out = torch.zeros_like(x)
    add_unmasked[(4,)](x, y, out, BLOCK_SIZE=1024, backend=backend)
    torch.testing.assert_close(out, x + y, rtol=0, atol=0)


INT_DTYPES = [
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _random(dtype, n, seed):
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return (torch.randn(n, generator=g) * 100).to(dtype)
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -(2**62)), min(info.max, 2**62)
    return torch.randint(lo, hi, (n,), generator=g, dtype=torch.int64).to(dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES + FLOAT_DTYPES, ids=str)
def test_add_every_dtype(backend, dtype):
    x, y = _random(dtype, 1000, 1), _random(dtype, 1000, 2)
    out = torch.zeros_like(x)
    launch_add(x, y, out, 300, backend)
    if dtype.is_floating_point:
        expected = x + y  # torch rounds half types per op, as pypto does
    else:  # wrap-around addition, computed in int64 bits
        expected = (x.to(torch.int64) + y.to(torch.int64)).to(dtype)
    assert torch.equal(out, expected)


def test_copy_bool(backend):
    x = torch.rand(777) > 0.5
    out = torch.zeros_like(x)
    copy_kernel[(pypto.cdiv(777, 128),)](x, out, 777, BLOCK=128, backend=backend)
    assert torch.equal(out, x)


@pypto.jit
def rebind_kernel(X, Y, stride, n_cols, BLOCK: pl.constexpr):
    row = pl.program_id(0)
    X += row * stride  # rebinding a tensor parameter as a pointer
    Y += row * stride
    cols = pl.arange(0, BLOCK)
    pl.store(Y + cols, pl.load(X + cols, mask=cols < n_cols) * 2.0, mask=cols < n_cols)


def test_rebind_tensor_parameter(backend):
    x = torch.randn(7, 50)
    y = torch.zeros_like(x)
    rebind_kernel[(7,)](x, y, x.stride(0), 50, BLOCK=64, backend=backend)
    torch.testing.assert_close(y, x * 2.0)


@pypto.jit
def constexpr_if_kernel(x_ptr, out_ptr, n, SQUARE: pl.constexpr, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    x = pl.load(x_ptr + offs, mask=offs < n)
    if SQUARE:
        y = x * x
    else:
        y = -x
    pl.store(out_ptr + offs, y, mask=offs < n)


@pytest.mark.parametrize("square", [True, False])
def test_if_constexpr(backend, square):
    x = torch.randn(300)
    out = torch.zeros_like(x)
    constexpr_if_kernel[(3,)](x, out, 300, SQUARE=square, BLOCK=128, backend=backend)
    torch.testing.assert_close(out, x * x if square else -x)


@pypto.jit
def row_sum_loop(x_ptr, out_ptr, n_rows, n_cols, BLOCK: pl.constexpr):
    cols = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    mask = cols < n_cols
    acc = pl.zeros((BLOCK,), pl.float32)
    for r in range(n_rows):  # run-time trip count, loop-carried block
        acc += pl.load(x_ptr + r * n_cols + cols, mask=mask, other=0.0)
    pl.store(out_ptr + cols, acc, mask=mask)


def test_for_range_runtime(backend):
    x = torch.randn(13, 100)
    out = torch.zeros(100)
    row_sum_loop[(pypto.cdiv(100, 32),)](x, out, 13, 100, BLOCK=32, backend=backend)
    torch.testing.assert_close(out, x.sum(0), rtol=1e-5, atol=1e-5)


@pypto.jit
def runtime_if_kernel(x_ptr, out_ptr, n, threshold, BLOCK: pl.constexpr):
    pid = pl.program_id(0)
    offs = pid * BLOCK + pl.arange(0, BLOCK)
    x = pl.load(x_ptr + offs, mask=offs < n)
    scale = 1.0
    if pid < threshold:  # run-time condition with a value flowing out
        scale = 3.0
    pl.store(out_ptr + offs, x * scale, mask=offs < n)


def test_if_runtime(backend):
    x = torch.randn(400)
    out = torch.zeros_like(x)
    runtime_if_kernel[(4,)](x, out, 400, 2, BLOCK=100, backend=backend)
    expected = x.clone()
    expected[:200] *= 3.0
    torch.testing.assert_close(out, expected)


@pypto.jit
def oob_store_kernel(x_ptr, out_ptr, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    x = pl.load(x_ptr + offs, mask=offs < 100)
    pl.store(out_ptr + offs, x)  # no mask: the last program writes past the end


def test_sim_reports_out_of_bounds_store():
    x = torch.randn(100)
    out = torch.zeros(100)
    with pytest.raises(pypto.OutOfBoundsError) as info:
        oob_store_kernel[(2,)](x, out, BLOCK=64, backend="sim")
    err = info.value
    line = oob_store_kernel.fn.__code__.co_firstlineno + 4
    assert err.param == "out_ptr"
    assert err.pid == (1, 0, 0)
    assert err.index == 100
    assert err.loc.line == line
    assert f"test_vector_add.py:{line}" in str(err)


def test_interpret_reports_out_of_bounds_store():
    with pytest.raises(pypto.OutOfBoundsError) as info:
        oob_store_kernel[(2,)](torch.randn(100), torch.zeros(100), BLOCK=64, backend="interpret")
    assert info.value.param == "out_ptr"
    assert info.value.index == 100
