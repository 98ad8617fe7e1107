"""Generated C against numpy/torch: hand-built modules, compiled and run on both C backends.

Every module goes through ``annotate_addresses`` and the verifier, is rendered by
``render_c``, compiled by the compiler driver and launched through the runtime shim.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from pypto_jit.codegen import render_c
from pypto_jit.errors import SourceLoc
from pypto_jit.ir import Builder, Module, Op, Param, verify
from pypto_jit.ir.ops import COMPARE
from pypto_jit.ir.types import SCALARS, BlockType, PtrType, ScalarType, f16, f32, f64, i1, i32, i64
from pypto_jit.passes.address import annotate_addresses

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="no C compiler"
)
MODES = ["cpu", "sim"]
LOC = SourceLoc("kern.py", 10, 4)
TORCH = {"bf16": torch.bfloat16, "f16": torch.float16}

# -- harness ------------------------------------------------------------------------------


def compile_module(m: Module, mode: str, tmp_path, debug: bool = False):
    from pypto_jit.runtime.compiler import compile_shared
    from pypto_jit.runtime.shim import runtime

    m = annotate_addresses(m)
    verify(m)
    src = tmp_path / f"{m.name}_{mode}.c"
    src.write_text(render_c(m, mode, debug=debug))
    so = src.with_suffix(".so")
    compile_shared(src, so, mode)
    return runtime().load_kernel(so)


def _layout(a) -> tuple[int, list[int], list[int]]:
    if isinstance(a, torch.Tensor):
        return a.data_ptr(), list(a.shape), list(a.stride())
    return a.ctypes.data, list(a.shape), [s // a.itemsize for s in a.strides]


def launch(m: Module, mode: str, tmp_path, grid, *args):
    """Compile and run ``m`` over ``grid``; None on success, else the error record.
    ``mode`` "cpu-debug" is the cpu backend rendered with ``debug``."""
    from pypto_jit.runtime.shim import runtime

    mode, _, debug = mode.partition("-")
    kernel = compile_module(m, mode, tmp_path, debug=bool(debug))
    iargs: list[int] = []
    fargs: list[float] = []
    for a in args:
        if isinstance(a, float):
            fargs.append(a)
        elif isinstance(a, (int, bool)):
            iargs.append(int(a))
        else:
            ptr, shp, strides = _layout(a)
            iargs += [ptr, *shp, *strides]
    rt = runtime()
    err = rt.new_error()
    status = rt.launch(kernel, grid, iargs, fargs, mode=0 if mode == "cpu" else 1, err=err)
    return None if status == 0 else rt.error_record(err)


def tensor(name: str, t: ScalarType, rank: int = 1) -> Param:
    return Param(name, "tensor", PtrType(t), (None,) * rank, (None,) * rank)


def scalar(name: str, t: ScalarType) -> Param:
    return Param(name, "scalar", t)


class K:
    """A kernel under construction: ``K(name, params)``, build with ``k.b``, ``k.done()``."""

    def __init__(self, name: str, params: list[Param]):
        self.name, self.params = name, tuple(params)
        self.b = Builder()
        self.args = self.b.open_block(tuple(p.type for p in self.params))
        self.b.loc = LOC

    def op(self, op: Op, *operands, **attrs):
        return self.b.typed(op, *operands, **attrs)

    def const(self, value, t: ScalarType = i32):
        return self.b.const(value, t)

    def splat(self, v, shp):
        return self.b.splat(v, shp)

    def arange(self, n: int):
        return self.op(Op.ARANGE, start=0, end=n)

    def offsets(self, block: int, axis: int = 0):
        """pid * block + arange(block)."""
        start = self.op(Op.MUL, self.op(Op.PROGRAM_ID, axis=axis), self.const(block))
        return self.op(Op.ADD, self.splat(start, (block,)), self.arange(block))

    def ptrs(self, p, offs):
        return self.op(Op.ADDPTR, self.splat(p, offs.type.shape), offs)

    def shifted(self, offs, k: int):
        c = self.const(k, offs.type.elem)
        return self.op(Op.ADD, offs, self.splat(c, offs.type.shape))

    def for_(self, lo, hi, step, inits, body):
        """FOR over [lo, hi) by step; ``body(iv, *carried)`` returns the next carried values."""
        args = self.b.open_block((lo.type, *[v.type for v in inits]))
        self.b.yield_(*body(*args))
        region = self.b.close_block()
        types = tuple(v.type for v in inits)
        return self.b.emit(Op.FOR, (lo, hi, step, *inits), types, regions=(region,)).results

    def if_(self, cond, then, else_, types):
        regions = []
        for fn in (then, else_):
            self.b.open_block()
            self.b.yield_(*fn())
            regions.append(self.b.close_block())
        return self.b.emit(Op.IF, (cond,), tuple(types), regions=tuple(regions)).results

    def while_(self, inits, before, after, fwd_types):
        """``before(*carried) -> (cond, *fwd)``; ``after(*fwd) -> next carried``."""
        args = self.b.open_block(tuple(v.type for v in inits))
        cond, *fwd = before(*args)
        self.b.emit(Op.CONDITION, (cond, *fwd))
        r0 = self.b.close_block()
        fargs = self.b.open_block(tuple(fwd_types))
        self.b.yield_(*after(*fargs))
        r1 = self.b.close_block()
        return self.b.emit(Op.WHILE, tuple(inits), tuple(fwd_types), regions=(r0, r1)).results

    def done(self) -> Module:
        return Module(self.name, self.params, self.b.close_block())


# -- vector add ---------------------------------------------------------------------------


def vector_add(block: int, t: ScalarType = f32) -> Module:
    k = K("vadd", [tensor("x", t), tensor("y", t), tensor("out", t), scalar("n", i32)])
    x, y, out, n = k.args
    offs = k.offsets(block)
    mask = k.op(Op.LT, offs, k.splat(n, (block,)))
    a = k.op(Op.LOAD, k.ptrs(x, offs), mask)
    b = k.op(Op.LOAD, k.ptrs(y, offs), mask)
    k.op(Op.STORE, k.ptrs(out, offs), k.op(Op.ADD, a, b), mask)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n,block", [(1, 16), (1000, 128), (4097, 1024), (999, 100)])
def test_vector_add(mode, n, block, tmp_path):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    out = np.full(n + 8, 7.0, np.float32)  # the tail past n must stay untouched
    grid = (-(-n // block),)
    assert launch(vector_add(block), mode, tmp_path, grid, x, y, out[:n], n) is None
    np.testing.assert_array_equal(out[:n], x + y)
    np.testing.assert_array_equal(out[n:], 7.0)


# -- every elementwise op on every dtype -------------------------------------------------

FLOAT_UNARY = [Op.NEG, Op.ABS, Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.SQRT, Op.RSQRT]
FLOAT_UNARY += [Op.SIN, Op.COS, Op.FLOOR, Op.CEIL, Op.ERF, Op.TANH]
FLOAT_BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.IDIV, Op.MOD, Op.MAXIMUM, Op.MINIMUM]
INT_UNARY = [Op.NEG, Op.NOT, Op.ABS]
INT_BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.IDIV, Op.MOD, Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR]
INT_BINARY += [Op.MAXIMUM, Op.MINIMUM, Op.UMULHI]
CMPS = sorted(COMPARE, key=lambda o: o.value)
TRANSCENDENTAL = {Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.SIN, Op.COS, Op.ERF, Op.TANH}
N = 301  # not a multiple of any vector width


def elementwise_module(t: ScalarType) -> tuple[Module, list[Op], list[Op]]:
    """out[r, :] = op_r(x) or op_r(x, y); cmp[j, :] = cmp_j(x, y)."""
    unary, binary = (FLOAT_UNARY, FLOAT_BINARY) if t.is_float else (INT_UNARY, INT_BINARY)
    k = K(f"ew_{t}", [tensor("x", t), tensor("y", t), tensor("out", t, 2), tensor("cmp", i1, 2)])
    x, y, out, cmp = k.args
    offs = k.arange(N)
    a, b = k.op(Op.LOAD, k.ptrs(x, offs)), k.op(Op.LOAD, k.ptrs(y, offs))
    results = [k.op(op, a) for op in unary] + [k.op(op, a, b) for op in binary]
    for row, v in enumerate(results):
        k.op(Op.STORE, k.ptrs(out, k.shifted(offs, row * N)), v)
    for row, op in enumerate(CMPS):
        k.op(Op.STORE, k.ptrs(cmp, k.shifted(offs, row * N)), k.op(op, a, b))
    return k.done(), unary, binary


def _float_inputs(t: ScalarType):
    rng = np.random.default_rng(len(t.name))
    special = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, np.inf, -np.inf, np.nan, 1e-3, 7.0]
    x = np.concatenate([special, rng.standard_normal(N - len(special)) * 3])
    y = np.concatenate([[2.0, 0.0, -0.0, 3.0, 1.0, 2.5, np.nan, 1.0, np.inf, 1.0, 0.0, 7.0],
                        rng.standard_normal(N - 12) * 3])  # fmt: skip
    if t.name in TORCH:
        return torch.tensor(x, dtype=TORCH[t.name]), torch.tensor(y, dtype=TORCH[t.name])
    return x.astype(t.np_dtype), y.astype(t.np_dtype)


_NP = {
    Op.NEG: np.negative, Op.ABS: np.abs, Op.EXP: np.exp, Op.EXP2: np.exp2, Op.LOG: np.log,
    Op.LOG2: np.log2, Op.SQRT: np.sqrt, Op.RSQRT: lambda a: 1 / np.sqrt(a), Op.SIN: np.sin,
    Op.COS: np.cos, Op.FLOOR: np.floor, Op.CEIL: np.ceil, Op.ADD: np.add,
    Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.divide,
    Op.IDIV: lambda a, b: np.trunc(a / b), Op.MOD: np.fmod, Op.MAXIMUM: np.maximum,
    Op.MINIMUM: np.minimum, Op.LT: np.less, Op.LE: np.less_equal, Op.GT: np.greater,
    Op.GE: np.greater_equal, Op.EQ: np.equal, Op.NE: np.not_equal, Op.TANH: np.tanh,
    Op.ERF: lambda a: torch.erf(torch.from_numpy(a)).numpy(),
}  # fmt: skip
_TORCH = {
    Op.NEG: torch.neg, Op.ABS: torch.abs, Op.EXP: torch.exp, Op.EXP2: torch.exp2,
    Op.LOG: torch.log, Op.LOG2: torch.log2, Op.SQRT: torch.sqrt, Op.RSQRT: torch.rsqrt,
    Op.SIN: torch.sin, Op.COS: torch.cos, Op.FLOOR: torch.floor, Op.CEIL: torch.ceil,
    Op.ADD: torch.add, Op.SUB: torch.sub, Op.MUL: torch.mul, Op.DIV: torch.div,
    Op.IDIV: lambda a, b: torch.div(a, b, rounding_mode="trunc"), Op.MOD: torch.fmod,
    Op.MAXIMUM: torch.maximum, Op.MINIMUM: torch.minimum, Op.LT: torch.lt, Op.LE: torch.le,
    Op.GT: torch.gt, Op.GE: torch.ge, Op.EQ: torch.eq, Op.NE: torch.ne, Op.ERF: torch.erf,
    Op.TANH: torch.tanh,
}  # fmt: skip


def _float_ref(t: ScalarType, op: Op, *xs):
    """f32/f64 in numpy; f16/bf16 in torch: compute in f32, round to the type."""
    if t.name in TORCH:
        r = _TORCH[op](*[v.float() for v in xs])
        return r.numpy() if r.dtype == torch.bool else r.to(TORCH[t.name]).float().numpy()
    with np.errstate(all="ignore"):
        return _NP[op](*xs)


def _as_f64(a) -> np.ndarray:
    return (a.float().numpy() if isinstance(a, torch.Tensor) else a).astype(np.float64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tname", ["f16", "bf16", "f32", "f64"])
def test_float_elementwise(mode, tname, tmp_path):
    t = SCALARS[tname]
    m, unary, binary = elementwise_module(t)
    x, y = _float_inputs(t)
    empty = torch.empty if tname in TORCH else np.empty
    out = empty((len(unary) + len(binary), N), dtype=TORCH.get(tname, t.np_dtype))
    cmp = np.zeros((len(CMPS), N), bool)
    assert launch(m, mode, tmp_path, (1,), x, y, out, cmp) is None
    got = _as_f64(out)
    ulp = {"f16": 2.0**-10, "bf16": 2.0**-7, "f32": 2.0**-23, "f64": 2.0**-52}[tname]
    for row, (op, args) in enumerate([(o, (x,)) for o in unary] + [(o, (x, y)) for o in binary]):
        want = _float_ref(t, op, *args).astype(np.float64)
        if op in TRANSCENDENTAL:  # libm and the reference may differ in the last place
            np.testing.assert_allclose(got[row], want, rtol=4 * ulp, atol=4 * ulp, err_msg=str(op))
        else:
            np.testing.assert_array_equal(got[row], want, err_msg=str(op))
    for row, op in enumerate(CMPS):
        np.testing.assert_array_equal(cmp[row], _float_ref(t, op, x, y), err_msg=str(op))


def _wrap(v: int, t: ScalarType) -> int:
    v &= (1 << t.bits) - 1
    return v - (1 << t.bits) if t.is_signed and v >= 1 << (t.bits - 1) else v


def _int_ref(op: Op, t: ScalarType, a: int, b: int = 0) -> int:
    """The IR's integer semantics on Python ints (i1 is 1-bit unsigned)."""
    q = 0 if b == 0 else abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # truncating
    mask = (1 << t.bits) - 1
    table = {
        Op.NEG: -a, Op.NOT: ~a, Op.ABS: abs(a), Op.ADD: a + b, Op.SUB: a - b, Op.MUL: a * b,
        Op.IDIV: q, Op.MOD: 0 if b == 0 else a - b * q, Op.AND: a & b, Op.OR: a | b,
        Op.XOR: a ^ b, Op.SHL: a << (b % t.bits), Op.SHR: a >> (b % t.bits),
        Op.MAXIMUM: max(a, b), Op.MINIMUM: min(a, b),
        # Triton's umulhi: the operands' bits multiplied as UNSIGNED, for signed types too.
        Op.UMULHI: ((a & mask) * (b & mask)) >> t.bits,
    }  # fmt: skip
    return _wrap(table[op], t)


def _int_inputs(t: ScalarType):
    rng = np.random.default_rng(t.bits)
    if t.is_bool:
        return rng.integers(0, 2, N).astype(bool), rng.integers(0, 2, N).astype(bool)
    info = np.iinfo(t.np_dtype)
    lo, hi = int(info.min), int(info.max)
    special_a = [0, 1, -1, lo, hi, lo, lo + 1, 7, -7, 7, -7, 100, 5, -1, -1, -2]
    special_b = [0, 0, 0, -1, -1, 1, 0, 2, 2, -2, -2, 100, t.bits + 3, -1, 1, 3]
    x = rng.integers(lo, hi, N, dtype=t.np_dtype, endpoint=True)
    y = rng.integers(lo, hi, N, dtype=t.np_dtype, endpoint=True)
    y[N // 2 :] = rng.integers(-9 if t.is_signed else 0, 9, N - N // 2)  # small divisors
    y[N - 20 :] = x[N - 20 :]  # some equal pairs
    k = len(special_a)
    x[:k] = np.array([_wrap(v, t) for v in special_a], t.np_dtype)
    y[:k] = np.array([_wrap(v, t) for v in special_b], t.np_dtype)
    return x, y


INTS = ["i1", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tname", INTS)
def test_int_elementwise(mode, tname, tmp_path):
    t = SCALARS[tname]
    m, unary, binary = elementwise_module(t)
    x, y = _int_inputs(t)
    out = np.zeros((len(unary) + len(binary), N), t.np_dtype)
    cmp = np.zeros((len(CMPS), N), bool)
    assert launch(m, mode, tmp_path, (1,), x, y, out, cmp) is None
    xs, ys = [int(v) for v in x], [int(v) for v in y]
    for row, op in enumerate(unary + binary):
        want = [_int_ref(op, t, a, b) for a, b in zip(xs, ys, strict=True)]
        got = [int(v) for v in out[row]]
        bad = [(a, b, g, w) for a, b, g, w in zip(xs, ys, got, want, strict=True) if g != w]
        assert not bad, f"{op} on {t}: (a, b, got, want) {bad[:5]}"
    for row, op in enumerate(CMPS):
        np.testing.assert_array_equal(cmp[row], _NP[op](x, y), err_msg=str(op))


# -- casts --------------------------------------------------------------------------------

ALL = ["i1", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f16", "bf16", "f32", "f64"]


def cast_module(src: ScalarType) -> Module:
    """out_d[:] = cast<d>(x) for every scalar type d."""
    params = [tensor("x", src)] + [tensor(f"out_{d}", SCALARS[d]) for d in ALL]
    k = K(f"cast_{src}", params)
    offs = k.arange(N)
    a = k.op(Op.LOAD, k.ptrs(k.args[0], offs))
    for out, d in zip(k.args[1:], ALL, strict=True):
        k.op(Op.STORE, k.ptrs(out, offs), k.b.cast(a, BlockType(SCALARS[d], (N,))))
    return k.done()


def _cast_inputs(src: ScalarType) -> np.ndarray:
    """Values every destination can hold after truncation (float -> int out of range is UB)."""
    rng = np.random.default_rng(7)
    if src.is_float:
        special = [0.0, -0.0, 0.5, -0.75, 1.0, 2.5, 127.9, 100.0, 1e-6, 3.0]
        return np.concatenate([special, rng.uniform(-1, 127, N - len(special))])
    if src.is_bool:
        return rng.integers(0, 2, N).astype(bool)
    info = np.iinfo(src.np_dtype)
    return rng.integers(int(info.min), int(info.max), N, dtype=src.np_dtype, endpoint=True)


def _torch_of(a: np.ndarray, tname: str) -> torch.Tensor:
    return torch.from_numpy(a).to(TORCH[tname]) if tname in TORCH else torch.from_numpy(a)


def _cast_ref(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Reference cast as float64 values: numpy, torch for f16/bf16 (through f32)."""
    if dst in TORCH:
        base = torch.from_numpy(x.astype(np.float32) if src != "bf16" else x)
        return base.float().to(TORCH[dst]).float().numpy().astype(np.float64)
    if dst == "i1":
        return (x != 0).astype(np.float64)
    with np.errstate(all="ignore"):
        return x.astype(SCALARS[dst].np_dtype).astype(np.float64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src", ALL)
def test_casts(mode, src, tmp_path):
    t = SCALARS[src]
    x = _cast_inputs(t)
    if src in TORCH:  # held as exact values of the type
        x = torch.from_numpy(x.astype(np.float32)).to(TORCH[src]).float().numpy()
        arg = torch.from_numpy(x).to(TORCH[src])
    else:
        x = x.astype(t.np_dtype)
        arg = x
    outs = []
    for d in ALL:
        dt = SCALARS[d]
        outs.append(torch.empty(N, dtype=TORCH[d]) if d in TORCH else np.empty(N, dt.np_dtype))
    assert launch(cast_module(t), mode, tmp_path, (1,), arg, *outs) is None
    for d, out in zip(ALL, outs, strict=True):
        got = _as_f64(out)
        want = _cast_ref(x, src, d)
        if SCALARS[d].is_unsigned and t.is_float:  # negative floats -> unsigned is UB
            keep = x > -1
            got, want = got[keep], want[keep]
        np.testing.assert_array_equal(got, want, err_msg=f"{src} -> {d}")


# -- control flow -------------------------------------------------------------------------


def column_sum_module(cols: int) -> Module:
    """out[:] = sum of x's rows (FOR carrying an accumulator, a pointer block, a counter
    and a pair swapped every iteration); count[0] = rows; parity[:] = 1 or 2."""
    params = [tensor("x", f32, 2), tensor("out", f32), tensor("count", i32)]
    params += [tensor("parity", f32), scalar("rows", i32)]
    k = K("colsum", params)
    x, out, count, parity, rows = k.args
    cs = k.arange(cols)
    stride = k.b.cast(k.op(Op.STRIDE, x, axis=0), i32)
    zero, one = k.const(0), k.const(1)
    ones, twos = (k.splat(k.const(v, f32), (cols,)) for v in (1.0, 2.0))
    acc0 = k.splat(k.const(0.0, f32), (cols,))

    def body(iv, acc, ptrs, n, a, b):
        row = k.op(Op.LOAD, ptrs)
        step = k.splat(stride, (cols,))
        return k.op(Op.ADD, acc, row), k.op(Op.ADDPTR, ptrs, step), k.op(Op.ADD, n, one), b, a

    acc, _, n, a, _ = k.for_(zero, rows, one, [acc0, k.ptrs(x, cs), zero, ones, twos], body)
    k.op(Op.STORE, k.ptrs(out, cs), acc)
    k.op(Op.STORE, count, n)
    k.op(Op.STORE, k.ptrs(parity, cs), a)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rows", [0, 1, 6, 7])
def test_for_loop_carries_blocks(mode, rows, tmp_path):
    cols = 37
    x = np.random.default_rng(rows).standard_normal((max(rows, 1), cols), dtype=np.float32)
    out, parity = np.empty(cols, np.float32), np.empty(cols, np.float32)
    count = np.full(1, -1, np.int32)
    m = column_sum_module(cols)
    loads = [op for op in annotate_addresses(m).walk() if op.op is Op.LOAD]
    assert loads[0].attr("contig") is True  # the carried pointer block stays contiguous
    assert launch(m, mode, tmp_path, (1,), x, out, count, parity, rows) is None
    want = np.zeros(cols, np.float32)
    for r in range(rows):
        want = want + x[r]  # same order, same rounding
    np.testing.assert_array_equal(out, want)
    assert count[0] == rows
    np.testing.assert_array_equal(parity, 2.0 if rows % 2 else 1.0)


def if_module(block: int) -> Module:
    """Even programs: out = 2x and flag = 1; odd ones: out = x + 100 and flag = -1."""
    k = K("branch", [tensor("x", f32), tensor("out", f32), tensor("flag", i32)])
    x, out, flag = k.args
    pid = k.op(Op.PROGRAM_ID, axis=0)
    offs = k.offsets(block)
    v = k.op(Op.LOAD, k.ptrs(x, offs))
    even = k.op(Op.EQ, k.op(Op.MOD, pid, k.const(2)), k.const(0))
    two, hundred = (k.splat(k.const(c, f32), (block,)) for c in (2.0, 100.0))
    res, f = k.if_(
        even,
        lambda: (k.op(Op.MUL, v, two), k.const(1)),
        lambda: (k.op(Op.ADD, v, hundred), k.const(-1)),
        (v.type, i32),
    )
    k.op(Op.STORE, k.ptrs(out, offs), res)
    k.op(Op.STORE, k.op(Op.ADDPTR, flag, pid), f)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
def test_if_results(mode, tmp_path):
    block, progs = 24, 5
    x = np.arange(block * progs, dtype=np.float32)
    out, flag = np.empty_like(x), np.zeros(progs, np.int32)
    assert launch(if_module(block), mode, tmp_path, (progs,), x, out, flag) is None
    even = (np.arange(block * progs) // block) % 2 == 0
    np.testing.assert_array_equal(out, np.where(even, 2 * x, x + 100))
    np.testing.assert_array_equal(flag, [1, -1, 1, -1, 1])


def while_module(cols: int) -> Module:
    """acc = x; i = 0; while i < n: acc = acc * 2 + x; i += 1 (forwarded in swapped order)."""
    k = K(
        "loop_while", [tensor("x", f32), tensor("out", f32), tensor("iters", i32), scalar("n", i32)]
    )
    x, out, iters, n = k.args
    cs = k.arange(cols)
    v = k.op(Op.LOAD, k.ptrs(x, cs))
    two = k.splat(k.const(2.0, f32), (cols,))

    def before(i, acc):
        return k.op(Op.LT, i, n), acc, i  # forwarded as (acc, i)

    def after(acc, i):
        return k.op(Op.ADD, i, k.const(1)), k.op(Op.ADD, k.op(Op.MUL, acc, two), v)

    acc, i = k.while_([k.const(0), v], before, after, (v.type, i32))
    k.op(Op.STORE, k.ptrs(out, cs), acc)
    k.op(Op.STORE, iters, i)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [0, 1, 5])
def test_while_loop(mode, n, tmp_path):
    cols = 19
    x = np.random.default_rng(n).standard_normal(cols, dtype=np.float32)
    out, iters = np.empty(cols, np.float32), np.zeros(1, np.int32)
    assert launch(while_module(cols), mode, tmp_path, (1,), x, out, iters, n) is None
    want = x.copy()
    for _ in range(n):
        want = want * np.float32(2) + x
    np.testing.assert_array_equal(out, want)
    assert iters[0] == n


# -- 2-D tiles: contiguous rows and strided gathers ---------------------------------------


def tile_copy_module(bm: int, bn: int, unit_last: bool) -> Module:
    """out[r, c] = x[r, c] + 1 over (bm, bn) tiles, masked at the edges. ``unit_last``:
    address x as ``r * s0 + c`` (contiguous rows) instead of ``r * s0 + c * s1`` (gather)."""
    params = [tensor("x", f32, 2), tensor("out", f32, 2), scalar("m", i32), scalar("n", i32)]
    k = K("tile", params)
    x, out, m, n = k.args
    rows = k.op(Op.EXPAND_DIMS, k.offsets(bm, axis=0), axis=1)  # [bm, 1]
    cols = k.op(Op.EXPAND_DIMS, k.offsets(bn, axis=1), axis=0)  # [1, bn]
    shape2 = BlockType(i32, (bm, bn))

    def grid(rstride, cstride):
        r = k.op(Op.MUL, rows, k.splat(rstride, (bm, 1)))
        c = cols if cstride is None else k.op(Op.MUL, cols, k.splat(cstride, (1, bn)))
        wide_r = k.op(Op.BROADCAST, r, declared=shape2)
        return k.op(Op.ADD, wide_r, k.op(Op.BROADCAST, c, declared=shape2))

    def stride(p, axis):
        return k.b.cast(k.op(Op.STRIDE, p, axis=axis), i32)

    in_r = k.op(
        Op.BROADCAST, k.op(Op.LT, rows, k.splat(m, (bm, 1))), declared=BlockType(i1, (bm, bn))
    )
    in_c = k.op(
        Op.BROADCAST, k.op(Op.LT, cols, k.splat(n, (1, bn))), declared=BlockType(i1, (bm, bn))
    )
    mask = k.op(Op.AND, in_r, in_c)
    src = grid(stride(x, 0), None if unit_last else stride(x, 1))
    v = k.op(Op.LOAD, k.ptrs(x, src), mask, k.splat(k.const(-5.0, f32), (bm, bn)))
    v = k.op(Op.ADD, v, k.splat(k.const(1.0, f32), (bm, bn)))
    k.op(Op.STORE, k.ptrs(out, grid(stride(out, 0), None)), v, mask)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("unit_last,transposed", [(True, False), (False, False), (False, True)])
def test_2d_tiles(mode, unit_last, transposed, tmp_path):
    m, n, bm, bn = 11, 13, 4, 5
    base = np.random.default_rng(3).standard_normal((n, m) if transposed else (m, n), np.float32)
    x = base.T if transposed else base  # a view with strides (1, m)
    out = np.full((m, n), np.nan, np.float32)
    mod = tile_copy_module(bm, bn, unit_last)
    load = next(op for op in annotate_addresses(mod).walk() if op.op is Op.LOAD)
    assert bool(load.attr("contig")) == unit_last
    grid = (-(-m // bm), -(-n // bn))
    assert launch(mod, mode, tmp_path, grid, x, out, m, n) is None
    np.testing.assert_array_equal(out, x + 1)


def broadcast_module(r: int, c: int) -> Module:
    """out[i, j] = a[j] + 10 * b[i]: [1, c] and [r, 1] broadcast to [r, c]; also 3-D."""
    k = K(
        "bcast", [tensor("a", f32), tensor("b", f32), tensor("out", f32, 2), tensor("out3", f32, 3)]
    )
    a, b, out, out3 = k.args
    va = k.op(Op.LOAD, k.ptrs(a, k.arange(c)))
    vb = k.op(Op.LOAD, k.ptrs(b, k.arange(r)))
    wide = BlockType(f32, (r, c))
    row = k.op(Op.BROADCAST, k.op(Op.EXPAND_DIMS, va, axis=0), declared=wide)
    col = k.op(Op.BROADCAST, k.op(Op.EXPAND_DIMS, vb, axis=1), declared=wide)
    v = k.op(Op.ADD, row, k.op(Op.MUL, col, k.splat(k.const(10.0, f32), (r, c))))
    flat = k.arange(r * c)
    k.op(Op.STORE, k.ptrs(out, k.op(Op.RESHAPE, flat, declared=BlockType(i32, (r, c)))), v)
    # [r, c] -> [2, r, c] (leading broadcast) and [c] -> [2, r, c]
    v3 = k.op(Op.BROADCAST, v, declared=BlockType(f32, (2, r, c)))
    v3 = k.op(Op.ADD, v3, k.op(Op.BROADCAST, va, declared=BlockType(f32, (2, r, c))))
    offs3 = k.op(Op.RESHAPE, k.arange(2 * r * c), declared=BlockType(i32, (2, r, c)))
    k.op(Op.STORE, k.ptrs(out3, offs3), v3)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
def test_broadcast_reshape(mode, tmp_path):
    r, c = 3, 7
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(c, np.float32), rng.standard_normal(r, np.float32)
    out, out3 = np.empty((r, c), np.float32), np.empty((2, r, c), np.float32)
    assert launch(broadcast_module(r, c), mode, tmp_path, (1,), a, b, out, out3) is None
    want = a[None, :] + np.float32(10) * b[:, None]
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out3, np.broadcast_to(want + a, (2, r, c)))


# -- scalars: scalar pointers, params of every kind, geometry ------------------------------


def scalars_module() -> Module:
    """One program per element: out[pid] = x[pid] * alpha + n + dim0 (if flag) + num_programs."""
    params = [tensor("x", f16), tensor("out", f64), scalar("alpha", f32), scalar("n", i64)]
    params += [scalar("flag", i1), scalar("h", f16)]
    k = K("scalars", params)
    x, out, alpha, n, flag, h = k.args
    pid = k.op(Op.PROGRAM_ID, axis=0)
    v = k.b.cast(k.op(Op.LOAD, k.op(Op.ADDPTR, x, pid)), f32)
    v = k.op(Op.ADD, k.op(Op.MUL, v, alpha), k.b.cast(n, f32))
    dim = k.b.cast(k.op(Op.DIM, x, axis=0), f32)
    v = k.op(Op.ADD, v, k.op(Op.WHERE, flag, dim, k.const(0.0, f32)))
    v = k.op(Op.ADD, v, k.b.cast(k.op(Op.NUM_PROGRAMS, axis=0), f32))
    v = k.op(Op.ADD, v, k.b.cast(h, f32))
    odd = k.op(Op.NE, k.op(Op.AND, pid, k.const(1)), k.const(0))
    k.op(Op.STORE, k.op(Op.ADDPTR, out, pid), k.b.cast(v, f64), odd)  # masked scalar store
    return k.done()


@pytest.mark.parametrize("mode", MODES)
def test_scalar_ops_and_params(mode, tmp_path):
    x = np.arange(6, dtype=np.float16) / 4
    out = np.full(6, -1.0)
    h = 0.1  # rounded to f16 through f32
    assert launch(scalars_module(), mode, tmp_path, (6,), x, out, 1.5, 3, True, h) is None
    want = x.astype(np.float32) * np.float32(1.5) + 3 + 6 + 6 + np.float32(np.float16(h))
    np.testing.assert_array_equal(out[1::2], want[1::2].astype(np.float64))
    np.testing.assert_array_equal(out[0::2], -1.0)


# -- sim mode: out-of-bounds accesses become error records ----------------------------------


def oob_module(block: int, masked_load: bool) -> Module:
    """out[offs] = x[offs] with the load masked by ``offs < n`` or not; the store unmasked."""
    k = K("oob", [tensor("x", f32), tensor("out", f32), scalar("n", i32)])
    x, out, n = k.args
    offs = k.offsets(block)
    mask = k.op(Op.LT, offs, k.splat(n, (block,)))
    v = k.op(Op.LOAD, k.ptrs(x, offs), *([mask] if masked_load else []))
    k.b.loc = SourceLoc("kern.py", 42, 8)
    k.op(Op.STORE, k.ptrs(out, offs), v)
    return k.done()


@pytest.mark.parametrize("masked_load", [True, False])
def test_sim_reports_out_of_bounds(masked_load, tmp_path):
    n, block = 100, 64
    x, out = np.ones(n, np.float32), np.zeros(n, np.float32)
    err = launch(oob_module(block, masked_load), "sim", tmp_path, (3,), x, out, n)
    assert err is not None and err["kind"] == "oob"
    want = {"param": 1, "line": 42, "col": 8, "message": "store"}
    if not masked_load:  # the load, in program 1, fails first
        want = {"param": 0, "line": 10, "col": 4, "message": "load"}
    assert {key: err[key] for key in want} == want
    assert err["pid"] == (1, 0, 0) and err["index"] == 100 and err["extent"] == n
    np.testing.assert_array_equal(out[:block], 1.0)  # program 0 ran completely
    np.testing.assert_array_equal(out[block:], 0.0)  # program 1 stored nothing


def chain_module(t: ScalarType) -> Module:
    """out = ((x * y + x) * y - x) / y + exp(x): every intermediate rounds to ``t``."""
    k = K(f"chain_{t}", [tensor("x", t), tensor("y", t), tensor("out", t)])
    x, y, out = k.args
    offs = k.arange(N)
    a, b = k.op(Op.LOAD, k.ptrs(x, offs)), k.op(Op.LOAD, k.ptrs(y, offs))
    v = k.op(Op.ADD, k.op(Op.MUL, a, b), a)
    v = k.op(Op.DIV, k.op(Op.SUB, k.op(Op.MUL, v, b), a), b)
    k.op(Op.STORE, k.ptrs(out, offs), k.op(Op.ADD, v, k.op(Op.EXP, a)))
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tname", ["f16", "bf16"])
def test_narrow_floats_round_after_every_op(mode, tname, tmp_path):
    dt = TORCH[tname]
    gen = torch.Generator().manual_seed(5)
    x, y = (torch.randn(N, generator=gen).to(dt) for _ in range(2))
    out = torch.empty(N, dtype=dt)
    assert launch(chain_module(SCALARS[tname]), mode, tmp_path, (1,), x, y, out) is None

    def r(v):  # one op: computed in f32, rounded to the type
        return v.to(dt).float()

    a, b = x.float(), y.float()
    v = r(r(r(r(r(a * b) + a) * b) - a) / b)
    want = r(v + r(torch.exp(a)))
    ulp = 2.0**-10 if tname == "f16" else 2.0**-7
    # exp may differ in the last f32 place, which can move a rounding by one ulp of t
    torch.testing.assert_close(out.float(), want, rtol=2 * ulp, atol=2 * ulp)
    exact = (out.float() == want).float().mean().item()
    assert exact > 0.97


def crossing_module(cols: int) -> Module:
    """Virtual (recomputed) int blocks crossing control flow: a FOR whose carried values
    read each other, ``(a, b) = (b + 1, a * 2)``, then an IF yielding ``a + 5`` or ``b``."""
    k = K("crossing", [tensor("out", i32, 2), scalar("n", i32), scalar("which", i1)])
    out, n, which = k.args
    cs = k.arange(cols)
    zero, one = k.const(0), k.const(1)

    def body(iv, a, b):
        return k.op(Op.ADD, b, k.splat(one, (cols,))), k.op(Op.MUL, a, k.splat(k.const(2), (cols,)))

    a, b = k.for_(zero, n, one, [cs, k.splat(k.const(100), (cols,))], body)
    (c,) = k.if_(
        which, lambda: (k.op(Op.ADD, a, k.splat(k.const(5), (cols,))),), lambda: (b,), (a.type,)
    )
    for row, v in enumerate((a, b, c)):
        k.op(Op.STORE, k.ptrs(out, k.shifted(cs, row * cols)), v)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n,which", [(0, True), (3, False), (4, True)])
def test_virtual_blocks_across_control_flow(mode, n, which, tmp_path):
    cols = 10
    out = np.zeros((3, cols), np.int32)
    assert launch(crossing_module(cols), mode, tmp_path, (1,), out, n, which) is None
    a, b = np.arange(cols), np.full(cols, 100)
    for _ in range(n):
        a, b = b + 1, a * 2
    np.testing.assert_array_equal(out, [a, b, a + 5 if which else b])


# -- fma, bitcast, permute -------------------------------------------------------------------


def fma_module() -> Module:
    k = K("fused", [tensor("a", f32), tensor("b", f32), tensor("c", f32), tensor("out", f32)])
    offs = k.arange(N)
    a, b, c = (k.op(Op.LOAD, k.ptrs(p, offs)) for p in k.args[:3])
    k.op(Op.STORE, k.ptrs(k.args[3], offs), k.op(Op.FMA, a, b, c))
    return k.done()


@pytest.mark.parametrize("mode", MODES)
def test_fma_rounds_once(mode, tmp_path):
    rng = np.random.default_rng(11)
    a, b, c = (rng.standard_normal(N).astype(np.float32) for _ in range(3))
    out = np.empty(N, np.float32)
    assert launch(fma_module(), mode, tmp_path, (1,), a, b, c, out) is None
    fused = (a.astype(np.float64) * b + c).astype(np.float32)  # the product is exact in f64
    assert (fused != a * b + c).any()  # the data tells fused from unfused
    np.testing.assert_array_equal(out, fused)


BITCASTS = [("f32", "i32"), ("i32", "f32"), ("f64", "u64"), ("u64", "f64"), ("f16", "i16"),
            ("i16", "f16"), ("bf16", "u16"), ("u16", "bf16"), ("u32", "i32")]  # fmt: skip


def bitcast_module(src: str, dst: str) -> Module:
    k = K("bits", [tensor("x", SCALARS[src]), tensor("out", SCALARS[dst])])
    offs = k.arange(N)
    v = k.op(Op.LOAD, k.ptrs(k.args[0], offs))
    cast = k.b.typed(Op.BITCAST, v, declared=BlockType(SCALARS[dst], (N,)))
    k.op(Op.STORE, k.ptrs(k.args[1], offs), cast)
    return k.done()


def _dtype(tname: str) -> np.dtype:
    return np.dtype(np.uint16) if tname == "bf16" else SCALARS[tname].np_dtype


def _bit_patterns(src: str, dst: str) -> np.ndarray:
    """Random values of whichever type is a float (never NaN: payloads may change), as
    ``src`` (bf16 as its uint16 bits)."""
    rng = np.random.default_rng(3)
    t = next((n for n in (src, dst) if n[0] in "fb"), src)
    if t[0] in "fb":
        x = (rng.standard_normal(N) * 100).astype(np.float32 if t == "bf16" else _dtype(t))
        if t == "bf16":
            x = (x.view(np.uint32) >> 16).astype(np.uint16)
    else:
        info = np.iinfo(_dtype(t))
        x = rng.integers(info.min, info.max, N, dtype=_dtype(t), endpoint=True)
    return x.view(_dtype(src))


def _maybe_bf16(a: np.ndarray, tname: str):
    return torch.from_numpy(a).view(torch.bfloat16) if tname == "bf16" else a


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src,dst", BITCASTS)
def test_bitcast(mode, src, dst, tmp_path):
    x = _bit_patterns(src, dst)
    out = np.empty(N, _dtype(dst))
    args = _maybe_bf16(x, src), _maybe_bf16(out, dst)
    assert launch(bitcast_module(src, dst), mode, tmp_path, (1,), *args) is None
    np.testing.assert_array_equal(out.view(np.uint8), x.view(np.uint8))


def permute_module(shape: tuple[int, ...], order: tuple[int, ...]) -> Module:
    """out (row-major, permuted shape) = x (row-major, ``shape``) permuted by ``order``."""
    k = K("perm", [tensor("x", i32), tensor("out", i32)])
    numel = int(np.prod(shape))
    offs = k.op(Op.RESHAPE, k.arange(numel), declared=BlockType(i32, shape))
    v = k.op(Op.LOAD, k.ptrs(k.args[0], offs))
    p = k.op(Op.PERMUTE, v, order=order)
    out_offs = k.op(Op.RESHAPE, k.arange(numel), declared=BlockType(i32, p.type.shape))
    k.op(Op.STORE, k.ptrs(k.args[1], out_offs), p)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "shape,order", [((4, 6), (1, 0)), ((2, 3, 5), (2, 0, 1)), ((3, 1, 4), (1, 2, 0))]
)
def test_permute(mode, shape, order, tmp_path):
    x = np.arange(int(np.prod(shape)), dtype=np.int32) * 7
    out = np.empty_like(x)
    assert launch(permute_module(shape, order), mode, tmp_path, (1,), x, out) is None
    np.testing.assert_array_equal(out, x.reshape(shape).transpose(order).ravel())


# -- reductions, scans, dot ----------------------------------------------------------------

KINDS = ["sum", "prod", "max", "min"]
INT_KINDS = KINDS + ["and", "or", "xor"]


def reduce_module(t: ScalarType, shape, axis: int, keep: bool) -> tuple[Module, list[str]]:
    """out[j] = reduce_kind_j(x, axis) (flattened); idx[0/1] = argmax/argmin(x, axis)."""
    kinds = INT_KINDS if t.is_int else KINDS
    k = K(f"red_{t}", [tensor("x", t), tensor("out", t, 2), tensor("idx", i32, 2)])
    x, out, idx = k.args
    numel = int(np.prod(shape))
    v = k.op(Op.LOAD, k.ptrs(x, k.op(Op.RESHAPE, k.arange(numel), declared=BlockType(i32, shape))))
    rest = numel // shape[axis]

    def store(dst, row, value):
        if isinstance(value.type, BlockType):
            flat = k.op(Op.RESHAPE, value, declared=BlockType(value.type.elem, (rest,)))
            k.op(Op.STORE, k.ptrs(dst, k.shifted(k.arange(rest), row * rest)), flat)
        else:
            k.op(Op.STORE, k.op(Op.ADDPTR, dst, k.const(row)), value)

    for row, kind in enumerate(kinds):
        store(out, row, k.op(Op.REDUCE, v, kind=kind, axis=axis, keep_dims=keep))
    for row, kind in enumerate(["argmax", "argmin"]):
        store(idx, row, k.op(Op.REDUCE, v, kind=kind, axis=axis, keep_dims=keep))
    return k.done(), kinds


_NP_REDUCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min,
              "and": np.bitwise_and.reduce, "or": np.bitwise_or.reduce,
              "xor": np.bitwise_xor.reduce}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tname", ["f32", "f16", "f64", "i32", "u8"])
@pytest.mark.parametrize(
    "shape,axis", [((5, 37), 1), ((3, 100), 1), ((40, 6), 0), ((4, 5, 6), 1), ((64,), 0)]
)
def test_reduce(mode, tname, shape, axis, tmp_path):
    t = SCALARS[tname]
    rng = np.random.default_rng(sum(shape))
    if t.is_float:
        x = rng.uniform(0.5, 1.5, shape).astype(t.np_dtype)  # keeps products finite
        x.flat[7] = 3.0  # a unique max
        if len(shape) == 2:
            x[1, 2] = np.nan  # propagates through max/min, wins argmax/argmin
    else:
        x = rng.integers(0, 200, shape).astype(t.np_dtype)
    m, kinds = reduce_module(t, shape, axis, keep=len(shape) == 3)
    rest = x.size // shape[axis]
    out = np.zeros((len(kinds), rest), t.np_dtype)
    idx = np.zeros((2, rest), np.int32)
    assert launch(m, mode, tmp_path, (1,), x.ravel(), out, idx) is None
    wide = x.astype(np.float64) if t.is_float else x
    for row, kind in enumerate(kinds):
        with np.errstate(all="ignore"):
            want = _NP_REDUCE[kind](wide, axis=axis).astype(t.np_dtype).ravel()
        if kind in ("sum", "prod") and t.is_float:  # order and intermediate rounding differ
            rtol = 2e-3 if tname == "f16" else 1e-5
            np.testing.assert_allclose(out[row], want, rtol=rtol, equal_nan=True, err_msg=kind)
        else:
            np.testing.assert_array_equal(out[row], want, err_msg=kind)
    nanfirst = np.isnan(wide).any(axis=axis) if t.is_float else False
    for row, fn in enumerate((np.argmax, np.argmin)):
        want = fn(wide, axis=axis)  # numpy: the first extreme, and a NaN counts as one
        if t.is_float:
            want = np.where(nanfirst, np.argmax(np.isnan(wide), axis=axis), want)
        np.testing.assert_array_equal(idx[row], want.ravel(), err_msg=fn.__name__)


def scan_module(t: ScalarType, shape, axis: int, kind: str, reverse: bool) -> Module:
    k = K(f"scan_{t}", [tensor("x", t), tensor("out", t)])
    numel = int(np.prod(shape))
    offs = k.op(Op.RESHAPE, k.arange(numel), declared=BlockType(i32, shape))
    v = k.op(Op.LOAD, k.ptrs(k.args[0], offs))
    s = k.op(Op.SCAN, v, kind=kind, axis=axis, reverse=reverse)
    k.op(Op.STORE, k.ptrs(k.args[1], offs), s)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "tname,kind", [("f32", "sum"), ("f32", "prod"), ("i32", "sum"), ("f16", "sum")]
)
@pytest.mark.parametrize(
    "shape,axis,reverse", [((4, 37), 1, False), ((6, 5), 0, True), ((40,), 0, True)]
)
def test_scan(mode, tname, kind, shape, axis, reverse, tmp_path):
    t = SCALARS[tname]
    rng = np.random.default_rng(1)
    x = (rng.uniform(0.9, 1.1, shape) if t.is_float else rng.integers(-50, 50, shape)).astype(
        t.np_dtype
    )
    out = np.empty_like(x)
    m = scan_module(t, shape, axis, kind, reverse)
    assert launch(m, mode, tmp_path, (1,), x.ravel(), out.ravel()) is None
    acc_t = np.float32 if tname == "f16" else t.np_dtype
    flip = (lambda a: np.flip(a, axis)) if reverse else (lambda a: a)
    fn = np.cumsum if kind == "sum" else np.cumprod
    want = flip(fn(flip(x.astype(acc_t)), axis=axis, dtype=acc_t)).astype(t.np_dtype)
    np.testing.assert_array_equal(out, want)  # sequential in both, in the same type


def dot_module(src: ScalarType, acc: ScalarType, m: int, kk: int, n: int) -> Module:
    k = K(f"dot_{src}", [tensor("a", src), tensor("b", src), tensor("c", acc)])
    a, b, c = k.args

    def tile(p, shape):
        offs = k.op(Op.RESHAPE, k.arange(shape[0] * shape[1]), declared=BlockType(i32, shape))
        return k.ptrs(p, offs)

    cp = tile(c, (m, n))
    d = k.op(
        Op.DOT, k.op(Op.LOAD, tile(a, (m, kk))), k.op(Op.LOAD, tile(b, (kk, n))), k.op(Op.LOAD, cp)
    )
    k.op(Op.STORE, cp, d)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("src,acc", [("f32", "f32"), ("f16", "f32"), ("i8", "i32"), ("f64", "f64")])
@pytest.mark.parametrize("m,kk,n", [(5, 7, 9), (16, 32, 24)])
def test_dot(mode, src, acc, m, kk, n, tmp_path):
    rng = np.random.default_rng(m)
    st, at = SCALARS[src], SCALARS[acc]
    if st.is_float:
        a, b = (rng.standard_normal(s).astype(st.np_dtype) for s in ((m, kk), (kk, n)))
        c = rng.standard_normal((m, n)).astype(at.np_dtype)
    else:
        a, b = (rng.integers(-100, 100, s).astype(st.np_dtype) for s in ((m, kk), (kk, n)))
        c = rng.integers(-1000, 1000, (m, n)).astype(at.np_dtype)
    want = c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    args = (v.ravel() for v in (a, b, c))  # rank-1 parameters
    assert launch(dot_module(st, at, m, kk, n), mode, tmp_path, (1,), *args) is None
    if at.is_float:
        np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(c, want.astype(np.int64))


# -- atomics, device_assert, print --------------------------------------------------------


def atomic_module(t: ScalarType, kind: str, block: int, slots: int) -> Module:
    """old[pid*block + i] = atomic_<kind>(out + (i % slots), x[pid*block + i]) where i < n."""
    k = K(f"atomic_{kind}", [tensor("x", t), tensor("out", t), tensor("old", t), scalar("n", i32)])
    x, out, old, n = k.args
    offs = k.offsets(block)
    mask = k.op(Op.LT, k.arange(block), k.splat(n, (block,)))
    v = k.op(Op.LOAD, k.ptrs(x, offs))
    slot = k.op(Op.MOD, k.arange(block), k.splat(k.const(slots), (block,)))
    r = k.op(Op.ATOMIC_RMW, k.ptrs(out, slot), v, mask, kind=kind)
    k.op(Op.STORE, k.ptrs(old, offs), r)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "tname,kind",
    [("i32", "add"), ("f32", "add"), ("f16", "add"), ("i64", "max"), ("f32", "min"),
     ("u32", "and"), ("u32", "or"), ("u8", "xor"), ("f64", "max")],
)  # fmt: skip
def test_atomic_rmw_under_contention(mode, tname, kind, tmp_path):
    t = SCALARS[tname]
    block, slots, progs, n = 32, 8, 6, 30  # lanes 30, 31 are masked off
    rng = np.random.default_rng(2)
    lo = 0 if t.is_unsigned else -50
    x = rng.integers(lo, 50, block * progs).astype(t.np_dtype)  # exact in every type
    init = {"add": 0, "max": -1000, "min": 1000, "and": 0xFFFFFFFF, "or": 0, "xor": 0}[kind]
    out = np.full(slots, init if not t.is_unsigned or init >= 0 else 0).astype(t.np_dtype)
    old = np.full(block * progs, 99, t.np_dtype)
    th = torch.from_numpy
    args = (th(x), th(out), th(old)) if tname == "f16" else (x, out, old)
    m = atomic_module(t, kind, block, slots)
    assert launch(m, mode, tmp_path, (progs,), *args, n) is None
    lanes = x.reshape(progs, block)[:, :n]
    fold = {"add": np.add, "max": np.maximum, "min": np.minimum, "and": np.bitwise_and,
            "or": np.bitwise_or, "xor": np.bitwise_xor}[kind]  # fmt: skip
    want = np.array([init] * slots).astype(t.np_dtype)
    for s in range(slots):
        want[s] = fold.reduce(
            np.concatenate([[want[s]], lanes[:, s::slots].ravel()]).astype(t.np_dtype)
        )
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(old.reshape(progs, block)[:, n:], 0)  # masked-off lanes


def cas_module() -> Module:
    """Every program tries to swap slot 0 from 0 to pid + 1; old[pid] = what it saw."""
    k = K("cas", [tensor("slot", i32), tensor("old", i32)])
    slot, old = k.args
    pid = k.op(Op.PROGRAM_ID, axis=0)
    seen = k.op(Op.ATOMIC_CAS, slot, k.const(0), k.op(Op.ADD, pid, k.const(1)))
    k.op(Op.STORE, k.op(Op.ADDPTR, old, pid), seen)
    return k.done()


@pytest.mark.parametrize("mode", MODES)
def test_atomic_cas(mode, tmp_path):
    slot, old = np.zeros(1, np.int32), np.full(16, -1, np.int32)
    assert launch(cas_module(), mode, tmp_path, (16,), slot, old) is None
    winner = int(slot[0])
    assert 1 <= winner <= 16
    assert old[winner - 1] == 0 and (np.delete(old, winner - 1) == winner).all()


def assert_module(block: int) -> Module:
    k = K("checked", [tensor("x", f32)])
    v = k.op(Op.LOAD, k.ptrs(k.args[0], k.offsets(block)))
    k.b.loc = SourceLoc("kern.py", 77, 6)
    ok = k.op(Op.LT, v, k.splat(k.const(10.0, f32), (block,)))
    k.b.emit(Op.DEVICE_ASSERT, (ok,), attrs={"msg": 'x < 10 "really"'})
    return k.done()


@pytest.mark.parametrize("mode", [*MODES, "cpu-debug"])
def test_device_assert(mode, tmp_path):
    x = np.zeros(64, np.float32)
    x[45] = 11.0
    err = launch(assert_module(16), mode, tmp_path, (4,), x)
    if mode == "cpu":
        assert err is None  # asserts are checked by the simulator only
        return
    assert err is not None and err["kind"] == "assert"
    assert (err["line"], err["col"], err["pid"], err["index"]) == (77, 6, (2, 0, 0), 13)
    assert err["message"] == 'x < 10 "really"'


def print_module() -> Module:
    k = K("show", [tensor("x", i32)])
    v = k.op(Op.LOAD, k.ptrs(k.args[0], k.arange(3)))
    k.b.emit(Op.PRINT, (k.op(Op.PROGRAM_ID, axis=0), v), attrs={"prefix": "x 100%: "})
    return k.done()


def test_print(capfd, tmp_path):
    x = np.array([5, -6, 7], np.int32)
    assert launch(print_module(), "sim", tmp_path, (2,), x) is None
    lines = capfd.readouterr().out.splitlines()
    assert lines[:4] == [
        "pid (0, 0, 0) x 100%: 0",
        "pid (0, 0, 0) x 100%: idx (0) 5",
        "pid (0, 0, 0) x 100%: idx (1) -6",
        "pid (0, 0, 0) x 100%: idx (2) 7",
    ]
    assert lines[4] == "pid (1, 0, 0) x 100%: 1" and len(lines) == 8
