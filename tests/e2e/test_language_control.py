"""Control flow, helper functions, compile-time features and debugging, end to end.

pl.range / static_range / range with runtime bounds and steps (negative too), while,
if/else on runtime scalars, ternaries, tuple unpacking, break/continue rejected by
name, helpers returning scalars / blocks / tuples, static_assert / static_print,
constexpr arithmetic and globals, multiple_of / max_contiguous, device_print and
device_assert (and ``assert``).
"""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl

SCALE = pl.constexpr(3)  # a module-level constexpr global


@pypto.jit
def pl_range_kernel(x, out, lo, hi, step, n_cols, BLOCK: pl.constexpr):
    cols = pl.arange(0, BLOCK)
    m = cols < n_cols
    acc = pl.zeros((BLOCK,), dtype=pl.float32)
    for r in pl.range(lo, hi, step):  # runtime bounds and step, a carried block
        acc += pl.load(x + r * n_cols + cols, mask=m, other=0.0)
    pl.store(out + cols, acc, mask=m)


@pytest.mark.parametrize("lo,hi,step", [(0, 9, 1), (1, 9, 3), (5, 5, 1), (4, 2, 1)])
def test_pl_range_runtime_bounds(backend, lo, hi, step):
    x = torch.randn(9, 10)
    out = torch.full((10,), -1.0)
    pl_range_kernel[(1,)](x, out, lo, hi, step, 10, BLOCK=16, backend=backend)
    expected = x[lo:hi:step].sum(0) if lo < hi else torch.zeros(10)
    torch.testing.assert_close(out, expected)


@pypto.jit
def range_extras(x, out, n, BLOCK: pl.constexpr):
    cols = pl.arange(0, BLOCK)
    acc = pl.zeros((BLOCK,), dtype=pl.float32)
    for r in pl.range(0, n, num_stages=3):  # Triton's pipelining hint: accepted, ignored
        acc += pl.load(x + r * BLOCK + cols)
    back = pl.zeros((BLOCK,), dtype=pl.float32)
    for r in range(n - 1, -1, -2):  # a negative constant step
        back = back * 2.0 + pl.load(x + r * BLOCK + cols)
    pl.store(out + cols, acc)
    pl.store(out + BLOCK + cols, back)


def test_range_num_stages_and_negative_step(backend):
    x = torch.randn(7, 8)
    out = torch.zeros(16)
    range_extras[(1,)](x, out, 7, BLOCK=8, backend=backend)
    back = torch.zeros(8)
    for r in range(6, -1, -2):
        back = back * 2.0 + x[r]
    torch.testing.assert_close(out[:8], x.sum(0))
    torch.testing.assert_close(out[8:], back)


@pypto.jit
def static_range_kernel(x, out, N: pl.constexpr, REPS: pl.constexpr):
    o = pl.arange(0, N)
    acc = pl.zeros((N,), dtype=pl.float32)
    for i in pl.static_range(REPS):  # unrolled: i is a compile-time int
        pl.static_assert(i < REPS)
        w = pl.load(x + i * N + pl.arange(0, N))
        acc += w * (i + 1)
    for j in pl.static_range(1, 7, 2):
        acc += j
    pl.store(out + o, acc)


def test_static_range(backend):
    x = torch.randn(3, 5)
    out = torch.zeros(5)
    static_range_kernel[(1,)](x, out, N=5, REPS=3, backend=backend)
    torch.testing.assert_close(out, x[0] + 2 * x[1] + 3 * x[2] + 9.0)


@pypto.jit
def collatz(x, steps_out, n, BLOCK: pl.constexpr):
    # one scalar per program: while with a runtime condition and carried scalars
    pid = pl.program_id(0)
    v = pl.load(x + pid)
    steps = 0
    while v != 1:
        if v % 2 == 0:
            v = v // 2
        else:
            v = 3 * v + 1
        steps += 1
    pl.store(steps_out + pid, steps)


def test_while_with_nested_runtime_if(backend):
    x = torch.tensor([1, 2, 3, 6, 7, 27], dtype=torch.int32)
    out = torch.full((6,), -1, dtype=torch.int32)
    collatz[(6,)](x, out, 6, BLOCK=1, backend=backend)
    assert out.tolist() == [0, 1, 7, 8, 16, 111]


@pypto.jit
def ternary_and_unpacking(x, out, BLOCK: pl.constexpr):
    pid = pl.program_id(0)
    o = pl.arange(0, BLOCK)
    v = pl.load(x + pid * BLOCK + o)
    scale = 2.0 if pid % 2 == 0 else -1.0  # runtime ternary on scalars
    a, b = v * scale, v + 1.0
    a, b = b, a  # tuple swap
    if pid == 0:
        c = a
    elif pid == 1:
        c = b
    else:
        c = a + b
    pl.store(out + pid * BLOCK + o, c)


def test_ternary_elif_and_tuple_swap(backend):
    x = torch.randn(3, 4)
    out = torch.zeros(3, 4)
    ternary_and_unpacking[(3,)](x, out, BLOCK=4, backend=backend)
    torch.testing.assert_close(out[0], x[0] + 1.0)
    torch.testing.assert_close(out[1], -x[1])
    torch.testing.assert_close(out[2], (x[2] + 1.0) + 2.0 * x[2])


@pypto.jit
def break_kernel(x, n):
    acc = 0
    for i in range(n):
        if i == 3:
            break
        acc += i
    pl.store(x, acc)


@pypto.jit
def continue_kernel(x, n):
    acc = 0
    while acc < n:
        acc += 1
        if acc == 3:
            continue
    pl.store(x, acc)


@pytest.mark.parametrize(
    "kernel,word,offset", [(break_kernel, "break", 5), (continue_kernel, "continue", 6)]
)
def test_break_continue_are_unsupported(backend, kernel, word, offset):
    with pytest.raises(pypto.UnsupportedConstructError) as info:
        kernel[(1,)](torch.zeros(1, dtype=torch.int32), 10, backend=backend)
    assert word in str(info.value)
    assert info.value.loc.line == kernel.fn.__code__.co_firstlineno + offset


@pypto.jit
def _scaled(v, factor):
    return v * factor


@pypto.jit
def _stats(v, N: pl.constexpr):
    mean = pl.sum(v, axis=0) / N
    centered = v - mean
    var = pl.sum(centered * centered, axis=0) / N
    return mean, var, centered  # a tuple of scalars and a block


@pypto.jit
def _nested(v):
    return _scaled(_scaled(v, 2.0), 0.5) + 1.0


@pypto.jit
def helpers_kernel(x, out, stats, N: pl.constexpr):
    o = pl.arange(0, N)
    v = pl.load(x + o)
    mean, var, centered = _stats(v, N)
    pl.store(out + o, _scaled(centered, SCALE))  # a constexpr global as an argument
    pl.store(out + N + o, _nested(v))
    pl.store(stats, mean)
    pl.store(stats + 1, var)


def test_helper_functions_inline(backend):
    x = torch.randn(10)
    out, stats = torch.zeros(20), torch.zeros(2)
    helpers_kernel[(1,)](x, out, stats, N=10, backend=backend)
    torch.testing.assert_close(out[:10], 3 * (x - x.mean()))
    torch.testing.assert_close(out[10:], x + 1.0)
    torch.testing.assert_close(stats, torch.stack([x.mean(), x.var(unbiased=False)]))


@pypto.jit
def constexpr_math(out, BLOCK: pl.constexpr):
    HALF: pl.constexpr = BLOCK // 2
    o = pl.arange(0, HALF)
    pl.static_assert(HALF * 2 == BLOCK, "BLOCK must be even")
    pl.static_print("HALF is", HALF)
    w = pl.full((BLOCK * 2 - HALF,), SCALE * 2, dtype=pl.int32)
    pl.store(out + o, o + SCALE)
    pl.store(out + HALF + pl.arange(0, BLOCK * 2 - HALF), w)


def test_constexpr_arithmetic_and_globals(backend):
    out = torch.full((16,), -1, dtype=torch.int32)
    constexpr_math[(1,)](out, BLOCK=8, backend=backend)
    assert out[:4].tolist() == [3, 4, 5, 6]
    assert out[4:].tolist() == [6] * 12


def test_static_print_at_compile_time(capsys):
    out = torch.zeros(32, dtype=torch.int32)
    constexpr_math[(1,)](out, BLOCK=16, backend="interpret")  # a new specialization
    assert "HALF is" in capsys.readouterr().out


def test_static_assert_fails_at_compile_time(backend):
    with pytest.raises(pypto.CompilationError, match="BLOCK must be even"):
        constexpr_math[(1,)](torch.zeros(16, dtype=torch.int32), BLOCK=7, backend=backend)


@pypto.jit
def hinted_copy(x, y, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    offs = pl.max_contiguous(pl.multiple_of(offs, BLOCK), BLOCK)
    base = pl.multiple_of(pl.program_id(0) * BLOCK, 16)
    m = offs < n
    pl.store(y + offs, pl.load(x + base + pl.arange(0, BLOCK), mask=m) * 2.0, mask=m)


def test_multiple_of_max_contiguous_are_hints(backend):
    x = torch.randn(100)
    y = torch.zeros(100)
    hinted_copy[(pypto.cdiv(100, 32),)](x, y, 100, BLOCK=32, backend=backend)
    torch.testing.assert_close(y, 2.0 * x)


@pypto.jit
def assert_kernel(x, y, n, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    v = pl.load(x + o, mask=o < n, other=1.0)
    pl.device_assert(v > 0, "inputs must be positive")
    pl.store(y + o, pl.sqrt(v), mask=o < n)


@pypto.jit(debug=True)
def assert_kernel_debug(x, y, n, BLOCK: pl.constexpr):
    o = pl.arange(0, BLOCK)
    v = pl.load(x + o, mask=o < n, other=1.0)
    pl.device_assert(v > 0, "inputs must be positive")
    pl.store(y + o, pl.sqrt(v), mask=o < n)


@pypto.jit
def python_assert_kernel(x, n):
    v = pl.load(x)
    assert v < n, "value too large"
    pl.store(x, v + 1)


def _assert_line(kernel, offset):
    return kernel.fn.__code__.co_firstlineno + offset


def test_device_assert_passes_when_true(backend):
    x = torch.rand(10) + 0.5
    y = torch.zeros(10)
    assert_kernel[(1,)](x, y, 10, BLOCK=16, backend=backend)
    torch.testing.assert_close(y, x.sqrt())


@pytest.mark.parametrize("mode", ["sim", "interpret", "cpu-debug"])
def test_device_assert_raises_with_the_line(mode):
    x = torch.rand(10) + 0.5
    x[7] = -1.0
    kernel = assert_kernel_debug if mode == "cpu-debug" else assert_kernel
    with pytest.raises(pypto.DeviceAssertError) as info:
        kernel[(1,)](x, torch.zeros(10), 10, BLOCK=16, backend=mode.split("-")[0])
    line = _assert_line(kernel, 4)
    assert "inputs must be positive" in str(info.value)
    assert info.value.loc.line == line
    assert f"test_language_control.py:{line}" in str(info.value)


def test_device_assert_is_off_on_cpu_without_debug():
    x = torch.rand(10) + 0.5
    x[7] = 4.0
    x[3] = -1.0
    y = torch.zeros(10)
    assert_kernel[(1,)](x, y, 10, BLOCK=16, backend="cpu")
    assert y[7].item() == 2.0


@pytest.mark.parametrize("mode", ["sim", "interpret"])
def test_python_assert_becomes_device_assert(mode):
    x = torch.tensor([5], dtype=torch.int32)
    python_assert_kernel[(1,)](x, 10, backend=mode)
    assert x.item() == 6
    with pytest.raises(pypto.DeviceAssertError) as info:
        python_assert_kernel[(1,)](x, 3, backend=mode)
    assert info.value.loc.line == _assert_line(python_assert_kernel, 3)
    assert "value too large" in str(info.value)


@pypto.jit
def print_kernel(x, BLOCK: pl.constexpr):
    v = pl.load(x + pl.arange(0, BLOCK))
    pl.device_print("vals=", v)


def test_device_print(backend, capfd):
    x = torch.tensor([42, 7, 1234567], dtype=torch.int32)
    print_kernel[(1,)](x, BLOCK=3, backend=backend)
    out = capfd.readouterr().out
    assert "vals=" in out
    for v in ("42", "7", "1234567"):
        assert v in out
