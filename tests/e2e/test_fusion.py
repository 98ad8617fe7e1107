"""Fused code (``passes.fusion``, ``passes.streaming`` and the renderer's fused loops)
against the unfused path, the interpreter and torch.

The unfused path compiles the same lowered IR with the pipeline minus the passes that
annotate for the renderer (fusion, streaming, prefix masks, write prefetch), so every block
is computed by a loop of its own into an array and stored plainly: the
fused kernel must agree with it bit for bit on the cpu backend (fusion moves computations
between loops, it never reorders arithmetic). Each kernel also runs on ``sim`` and
``interpret`` and is compared with torch/numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import BACKENDS, C_BACKENDS, needs_cc

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.codegen import render_c
from pypto_jit.ir.parser import parse_module
from pypto_jit.passes import PIPELINE, run_pipeline, streaming

pytestmark = needs_cc
UNOPTIMIZED = ("fusion", "streaming", "prefix_mask", "write_prefetch")
UNFUSED = [(n, fn) for n, fn in PIPELINE if n not in UNOPTIMIZED]


def launch_unfused(kernel, grid, args: list, constexprs: dict, tmp_path) -> None:
    """Compile ``kernel`` for ``args`` without the fusion passes and launch it on cpu."""
    from pypto_jit.runtime.compiler import compile_shared
    from pypto_jit.runtime.shim import runtime

    ck = kernel.warmup(*args, **constexprs, backend="cpu")
    m = run_pipeline(parse_module(ck.asm["ir"]), passes=UNFUSED)
    assert all(op.attr("fuse") is None for op in m.walk())
    src = tmp_path / f"{m.name}_unfused.c"
    src.write_text(render_c(m, "cpu"))
    compile_shared(src, src.with_suffix(".so"), "cpu")
    loaded = runtime().load_kernel(src.with_suffix(".so"))
    by_name = dict(zip(kernel.arg_names, args, strict=False))
    iargs: list[int] = []
    fargs: list[float] = []
    for p in m.params:
        a = by_name[p.name]
        if p.kind == "tensor":
            iargs += [a.data_ptr(), *a.shape, *a.stride()]
        elif isinstance(a, float):
            fargs.append(a)
        else:
            iargs.append(int(a))
    assert runtime().launch(loaded, grid, iargs, fargs) == 0


def opt_ir(kernel, args: list, constexprs: dict) -> str:
    return kernel.warmup(*args, **constexprs, backend="cpu").asm["opt_ir"]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal, NaNs included (as bit patterns of the same dtype, so -0.0 != 0.0)."""
    assert a.shape == b.shape
    view = {4: torch.int32, 2: torch.int16, 8: torch.int64}[a.element_size()]
    nan = torch.isnan(a) & torch.isnan(b)
    assert torch.equal(a.view(view)[~nan], b.view(view)[~nan])


# -- elementwise chains fused into their store --------------------------------------------


@pypto.jit
def add_kernel(x, y, out, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    mask = offs < n
    a = pl.load(x + offs, mask=mask)
    b = pl.load(y + offs, mask=mask)
    pl.store(out + offs, a + b, mask=mask)


@pypto.jit
def gelu_chain(x, b, out, n_cols, stride, BLOCK: pl.constexpr):
    row = pl.program_id(0)
    cols = pl.program_id(1) * BLOCK + pl.arange(0, BLOCK)
    mask = cols < n_cols
    z = pl.load(x + row * stride + cols, mask=mask) + pl.load(b + cols, mask=mask)
    y = 0.5 * z * (1.0 + pl.erf(z * 0.7071067811865476))
    pl.store(out + row * n_cols + cols, pl.where(z > 3.0, pl.sqrt(pl.abs(y)), y), mask=mask)


@pytest.mark.parametrize("n,block", [(1, 16), (1000, 128), (1024, 1024), (4097, 1000)])
def test_vector_add_tails(backend, n, block, tmp_path):
    x, y = torch.randn(n), torch.randn(n)
    out = torch.full((n,), -7.0)
    add_kernel[(pypto.cdiv(n, block),)](x, y, out, n, BLOCK=block, backend=backend)
    torch.testing.assert_close(out, x + y, rtol=0, atol=0)
    if backend == "cpu":
        assert 'fuse="inline"' in opt_ir(add_kernel, [x, y, out, n], {"BLOCK": block})
        ref = torch.full((n,), -7.0)
        launch_unfused(add_kernel, (pypto.cdiv(n, block),), [x, y, ref, n], {"BLOCK": block},
                       tmp_path)  # fmt: skip
        same_bits(out, ref)


def test_in_place_add(backend):
    """out is x: each lane is read, then written, by the same iteration."""
    x, y = torch.randn(3000), torch.randn(3000)
    want = x + y
    add_kernel[(3,)](x, y, x, 3000, BLOCK=1024, backend=backend)
    torch.testing.assert_close(x, want, rtol=0, atol=0)


@pytest.mark.parametrize("rows,cols,block", [(7, 781, 256), (64, 1024, 1024), (3, 5, 8)])
def test_elementwise_chain(backend, rows, cols, block, tmp_path):
    torch.manual_seed(rows)
    xs = torch.randn(rows, cols + 3) * 3
    x = xs[:, 2 : cols + 2]  # a row stride that is not the row length
    b, out = torch.randn(cols), torch.zeros(rows, cols)
    grid = (rows, pypto.cdiv(cols, block))
    args = [x, b, out, cols, x.stride(0)]
    gelu_chain[grid](*args, BLOCK=block, backend=backend)
    z = x + b
    y = torch.nn.functional.gelu(z)
    torch.testing.assert_close(out, torch.where(z > 3, y.abs().sqrt(), y), atol=2e-6, rtol=1e-5)
    if backend == "cpu":
        ref = torch.zeros(rows, cols)
        launch_unfused(gelu_chain, grid, [x, b, ref, cols, x.stride(0)], {"BLOCK": block}, tmp_path)
        same_bits(out, ref)


@pypto.jit
def shift_kernel(x, n, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    v = pl.load(x + offs, mask=offs < n)
    pl.store(x + offs + 1, v * 2.0, mask=offs + 1 < n)  # same tensor, the next lane


def test_store_to_the_loaded_tensor_at_another_lane_is_not_fused(backend):
    """All lanes are loaded before any is stored (block semantics), even in place."""
    x = torch.arange(10.0)
    shift_kernel[(1,)](x, 10, BLOCK=16, backend=backend)
    torch.testing.assert_close(x, torch.cat([torch.zeros(1), torch.arange(9.0) * 2]))
    assert 'fuse="inline"' not in opt_ir(shift_kernel, [x, 10], {"BLOCK": 16}).split("load")[1]


@pypto.jit
def load_store_load(x, out, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    v = pl.load(x + offs)
    pl.store(x + offs, v + 1.0)  # a side effect between the load and its use below
    pl.store(out + offs, v * 3.0)


def test_loads_do_not_move_past_stores(backend):
    x = torch.arange(32.0)
    out = torch.zeros(32)
    load_store_load[(1,)](x, out, BLOCK=32, backend=backend)
    torch.testing.assert_close(out, torch.arange(32.0) * 3)
    torch.testing.assert_close(x, torch.arange(32.0) + 1)


@pypto.jit
def gather_kernel(x, out, s0, s1, M: pl.constexpr, N: pl.constexpr):
    i = pl.arange(0, M)[:, None]
    j = pl.arange(0, N)[None, :]
    v = pl.load(x + i * s0 + j * s1)  # strided along the last axis: a gather
    pl.store(out + i * N + j, pl.exp(v) - v * v)
    pl.store(out + M * N + i, pl.sum(pl.exp(v), axis=1)[:, None])


def test_gather_path(backend, tmp_path):
    """A transposed input: not contiguous, loads are gathers, still fused."""
    base = torch.randn(12, 10)
    x = base.t()  # [10, 12], strides (1, 10)
    out = torch.zeros(10 * 12 + 10)
    args = [x, out, x.stride(0), x.stride(1)]
    gather_kernel[(1,)](*args, M=10, N=12, backend=backend)
    torch.testing.assert_close(out[:120].view(10, 12), x.exp() - x * x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[120:], x.exp().sum(1), rtol=1e-5, atol=1e-5)
    if backend == "cpu":
        ref = torch.zeros(130)
        launch_unfused(gather_kernel, (1,), [x, ref, x.stride(0), x.stride(1)],
                       {"M": 10, "N": 12}, tmp_path)  # fmt: skip
        same_bits(out, ref)


@pypto.jit
def tile_kernel(x, out, stride, n, M: pl.constexpr, N: pl.constexpr):
    i = pl.arange(0, M)[:, None]
    j = pl.arange(0, N)[None, :]
    mask = (i < n) & (j < n)
    v = pl.load(x + i * stride + j, mask=mask, other=1.0)  # contiguous rows of a 2-D tile
    pl.store(out + i * N + j, pl.log(v * v + 1.0), mask=mask)


@pytest.mark.parametrize("n", [5, 8])
def test_two_dimensional_tile(backend, n, tmp_path):
    x = torch.randn(9, 11)
    out = torch.full((8, 8), 3.0)
    tile_kernel[(1,)](x, out, 11, n, M=8, N=8, backend=backend)
    want = torch.full((8, 8), 3.0)
    want[:n, :n] = torch.log(x[:n, :n] ** 2 + 1)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)


# -- reductions fused with their producers ------------------------------------------------


@pypto.jit
def softmax_kernel(out, x, stride, n_cols, BLOCK: pl.constexpr):
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK)
    v = pl.load(x + row * stride + cols, mask=cols < n_cols, other=-float("inf"))
    num = pl.exp(v - pl.max(v, axis=0))
    pl.store(out + row * n_cols + cols, num / pl.sum(num, axis=0), mask=cols < n_cols)


def _softmax_input(rows, cols):
    torch.manual_seed(cols)
    x = torch.randn(rows, cols) * 5
    inf, nan = math.inf, math.nan
    x[0, cols // 2] = nan  # NaN in a row: the whole row is NaN
    if rows > 1:
        x[1, :] = -inf  # all -inf: 0/0
    if rows > 2:
        x[2, 0] = inf  # +inf: inf - inf
    if rows > 3:
        x[3, 1:] = -inf  # one finite value: 1 there, 0 elsewhere
    if rows > 4:
        x[4] = x[4] - 95.0  # exp of the others underflows to subnormals
    return x


@pytest.mark.parametrize("cols,block", [(1, 1), (31, 32), (64, 64), (781, 1024), (1000, 1000)])
def test_softmax_edges(backend, cols, block, tmp_path):
    rows = 6
    x = _softmax_input(rows, cols)
    out = torch.zeros(rows, cols)
    softmax_kernel[(rows,)](out, x, x.stride(0), cols, BLOCK=block, backend=backend)
    torch.testing.assert_close(out, torch.softmax(x, 1), equal_nan=True, atol=1e-6, rtol=1e-5)
    if backend == "cpu":
        ir = opt_ir(softmax_kernel, [out, x, x.stride(0), cols], {"BLOCK": block})
        if block > 1:
            assert 'fuse="first"' in ir and 'fuse="inline"' in ir
        ref = torch.zeros(rows, cols)
        launch_unfused(softmax_kernel, (rows,), [ref, x, x.stride(0), cols], {"BLOCK": block},
                       tmp_path)  # fmt: skip
        same_bits(out, ref)


@pypto.jit
def reduce_kernel(x, out, n, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    v = pl.load(x + offs, mask=offs < n, other=float("nan"))
    w = pl.where(offs < n, v * 2.0, 0.0)
    pl.store(out + 0, pl.max(pl.where(offs < n, v, -float("inf")), axis=0))
    pl.store(out + 1, pl.min(pl.where(offs < n, v, float("inf")), axis=0))
    pl.store(out + 2, pl.sum(w, axis=0))
    pl.store(out + 3, pl.sum(pl.where(offs < n, pl.exp(w) * 0.5, 0.0), axis=0))


def _reduce_ref(x: np.ndarray) -> list[float]:
    x64 = x.astype(np.float64)
    return [x64.max(), x64.min(), (2 * x64).sum(), (0.5 * np.exp(2 * x64)).sum()]


@pytest.mark.parametrize("n,block", [(20, 32), (64, 64), (100, 128), (1000, 1000), (3, 300)])
@pytest.mark.parametrize("case", ["finite", "nan", "inf", "both_inf", "zeros"])
def test_reductions_nan_inf(backend, n, block, case, tmp_path):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    if case == "nan":
        x[rng.integers(n)] = np.nan
    elif case == "inf":
        x[rng.integers(n)] = np.inf
    elif case == "both_inf":
        x[0], x[-1] = np.inf, -np.inf
    elif case == "zeros":
        x[:] = -0.0
        x[n // 2] = 0.0
    xt, out = torch.from_numpy(x), torch.zeros(4)
    reduce_kernel[(1,)](xt, out, n, BLOCK=block, backend=backend)
    with np.errstate(all="ignore"):
        want = np.array(_reduce_ref(x), dtype=np.float32)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-5, equal_nan=True)
    if case == "nan":
        assert np.isnan(out.numpy()).all()
    if backend == "cpu":
        ref = torch.zeros(4)
        launch_unfused(reduce_kernel, (1,), [xt, ref, n], {"BLOCK": block}, tmp_path)
        same_bits(out, ref)


@pypto.jit
def rows_reduce(x, out, M: pl.constexpr, N: pl.constexpr):
    i = pl.arange(0, M)[:, None]
    j = pl.arange(0, N)[None, :]
    v = pl.exp(pl.load(x + i * N + j))
    pl.store(out + pl.arange(0, M), pl.max(v, axis=1))  # along rows: partials per row
    pl.store(out + M + pl.arange(0, N), pl.sum(v, axis=0))  # along columns
    pl.store(out + M + N + pl.arange(0, M), pl.argmax(v, axis=1).to(pl.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_reductions_over_fused_rows(backend, dtype, tmp_path):
    m, n = 5, 70
    x = torch.randn(m, n, dtype=dtype)
    x[2, 7] = math.nan
    out = torch.zeros(m + n + m, dtype=dtype)
    rows_reduce[(1,)](x, out, M=m, N=n, backend=backend)
    e = x.double().exp().to(dtype).double()
    tol = {torch.float16: 2e-2, torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    want = torch.cat([e.amax(1), e.sum(0), e.argmax(1).double()])
    torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol, equal_nan=True)
    if backend == "cpu":
        ref = torch.zeros(m + n + m, dtype=dtype)
        launch_unfused(rows_reduce, (1,), [x, ref], {"M": m, "N": n}, tmp_path)
        if dtype == torch.float64:  # libm's exp, or libmvec's where gcc vectorized the loop
            torch.testing.assert_close(out, ref, rtol=1e-15, atol=0, equal_nan=True)
        else:  # f32 exp is the prelude's: the same bits in vector and scalar code
            same_bits(out, ref)


@pypto.jit
def accumulate_kernel(x, out, stride, n, BLOCK: pl.constexpr):
    """Tutorial 05's pattern: a loop-carried block fed by fused loads, reduced after."""
    row = pl.program_id(0)
    acc = pl.zeros([BLOCK], dtype=pl.float32)
    for off in range(0, n, BLOCK):
        cols = off + pl.arange(0, BLOCK)
        v = pl.load(x + row * stride + cols, mask=cols < n, other=0.0)
        acc += pl.where(cols < n, v * v, 0.0)
    pl.store(out + row, pl.sqrt(pl.sum(acc, axis=0)))


@pytest.mark.parametrize("n,block", [(100, 32), (1000, 128), (1000, 1024), (5, 64)])
def test_loop_carried_accumulator(backend, n, block, tmp_path):
    x = torch.randn(4, n)
    out = torch.zeros(4)
    accumulate_kernel[(4,)](x, out, n, n, BLOCK=block, backend=backend)
    torch.testing.assert_close(out, x.norm(dim=1), rtol=1e-5, atol=1e-5)
    if backend == "cpu":
        ref = torch.zeros(4)
        launch_unfused(accumulate_kernel, (4,), [x, ref, n, n], {"BLOCK": block}, tmp_path)
        same_bits(out, ref)


@pypto.jit
def first_sink_kernel(x, out, sums, n, BLOCK: pl.constexpr):
    """``e`` fills its array in the store's loop (its first sink), the sum reads the array."""
    offs = pl.arange(0, BLOCK)
    e = pl.tanh(pl.load(x + offs, mask=offs < n, other=0.0))
    pl.store(out + offs, e, mask=offs < n)
    pl.store(sums, pl.sum(pl.where(offs < n, e, 0.0), axis=0))


def test_value_filled_by_its_first_sink(backend, tmp_path):
    x = torch.randn(50)
    out, sums = torch.zeros(50), torch.zeros(1)
    first_sink_kernel[(1,)](x, out, sums, 50, BLOCK=64, backend=backend)
    torch.testing.assert_close(out, torch.tanh(x))
    torch.testing.assert_close(sums, torch.tanh(x).sum(0, keepdim=True), rtol=1e-5, atol=1e-5)
    if backend == "cpu":
        assert 'fuse="first"' in opt_ir(first_sink_kernel, [x, out, sums, 50], {"BLOCK": 64})


# -- streaming (non-temporal) stores -----------------------------------------------------


@pytest.fixture
def small_streams(monkeypatch):
    """Stream stores to tensors of any size (the default wants an output of 4 MiB in a
    kernel whose tensors span 32 MiB)."""
    monkeypatch.setattr(streaming, "MIN_TENSOR_BYTES", 0)
    monkeypatch.setattr(streaming, "MIN_FOOTPRINT_BYTES", 0)
    monkeypatch.setenv("PYPTO_ALWAYS_COMPILE", "1")


@pypto.jit
def scale_kernel(x, out, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    pl.store(out + offs, pl.load(x + offs, mask=offs < n) * 3.0 + 1.0, mask=offs < n)


@pytest.mark.parametrize("n,shift", [(5000, 0), (4099, 1), (300, 3), (1024, 5)])
def test_streamed_stores(small_streams, n, shift):
    """Unaligned output rows (a head before the first 64-byte line), partial chunks, tails."""
    x = torch.randn(n)
    buf = torch.zeros(n + 8)
    out = buf[shift : shift + n]
    ck = scale_kernel.warmup(x, out, n, BLOCK=1024, backend="cpu")
    assert "stream=true" in ck.asm["opt_ir"] and "pypto_stream256" in ck.asm["c"]
    scale_kernel[(pypto.cdiv(n, 1024),)](x, out, n, BLOCK=1024, backend="cpu")
    torch.testing.assert_close(out, x * 3 + 1, rtol=0, atol=0)
    assert buf[:shift].eq(0).all() and buf[shift + n :].eq(0).all()


@pypto.jit
def scale_rows(x, out, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    pl.store(out + offs, pl.load(x + offs) * 3.0 + 1.0)


@pypto.jit
def affine_cols(x, w, out, N, BLOCK: pl.constexpr):
    # the column loop of a layer norm's last pass: full blocks first, masks known true
    row = pl.program_id(0)
    for off in range(0, N, BLOCK):
        cols = off + pl.arange(0, BLOCK)
        m = cols < N
        v = pl.load(x + row * N + cols, mask=m, other=0.0)
        pl.store(out + row * N + cols, v * pl.load(w + cols, mask=m) + 1.0, mask=m)


STREAMED_VECTORS = "pypto_vstream_f32(q + c_, "


@pytest.mark.parametrize("block,shift", [(1024, 0), (1024, 3), (1000, 5), (272, 1), (260, 7)])
def test_streamed_rows_in_vector_form(small_streams, backend, block, shift):
    """Rows whose lanes are all active stream chunks of 16 lanes computed in registers:
    after the head up to the first 64-byte line, before the 256-byte chunks and the tail."""
    x = torch.randn(3 * block)
    buf = torch.zeros(3 * block + 8)
    out = buf[shift : shift + 3 * block]
    if backend == "cpu":
        ck = scale_rows.warmup(x, out, BLOCK=block, backend="cpu")
        assert STREAMED_VECTORS in ck.asm["c"]
    scale_rows[(3,)](x, out, BLOCK=block, backend=backend)
    torch.testing.assert_close(out, x * 3 + 1, rtol=0, atol=0)
    assert buf[:shift].eq(0).all() and buf[shift + 3 * block :].eq(0).all()


def test_streamed_vectors_build_without_avx512(small_streams, tmp_path):
    """The vector streaming sits under the AVX-512 guard: an AVX2 build compiles cleanly
    (the 256-byte chunks then stream everything)."""
    from pypto_jit.runtime.compiler import compile_shared

    ck = scale_rows.warmup(torch.randn(3072), torch.empty(3072), BLOCK=1024, backend="cpu")
    assert STREAMED_VECTORS in ck.asm["c"]
    src = tmp_path / "k.c"
    src.write_text(ck.asm["c"])
    compile_shared(src, tmp_path / "k.so", "cpu", extra_flags=["-mno-avx512f", "-Werror"])


@pytest.mark.parametrize("n", [1000, 1024, 100])
def test_streamed_column_blocks(small_streams, backend, n):
    x, w = torch.randn(2, n), torch.randn(n)
    out = torch.zeros(2, n)
    if backend == "cpu":
        ck = affine_cols.warmup(x, w, out, n, BLOCK=256, backend="cpu")
        assert STREAMED_VECTORS in ck.asm["c"] and "pypto_stream256" in ck.asm["c"]
    affine_cols[(2,)](x, w, out, n, BLOCK=256, backend=backend)
    torch.testing.assert_close(out, x * w + 1, rtol=0, atol=0)


@pypto.jit
def axpy_in_place(x, y, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    pl.store(y + offs, pl.load(x + offs, mask=offs < n) + pl.load(y + offs, mask=offs < n),
             mask=offs < n)  # fmt: skip


def test_streaming_skips_outputs_that_are_read_back(small_streams):
    x, y = torch.randn(2048), torch.randn(2048)
    ck = axpy_in_place.warmup(x, y, 2048, BLOCK=1024, backend="cpu")  # y is loaded too
    assert "stream" not in ck.asm["opt_ir"]
    want = x + y
    axpy_in_place[(2,)](x, y, 2048, BLOCK=1024)
    torch.testing.assert_close(y, want, rtol=0, atol=0)
    ck = gelu_chain.warmup(x.view(2, 1024), x[:1024], torch.zeros(2, 1024), 1024, 1024,
                           BLOCK=1024, backend="cpu")  # fmt: skip
    assert "stream" not in ck.asm["opt_ir"]  # an erf per element: not memory-bound


# -- vector math: accuracy and subnormals ------------------------------------------------


@pypto.jit
def math_kernel(x, e, lg, er, th, s, c, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = offs < n
    v = pl.load(x + offs, mask=m)
    pl.store(e + offs, pl.exp(v), mask=m)
    pl.store(lg + offs, pl.log(v), mask=m)
    pl.store(er + offs, pl.erf(v), mask=m)
    pl.store(th + offs, pl.tanh(v), mask=m)
    pl.store(s + offs, pl.sin(v), mask=m)
    pl.store(c + offs, pl.cos(v), mask=m)


# Largest error in float32 ulps of the exact value. exp and erf are the prelude's own
# (vector code on cpu, scalar on sim: the same results; the bounds are their worst case over
# every float, test_prelude_math.py: erf 0.98 with AVX-512, 1.73 without); log, tanh, sin
# and cos are libmvec's on cpu and libm's on sim; the interpreter is numpy's float32
# functions (erf and tanh through float64).
ULPS = {
    "cpu": {"exp": 1.01, "log": 4, "erf": 1.73, "tanh": 2, "sin": 2, "cos": 2},
    "sim": {"exp": 1.01, "log": 1, "erf": 1.73, "tanh": 3, "sin": 1, "cos": 1},
    "interpret": {"exp": 3, "log": 4, "erf": 1, "tanh": 1, "sin": 2, "cos": 2},
}
_REFS = {
    "exp": np.exp, "log": np.log, "erf": np.vectorize(math.erf, otypes=[np.float64]),
    "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
}  # fmt: skip


def _math_inputs(n_each: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.concatenate(
        [
            rng.uniform(-110, 95, n_each),  # exp over its whole range, into subnormals
            rng.uniform(-6, 6, n_each),  # erf and tanh where they bend
            10.0 ** rng.uniform(-44, 38, n_each),  # log over the range, subnormals included
            -(10.0 ** rng.uniform(-44, 3, n_each)),
            [0.0, -0.0, 1.0, -1.0, 88.72, 88.73, -103.9, -104.5, 3.92, -3.92, 1.25],
            [np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17e-38],
        ]
    ).astype(np.float32)


def _ulps(got: np.ndarray, x: np.ndarray, fn) -> float:
    with np.errstate(all="ignore"):
        want = fn(x.astype(np.float64))
        want32 = want.astype(np.float32)  # overflows to inf where float32 does
    special = ~np.isfinite(want32)
    assert np.array_equal(np.isnan(got[special]), np.isnan(want32[special]))
    ok = ~special & ~np.isnan(want32)
    if fn in (np.sin, np.cos):
        ok &= np.abs(x) < 1e4  # libm's large-argument reduction is not what we test
    ulp = np.spacing(np.maximum(np.abs(want32[ok]), np.finfo(np.float32).smallest_subnormal))
    return float(np.max(np.abs(got[ok].astype(np.float64) - want[ok]) / ulp.astype(np.float64)))


def test_math_accuracy_in_ulps(backend):
    x = _math_inputs(20000 if backend != "interpret" else 5000)
    n = len(x)
    outs = [torch.zeros(n) for _ in _REFS]
    math_kernel[(pypto.cdiv(n, 4096),)](torch.from_numpy(x), *outs, n, BLOCK=4096,
                                        backend=backend)  # fmt: skip
    for (name, fn), out in zip(_REFS.items(), outs, strict=True):
        err = _ulps(out.numpy(), x, fn)
        assert err <= ULPS[backend][name], f"{name} on {backend}: {err:.2f} ulp"


@pypto.jit
def subnormal_kernel(x, out, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    v = pl.load(x + offs)
    pl.store(out + offs, v * 0.5)
    pl.store(out + BLOCK + offs, pl.exp(v - 100.0))  # exp(-100 + small): subnormal results


@pytest.mark.parametrize("backend", C_BACKENDS)
def test_denormals_survive_a_launch(backend):
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    x = torch.full((64,), float(tiny * 4))
    x[32:] = torch.linspace(-3.0, 0.0, 32)
    out = torch.zeros(128)
    subnormal_kernel[(1,)](x, out, BLOCK=64, backend=backend)
    assert out[0].item() == float(tiny * 2)  # not flushed to zero in the kernel
    want = np.exp(x[32:].double().numpy() - 100.0).astype(np.float32)
    np.testing.assert_allclose(out[96:].numpy(), want, rtol=0, atol=float(tiny))
    assert (out[96:] > 0).all() and (out[96:] < np.finfo(np.float32).tiny).any()
    # ...nor in the process afterwards (no flush-to-zero left behind by the launch)
    assert np.float32(tiny * 4) * np.float32(0.5) == tiny * 2
    assert (torch.tensor([float(tiny * 4)]) * 0.5).item() == float(tiny * 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_f16_chain(backend):
    """f16 rounds after every op, fused or not."""
    x = (torch.randn(300) * 3).half()
    out = torch.zeros(300, dtype=torch.float16)
    gelu_chain[(1, 1)](x.view(1, 300), torch.zeros(300, dtype=torch.float16), out.view(1, 300),
                       300, 300, BLOCK=512, backend=backend)  # fmt: skip
    z = x.float()
    y = (0.5 * z).half().float() * (1.0 + torch.erf((z * 0.7071067811865476).half().float()))
    y = torch.where(z > 3, y.half().float().abs().sqrt(), y.half().float()).half()
    torch.testing.assert_close(out, y, rtol=2e-3, atol=2e-3)
