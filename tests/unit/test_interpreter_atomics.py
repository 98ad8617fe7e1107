"""The interpreter's atomics (ATOMIC_RMW, ATOMIC_CAS) and debugging ops (DEVICE_ASSERT,
PRINT) against sequential plain-Python references."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from test_interpreter import (
    LOC,
    STORE_LOC,
    TORCH,
    arange,
    build,
    from_storage,
    launch,
    scalar,
    tensor,
    to_storage,
    wrap,
)

from pypto_jit.errors import DeviceAssertError, OutOfBoundsError, SourceLoc
from pypto_jit.ir import BlockType, Op
from pypto_jit.ir.types import SCALARS, f32, i1, i32, i64

# -- ATOMIC_RMW -----------------------------------------------------------------------


def rmw_kernel(kind: str, t: str, n: int, masked: bool = True):
    """old[i] = atomic_<kind>(mem + offs[i], vals[i], mask[i]) over one block of n lanes."""

    def body(b, vals, offs, mask, mem, old):
        lanes = arange(b, n)
        ptrs = b.typed(
            Op.ADDPTR,
            b.splat(mem, (n,)),
            b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(offs, (n,)), lanes)),
        )
        value = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(vals, (n,)), lanes))
        m = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(mask, (n,)), lanes))
        b.loc = STORE_LOC
        got = b.typed(Op.ATOMIC_RMW, ptrs, value, *([m] if masked else []), kind=kind)
        b.loc = LOC
        b.typed(Op.STORE, b.typed(Op.ADDPTR, b.splat(old, (n,)), lanes), got)

    params = [
        tensor("vals", t),
        tensor("offs", "i32"),
        tensor("mask", "i1"),
        tensor("mem", t),
        tensor("old", t),
    ]
    return build(f"atomic_{kind}", params, body)


def reference_rmw(kind: str, t: str, mem: list, offs, vals: list, mask) -> tuple[list, list]:
    """Lane by lane in order; values are Python numbers (floats as the type rounds them)."""
    mem, old = list(mem), []

    def rnd(x):  # values here are small: a sum in float64 is exact, then f32, then t
        if t in ("f16", "bf16", "f32"):
            return torch.tensor(x, dtype=torch.float64).float().to(TORCH[t]).item()
        return wrap(x, t) if t != "f64" else x

    for o, v, m in zip(offs, vals, mask, strict=True):
        if not m:
            old.append(0)
            continue
        cur = mem[o]
        old.append(cur)
        if kind == "add":
            new = rnd(cur + v)
        elif kind == "max":
            new = v if v > cur else cur
        elif kind == "min":
            new = v if v < cur else cur
        elif kind == "and":
            new = rnd(cur & v)
        elif kind == "or":
            new = rnd(cur | v)
        elif kind == "xor":
            new = rnd(cur ^ v)
        else:
            new = v
        mem[o] = new
    return mem, old


def rmw_inputs(t: str, n: int, size: int, rng: np.random.Generator):
    if t in ("f16", "bf16", "f32", "f64"):
        vals = torch.tensor(rng.uniform(-8, 8, n).round(2)).to(TORCH[t])
        mem = torch.tensor(rng.uniform(-8, 8, size).round(2)).to(TORCH[t])
    else:
        info = np.iinfo(SCALARS[t].np_dtype)
        lo, hi = max(info.min, -(2**40)), min(info.max, 2**40)
        vals = torch.from_numpy(rng.integers(lo, hi, n).astype(SCALARS[t].np_dtype))
        mem = torch.from_numpy(rng.integers(lo, hi, size).astype(SCALARS[t].np_dtype))
    offs = rng.integers(0, size, n).astype(np.int32)  # many lanes share an address
    mask = rng.random(n) < 0.8
    return vals, mem, offs, mask


def run_rmw(kind: str, t: str, vals, mem, offs, mask, masked: bool = True):
    n = len(offs)
    mem_s, old_s = to_storage(mem), to_storage(torch.zeros(n, dtype=mem.dtype))
    launch(rmw_kernel(kind, t, n, masked), to_storage(vals), offs, mask, mem_s, old_s)
    return from_storage(mem_s, t), from_storage(old_s, t)


INT_KINDS = ["add", "max", "min", "and", "or", "xor", "xchg"]


@pytest.mark.parametrize("t", ["i32", "u32", "i64", "u8", "i16"])
@pytest.mark.parametrize("kind", INT_KINDS)
def test_int_atomics_apply_lane_by_lane(kind, t):
    rng = np.random.default_rng(zlib.crc32(f"{kind} {t}".encode()))
    vals, mem, offs, mask = rmw_inputs(t, 37, 5, rng)
    got_mem, got_old = run_rmw(kind, t, vals, mem, offs, mask)
    want_mem, want_old = reference_rmw(kind, t, mem.tolist(), offs, vals.tolist(), mask)
    assert got_mem.tolist() == want_mem
    assert got_old.tolist() == want_old


@pytest.mark.parametrize("t", ["f32", "f64", "f16", "bf16"])
@pytest.mark.parametrize("kind", ["add", "max", "min", "xchg"])
def test_float_atomics_apply_lane_by_lane(kind, t):
    rng = np.random.default_rng(zlib.crc32(f"{kind} {t}".encode()))
    vals, mem, offs, mask = rmw_inputs(t, 41, 4, rng)
    got_mem, got_old = run_rmw(kind, t, vals, mem, offs, mask)
    want_mem, want_old = reference_rmw(kind, t, mem.tolist(), offs, vals.tolist(), mask)
    assert got_mem.tolist() == want_mem
    assert got_old.tolist() == want_old


def test_duplicate_adds_accumulate_in_order_and_return_running_values():
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    offs = np.array([0, 1, 0, 0, 1], np.int32)
    mask = np.array([1, 1, 0, 1, 1], bool)
    mem, old = run_rmw("add", "f32", vals, torch.tensor([10.0, 20.0]), offs, mask)
    assert mem.tolist() == [15.0, 27.0]
    assert old.tolist() == [10.0, 20.0, 0.0, 11.0, 22.0]  # masked-off lane: 0


def test_unmasked_atomic_and_f16_rounding():
    vals = torch.tensor([1.0] * 8, dtype=torch.float16)
    mem, old = run_rmw(
        "add",
        "f16",
        vals,
        torch.tensor([2048.0], dtype=torch.float16),
        np.zeros(8, np.int32),
        np.zeros(8, bool),
        masked=False,
    )
    assert mem.tolist() == [2048.0]  # each +1 rounds back to 2048 (ties to even)
    assert old.tolist() == [2048.0] * 8


def test_float_atomic_max_min_compare_then_store():
    """max stores new only if new > old: NaN never replaces, a NaN in memory stays."""
    nan = float("nan")
    vals = torch.tensor([nan, 5.0, -0.0, 1.0])
    offs = np.array([0, 1, 2, 3], np.int32)
    mem, old = run_rmw(
        "max", "f32", vals, torch.tensor([1.0, nan, 0.0, -1.0]), offs, np.ones(4, bool)
    )
    assert mem[0].item() == 1.0 and np.isnan(mem[1].item())
    assert not torch.signbit(mem[2]) and mem[3].item() == 1.0
    mem, _ = run_rmw(
        "min", "f32", vals, torch.tensor([1.0, nan, 0.0, -1.0]), offs, np.ones(4, bool)
    )
    assert mem[0].item() == 1.0 and np.isnan(mem[1].item()) and mem[3].item() == -1.0


def histogram_kernel(block: int):
    def body(b, x, hist, n):
        pid = b.typed(Op.PROGRAM_ID, axis=0)
        offs = b.typed(
            Op.ADD, b.splat(b.typed(Op.MUL, pid, b.const(block, i32)), (block,)), arange(b, block)
        )
        mask = b.typed(Op.LT, offs, b.splat(n, (block,)))
        bins = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(x, (block,)), offs), mask)
        ones = b.splat(b.const(1, i32), (block,))
        b.typed(
            Op.ATOMIC_RMW, b.typed(Op.ADDPTR, b.splat(hist, (block,)), bins), ones, mask, kind="add"
        )

    return build("histogram", [tensor("x", "i32"), tensor("hist", "i32"), scalar("n", "i32")], body)


def test_histogram_over_many_programs_equals_bincount():
    n, block, bins = 1000, 96, 7
    x = np.random.default_rng(3).integers(0, bins, n).astype(np.int32)
    hist = np.zeros(bins, np.int32)
    launch(histogram_kernel(block), x, hist, n, grid=(-(-n // block), 1, 1))
    np.testing.assert_array_equal(hist, torch.bincount(torch.from_numpy(x), minlength=bins))


def test_atomic_out_of_bounds_names_the_lane():
    x = np.array([0, 1, 2, 9], np.int32)  # bin 9 is past the end of a 7-bin histogram
    hist = np.zeros(7, np.int32)
    with pytest.raises(OutOfBoundsError) as info:
        launch(histogram_kernel(4), x, hist, 4, grid=(1, 1, 1))
    err = info.value
    assert (err.param, err.index, err.pid, err.kernel) == ("hist", 9, (0, 0, 0), "histogram")
    assert "atomic_add on hist[9] out of bounds (valid 0..6) in program (0, 0, 0)" in str(err)
    hist[:] = 0
    launch(histogram_kernel(4), x, hist, 3, grid=(1, 1, 1))  # the bad lane is masked off
    assert hist.tolist() == [1, 1, 1, 0, 0, 0, 0]


def test_scalar_pointer_atomic_hands_out_tickets():
    """Each program takes a ticket from a counter: the old values are 0..grid-1."""

    def body(b, counter, out):
        pid = b.typed(Op.PROGRAM_ID, axis=0)
        ticket = b.typed(
            Op.ATOMIC_RMW,
            b.typed(Op.ADDPTR, counter, b.const(0, i64)),
            b.const(1, i32),
            b.const(True, i1),
            kind="add",
        )
        assert ticket.type == i32
        b.typed(Op.STORE, b.typed(Op.ADDPTR, out, pid), ticket)

    counter, out = np.zeros(1, np.int32), np.full(5, -1, np.int32)
    launch(
        build("tickets", [tensor("counter", "i32"), tensor("out", "i32")], body),
        counter,
        out,
        grid=(5, 1, 1),
    )
    assert counter[0] == 5 and out.tolist() == [0, 1, 2, 3, 4]


# -- ATOMIC_CAS -----------------------------------------------------------------------


def cas_kernel(t: str, n: int):
    def body(b, offs, cmp, vals, mem, old):
        lanes = arange(b, n)

        def at(p):
            return b.typed(Op.ADDPTR, b.splat(p, (n,)), lanes)

        ptrs = b.typed(Op.ADDPTR, b.splat(mem, (n,)), b.typed(Op.LOAD, at(offs)))
        got = b.typed(Op.ATOMIC_CAS, ptrs, b.typed(Op.LOAD, at(cmp)), b.typed(Op.LOAD, at(vals)))
        b.typed(Op.STORE, at(old), got)

    params = [
        tensor("offs", "i32"),
        tensor("cmp", t),
        tensor("vals", t),
        tensor("mem", t),
        tensor("old", t),
    ]
    return build("cas", params, body)


@pytest.mark.parametrize("t", ["i32", "u64", "f32", "bf16"])
def test_cas_applies_lane_by_lane(t):
    """A chain: lane i swaps i -> i+1 where memory holds i, so in-order lanes all succeed."""
    n = 6
    offs = np.array([0, 0, 0, 1, 0, 1], np.int32)
    cmp = torch.tensor([0, 1, 2, 0, 9, 5]).to(TORCH[t])
    vals = torch.tensor([1, 2, 3, 5, 4, 6]).to(TORCH[t])
    mem = to_storage(torch.tensor([0, 0]).to(TORCH[t]))
    old = to_storage(torch.zeros(n).to(TORCH[t]))
    launch(cas_kernel(t, n), offs, to_storage(cmp), to_storage(vals), mem, old)
    assert from_storage(mem, t).tolist() == [3, 6]
    assert from_storage(old, t).tolist() == [0, 1, 2, 0, 3, 5]


def test_float_cas_compares_bits():
    offs = np.arange(4, dtype=np.int32)
    nan = np.float32(np.nan)
    mem = np.array([0.0, -0.0, nan, 1.0], np.float32)
    cmp = np.array([-0.0, -0.0, nan, 1.0], np.float32)
    vals = np.array([7.0, 8.0, 9.0, 10.0], np.float32)
    old = np.zeros(4, np.float32)
    launch(cas_kernel("f32", 4), offs, cmp, vals, mem, old)
    assert mem.tolist() == [0.0, 8.0, 9.0, 10.0]  # +0 is not -0; NaN matches its own bits
    assert np.signbit(old[1]) and np.isnan(old[2])


def test_cas_spin_lock_pattern():
    """Every program takes a lock with cas(0 -> 1), bumps a counter, and releases it."""

    def body(b, lock, count):
        zero_i = b.const(0, i64)
        lp = b.typed(Op.ADDPTR, lock, zero_i)
        got = b.typed(Op.ATOMIC_CAS, lp, b.const(0, i32), b.const(1, i32))
        b.typed(Op.DEVICE_ASSERT, b.typed(Op.EQ, got, b.const(0, i32)), msg="lock was free")
        cp = b.typed(Op.ADDPTR, count, zero_i)
        b.typed(Op.STORE, cp, b.typed(Op.ADD, b.typed(Op.LOAD, cp), b.const(1, i32)))
        b.typed(Op.ATOMIC_RMW, lp, b.const(0, i32), kind="xchg")

    lock, count = np.zeros(1, np.int32), np.zeros(1, np.int32)
    launch(
        build("lock", [tensor("lock", "i32"), tensor("count", "i32")], body),
        lock,
        count,
        grid=(3, 2, 1),
    )
    assert lock[0] == 0 and count[0] == 6


# -- DEVICE_ASSERT --------------------------------------------------------------------

ASSERT_LOC = SourceLoc("kern.py", 21, 8)


def assert_kernel(msg: str = "x must be positive"):
    """device_assert(x[pid*4 : pid*4+4] > 0, msg)."""

    def body(b, x):
        pid = b.typed(Op.PROGRAM_ID, axis=0)
        offs = b.typed(Op.ADD, b.splat(b.typed(Op.MUL, pid, b.const(4, i32)), (4,)), arange(b, 4))
        v = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(x, (4,)), offs))
        b.loc = ASSERT_LOC
        b.typed(Op.DEVICE_ASSERT, b.typed(Op.GT, v, b.splat(b.const(0.0, f32), (4,))), msg=msg)

    return build("check_kernel", [tensor("x", "f32")], body)


def test_device_assert_passes_when_every_lane_holds():
    launch(assert_kernel(), np.ones(12, np.float32), grid=(3, 1, 1))


def test_device_assert_names_kernel_line_and_program():
    x = np.ones(12, np.float32)
    x[9] = -1.0  # program 2, one lane
    with pytest.raises(DeviceAssertError) as info:
        launch(assert_kernel(), x, grid=(3, 1, 1))
    err = info.value
    assert str(err) == (
        "kernel check_kernel, kern.py:21: device_assert failed: x must be positive "
        "in program (2, 0, 0)"
    )
    assert (err.kernel, err.loc, err.pid) == ("check_kernel", ASSERT_LOC, (2, 0, 0))


def test_device_assert_on_a_scalar_and_without_a_message():
    def body(b, n):
        b.typed(Op.DEVICE_ASSERT, b.typed(Op.LT, n, b.const(10, i32)))

    module = build("scalar_assert", [scalar("n", "i32")], body)
    launch(module, 3)
    with pytest.raises(DeviceAssertError, match=r"kernel.py:7: device_assert failed in program"):
        launch(module, 12)


# -- PRINT ----------------------------------------------------------------------------


def test_print_writes_one_line_per_program(capsys):
    def body(b, x):
        pid = b.typed(Op.PROGRAM_ID, axis=0)
        v = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(x, (3,)), arange(b, 3)))
        flags = b.typed(Op.GT, v, b.splat(b.const(1.0, f32), (3,)))
        grid = b.typed(Op.RESHAPE, v, declared=BlockType(f32, (3, 1)))
        b.emit(Op.PRINT, (pid, v, flags, grid), (), {"prefix": "vals: "})
        b.emit(Op.PRINT, (pid,), (), {"prefix": "pid"})
        b.emit(Op.PRINT, (), (), {"prefix": "done"})

    module = build("printer", [tensor("x", "f32")], body)
    launch(module, np.array([0.5, 1.5, np.nan], np.float32), grid=(2, 1, 1))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "pid (0, 0, 0) vals: 0 [0.5, 1.5, nan] [0, 1, 0] [[0.5], [1.5], [nan]]",
        "pid (0, 0, 0) pid 0",
        "pid (0, 0, 0) done",
        "pid (1, 0, 0) vals: 1 [0.5, 1.5, nan] [0, 1, 0] [[0.5], [1.5], [nan]]",
        "pid (1, 0, 0) pid 1",
        "pid (1, 0, 0) done",
    ]


def test_print_long_blocks_stay_on_one_line(capsys):
    def body(b, x):
        v = b.typed(
            Op.LOAD,
            b.typed(
                Op.ADDPTR,
                b.splat(x, (40, 50)),
                b.typed(Op.RESHAPE, arange(b, 2000), declared=BlockType(i32, (40, 50))),
            ),
        )
        b.emit(Op.PRINT, (v,), (), {"prefix": ""})

    x = np.arange(2000, dtype=np.int64)
    launch(build("big", [tensor("x", "i64")], body), x)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "..." not in out and out.startswith("pid (0, 0, 0) [[0, 1, ")
    assert out.rstrip().endswith("1998, 1999]]")
