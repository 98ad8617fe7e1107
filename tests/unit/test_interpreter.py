"""The numpy reference interpreter against numpy, torch and plain-Python references.

Kernels are built by hand with ``Builder`` (no frontend, no text parser), and
launched through the same ABI slots the compiled backends take.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pypto_jit import interpreter
from pypto_jit.errors import KernelRuntimeError, OutOfBoundsError, SourceLoc
from pypto_jit.interpreter.registry import RULES
from pypto_jit.ir import BlockType, Builder, Module, Op, Param, PtrType
from pypto_jit.ir.types import SCALARS, f32, i1, i32, i64

LOC = SourceLoc("kernel.py", 7, 4)
STORE_LOC = SourceLoc("kernel.py", 12, 4)
RNG = np.random.default_rng(1234)

INTS = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
FLOATS = ["f16", "bf16", "f32", "f64"]
TORCH = {
    "i1": torch.bool, "i8": torch.int8, "i16": torch.int16, "i32": torch.int32,
    "i64": torch.int64, "u8": torch.uint8, "u16": torch.uint16, "u32": torch.uint32,
    "u64": torch.uint64, "f16": torch.float16, "bf16": torch.bfloat16,
    "f32": torch.float32, "f64": torch.float64,
}  # fmt: skip


@pytest.fixture(autouse=True)
def _reseed():
    """Each test draws the same inputs whatever ran before it (xdist, -k)."""
    global RNG
    RNG = np.random.default_rng(1234)


# -- building and launching ---------------------------------------------------------


def tensor(name: str, t: str, rank: int = 1) -> Param:
    return Param(name, "tensor", PtrType(SCALARS[t]), (None,) * rank, (None,) * rank)


def scalar(name: str, t: str) -> Param:
    return Param(name, "scalar", SCALARS[t])


def build(name: str, params: list[Param], body) -> Module:
    b = Builder()
    b.loc = LOC
    args = b.open_block(tuple(p.type for p in params))
    body(b, *args)
    return Module(name, tuple(params), b.close_block())


def launch(module: Module, *args, grid=(1, 1, 1)) -> None:
    """Pack arguments into ABI slots the way the runtime does, then run."""
    tensors, iargs, fargs = [], [], []
    for p, a in zip(module.params, args, strict=True):
        if p.kind == "tensor":
            tensors.append(a)
            iargs += [a.ctypes.data, *a.shape, *(s // a.itemsize for s in a.strides)]
        else:
            tensors.append(None)
            (fargs if p.type.is_float else iargs).append(a)
    interpreter.run(module, tensors, iargs, fargs, grid)


def arange(b: Builder, n: int, start: int = 0):
    return b.typed(Op.ARANGE, start=start, end=start + n)


def addptr(b: Builder, ptr, off):
    """``ptr + off`` for a scalar tensor pointer and a block of offsets."""
    return b.typed(Op.ADDPTR, b.splat(ptr, off.type.shape), off)


def load(b: Builder, ptr, off, mask=None, other=None):
    operands = [addptr(b, ptr, off)] + [v for v in (mask, other) if v is not None]
    return b.typed(Op.LOAD, *operands)


def store(b: Builder, ptr, off, value, mask=None):
    b.loc = STORE_LOC
    b.typed(Op.STORE, addptr(b, ptr, off), value, *([mask] if mask is not None else []))
    b.loc = LOC


def out_type(op: Op, t_in: str, t_out: str | None) -> str:
    return t_out or ("i1" if op in (Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE) else t_in)


def map_kernel(op: Op, t_in: str, arity: int, n: int, t_out: str | None = None) -> Module:
    """out[i] = op(x0[i], ..., x{arity-1}[i]) over one block of n elements."""
    t_out = out_type(op, t_in, t_out)
    params = [tensor(f"x{i}", t_in) for i in range(arity)] + [tensor("out", t_out)]

    def body(b, *args):
        *xs, out = args
        off = arange(b, n)
        vals = [load(b, x, off) for x in xs]
        if op is Op.CAST:
            result = b.cast(vals[0], BlockType(SCALARS[t_out], (n,)))
        else:
            result = b.typed(op, *vals)
        store(b, out, off, result)

    return build(f"map_{op}", params, body)


# -- storage formats: bf16 travels as raw bits in uint16 arrays ------------------------


def to_storage(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16).copy()
    return t.numpy().copy()


def from_storage(a: np.ndarray, t: str) -> torch.Tensor:
    if t == "bf16":
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def run_map_np(op: Op, t_in: str, inputs: list[np.ndarray], t_out: str | None = None):
    """Run ``map_kernel`` on storage arrays; returns the output storage array."""
    n = inputs[0].size
    module = map_kernel(op, t_in, len(inputs), n, t_out)
    t_out = out_type(op, t_in, t_out)
    out = np.zeros(n, dtype=np.uint16 if t_out == "bf16" else SCALARS[t_out].np_dtype)
    launch(module, *inputs, out)
    return out


def run_map(op: Op, t_in: str, inputs: list[torch.Tensor], t_out: str | None = None):
    out = run_map_np(op, t_in, [to_storage(x) for x in inputs], t_out)
    return from_storage(out, out_type(op, t_in, t_out))


def bits16(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().astype(np.int32) & 0xFFFF


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Distance in units in the last place between two f16/bf16 tensors (NaN == NaN)."""

    def key(x):
        bits = bits16(x)
        return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)

    both_nan = torch.isnan(a).numpy() & torch.isnan(b).numpy()
    return np.where(both_nan, 0, np.abs(key(a) - key(b)))


def float_inputs(t: str, n: int = 61, lo: float = -4.0, hi: float = 4.0) -> torch.Tensor:
    special = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, math.inf, -math.inf, math.nan, 1e-3]
    x = np.concatenate([special, RNG.uniform(lo, hi, n - len(special))])
    return torch.tensor(x, dtype=torch.float64).to(TORCH[t])


def assert_same_floats(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


# -- the add kernel -----------------------------------------------------------------


def add_kernel(block: int) -> Module:
    params = [tensor("x", "f32"), tensor("y", "f32"), tensor("out", "f32"), scalar("n", "i32")]

    def body(b, x, y, out, n):
        pid = b.typed(Op.PROGRAM_ID, axis=0)
        start = b.typed(Op.MUL, pid, b.const(block, i32))
        offs = b.typed(Op.ADD, b.splat(start, (block,)), arange(b, block))
        mask = b.typed(Op.LT, offs, b.splat(n, (block,)))
        total = b.typed(Op.ADD, load(b, x, offs, mask), load(b, y, offs, mask))
        store(b, out, offs, total, mask)

    return build("add_kernel", params, body)


def test_vector_add_masked_over_many_programs():
    n, block = 1000, 96  # neither a multiple of the block nor a power of two
    x, y = RNG.random(n, dtype=np.float32), RNG.random(n, dtype=np.float32)
    buf = np.full(n + 200, -7.0, dtype=np.float32)
    out = buf[:n]  # the masked-off tail of the last program must stay untouched
    launch(add_kernel(block), x, y, out, n, grid=(math.ceil(n / block), 1, 1))
    np.testing.assert_array_equal(out, x + y)
    assert (buf[n:] == -7.0).all()


def test_unmasked_out_of_bounds_store_names_param_index_and_pid():
    n, block = 1000, 96
    x, y, out = (np.zeros(n, np.float32) for _ in range(3))
    # n lies: the mask lets the last program run past the end of ``out``.
    with pytest.raises(OutOfBoundsError) as info:
        launch(add_kernel(block), x, y, out[:990], n, grid=(11, 1, 1))
    err = info.value
    # x and y hold n elements, so only the store to the shorter ``out`` fails.
    assert (err.param, err.index, err.pid, err.loc) == ("out", 990, (10, 0, 0), STORE_LOC)
    assert err.kernel == "add_kernel"
    assert str(err) == (
        "kernel add_kernel, kernel.py:12: store to out[990] out of bounds (valid 0..989) "
        "in program (10, 0, 0)"
    )
    assert (out[:960] == 0).all()  # earlier programs ran


def test_out_of_bounds_load_and_negative_offsets():
    def body(b, x, out):
        off = b.typed(Op.SUB, arange(b, 4), b.splat(b.const(2, i32), (4,)))  # -2..1
        store(b, out, arange(b, 4), load(b, x, off))

    module = build("neg_kernel", [tensor("x", "f32"), tensor("out", "f32")], body)
    with pytest.raises(OutOfBoundsError) as info:
        launch(module, np.zeros(8, np.float32), np.zeros(4, np.float32), grid=(3, 2, 1))
    assert (info.value.param, info.value.index, info.value.pid) == ("x", -2, (0, 0, 0))
    assert "load from x[-2] out of bounds (valid 0..7)" in str(info.value)


def test_masked_lanes_are_never_touched():
    def body(b, x, out):
        off = b.typed(Op.MUL, arange(b, 8), b.splat(b.const(1000, i32), (8,)))  # 0, 1000, ...
        mask = b.typed(Op.EQ, arange(b, 8), b.splat(b.const(0, i32), (8,)))
        other = b.splat(b.const(-1.5, f32), (8,))
        value = load(b, x, off, mask, other)
        store(b, out, off, value, mask)
        store(b, out, b.typed(Op.ADD, off, b.splat(b.const(1, i32), (8,))), value, mask)

    module = build("masked", [tensor("x", "f32"), tensor("out", "f32")], body)
    out = np.zeros(2, np.float32)
    launch(module, np.array([3.0], np.float32), out)
    np.testing.assert_array_equal(out, [3.0, 3.0])  # lane 1 got `other`, stored nowhere
    empty = np.zeros(0, np.float32)
    with pytest.raises(OutOfBoundsError, match="the tensor is empty"):
        launch(module, empty, out)


def test_masked_load_gives_other_or_zero():
    def body(b, x, out, n):
        offs = arange(b, 6)
        mask = b.typed(Op.LT, offs, b.splat(n, (6,)))
        a = load(b, x, offs, mask, b.splat(b.const(9, i32), (6,)))
        z = load(b, x, offs, mask)
        store(b, out, offs, b.typed(Op.ADD, a, z))

    module = build("other", [tensor("x", "i32"), tensor("out", "i32"), scalar("n", "i32")], body)
    out = np.zeros(6, np.int32)
    launch(module, np.arange(1, 4, dtype=np.int32), out, 3)
    np.testing.assert_array_equal(out, [2, 4, 6, 9, 9, 9])


# -- elementwise float ops ------------------------------------------------------------

FLOAT_UNARY = [Op.NEG, Op.ABS, Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.SQRT, Op.RSQRT]
FLOAT_UNARY += [Op.SIN, Op.COS, Op.FLOOR, Op.CEIL]
# Not correctly rounded in f32 by libm or torch (torch's vectorized rsqrt is not 1/sqrt).
NOT_EXACT = {Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.SIN, Op.COS, Op.RSQRT}
NUMPY_UNARY = {
    Op.NEG: np.negative, Op.ABS: np.abs, Op.EXP: np.exp, Op.EXP2: np.exp2, Op.LOG: np.log,
    Op.LOG2: np.log2, Op.SQRT: np.sqrt, Op.RSQRT: lambda x: 1 / np.sqrt(x), Op.SIN: np.sin,
    Op.COS: np.cos, Op.FLOOR: np.floor, Op.CEIL: np.ceil,
}  # fmt: skip
TORCH_UNARY = {
    Op.NEG: torch.neg, Op.ABS: torch.abs, Op.EXP: torch.exp, Op.EXP2: torch.exp2,
    Op.LOG: torch.log, Op.LOG2: torch.log2, Op.SQRT: torch.sqrt, Op.RSQRT: torch.rsqrt,
    Op.SIN: torch.sin, Op.COS: torch.cos, Op.FLOOR: torch.floor, Op.CEIL: torch.ceil,
}  # fmt: skip


@pytest.mark.parametrize("t", ["f32", "f64"])
@pytest.mark.parametrize("op", FLOAT_UNARY, ids=str)
def test_float_unary_matches_numpy(op, t):
    x = float_inputs(t)
    with np.errstate(all="ignore"):
        want = NUMPY_UNARY[op](x.numpy())
    assert_same_floats(run_map(op, t, [x]), torch.from_numpy(want.astype(x.numpy().dtype)))


@pytest.mark.parametrize("t", ["f16", "bf16"])
@pytest.mark.parametrize("op", FLOAT_UNARY, ids=str)
def test_half_unary_rounds_like_torch(op, t):
    x = float_inputs(t, n=400, lo=-8.0, hi=8.0)
    got, want = run_map(op, t, [x]), TORCH_UNARY[op](x)
    if op in NOT_EXACT:  # f32 results may differ by an ulp before rounding
        assert ulp_distance(got, want).max() <= 1
    else:
        assert_same_floats(got, want)


@pytest.mark.parametrize("op", sorted(NOT_EXACT, key=str), ids=str)
def test_f16_unary_computes_in_f32_then_rounds_once(op):
    """Every f16 input: exactly the f32 result rounded to f16. (numpy's own float16
    exp/log/sin/cos differ from this on about 1e-4 of the inputs.)"""
    x = np.arange(2**16, dtype=np.uint16).view(np.float16)
    with np.errstate(all="ignore"):
        want = NUMPY_UNARY[op](x.astype(np.float32)).astype(np.float16)
    got = run_map_np(op, "f16", [x])
    np.testing.assert_array_equal(got, want)


FLOAT_BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM, Op.MOD]
TORCH_BINARY = {
    Op.ADD: torch.add, Op.SUB: torch.sub, Op.MUL: torch.mul, Op.DIV: torch.div,
    Op.MAXIMUM: torch.maximum, Op.MINIMUM: torch.minimum, Op.MOD: torch.fmod,
}  # fmt: skip


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize("op", FLOAT_BINARY, ids=str)
def test_float_binary_matches_torch(op, t):
    a = float_inputs(t, n=500, lo=-300, hi=300)
    b = float_inputs(t, n=500, lo=-3, hi=3)[
        torch.randperm(500, generator=torch.Generator().manual_seed(0))
    ]
    assert_same_floats(run_map(op, t, [a, b]), TORCH_BINARY[op](a, b))


def test_half_arithmetic_rounds_to_nearest_even():
    # bf16: 1 + 2**-8 ties between 1.0 and 1.0078125 -> even 1.0; 1 + 3*2**-8 -> even 1.015625.
    a = torch.tensor([1.0, 1.0, 256.0, 2049.0], dtype=torch.float32)
    b = torch.tensor([2**-8, 3 * 2**-8, 1.0, 0.0], dtype=torch.float32)
    got = run_map(Op.ADD, "bf16", [a.bfloat16(), b.bfloat16()]).float()
    np.testing.assert_array_equal(got.numpy(), [1.0, 1.015625, 256.0, 2048.0])
    got16 = run_map(Op.ADD, "f16", [a.half(), (b * 2**-3).half()]).float()
    np.testing.assert_array_equal(got16.numpy(), [1.0, 1.001953125, 256.0, 2048.0])


def test_float_idiv_truncates():
    a = torch.tensor([7.5, -7.5, 7.5, -7.5, 1.0], dtype=torch.float32)
    b = torch.tensor([2.0, 2.0, -2.0, -2.0, 0.0], dtype=torch.float32)
    np.testing.assert_array_equal(run_map(Op.IDIV, "f32", [a, b]).numpy(), [3, -3, -3, 3, np.inf])


COMPARES = {
    Op.LT: np.less, Op.LE: np.less_equal, Op.GT: np.greater,
    Op.GE: np.greater_equal, Op.EQ: np.equal, Op.NE: np.not_equal,
}  # fmt: skip


@pytest.mark.parametrize("t", FLOATS + INTS + ["i1"])
@pytest.mark.parametrize("op", list(COMPARES), ids=str)
def test_compare(op, t):
    if t in FLOATS:
        a, b = float_inputs(t, n=50, lo=-2, hi=2), float_inputs(t, n=50, lo=-2, hi=2)
        b[20:30] = a[20:30]  # equal lanes
    else:
        a, b = int_inputs(t, 50), int_inputs(t, 50)
        b[::3] = a[::3]
    exact = [x.float().numpy() if t in FLOATS else x.numpy() for x in (a, b)]  # bf16 -> f32
    want = COMPARES[op](*exact)
    np.testing.assert_array_equal(run_map(op, t, [a, b]).numpy(), want)


# -- integers: C semantics, checked against plain Python ints ---------------------------


def int_range(t: str) -> tuple[int, int]:
    bits = SCALARS[t].bits
    if t == "i1":
        return 0, 1
    return (0, 2**bits - 1) if t[0] == "u" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def wrap(v: int, t: str) -> int:
    lo, hi = int_range(t)
    return (v - lo) % (hi - lo + 1) + lo


def int_inputs(t: str, n: int) -> torch.Tensor:
    return torch.from_numpy(int_inputs_np(t, n))


def int_inputs_np(t: str, n: int) -> np.ndarray:
    """Edge values (min, max, 0, +-1, ...), then wide random values, then small ones."""
    lo, hi = int_range(t)
    edges = [lo, hi, 0, 1, -1, 2, -2, 3, -7, 7, lo + 1, hi - 1]
    dtype = SCALARS[t].np_dtype
    vals = [wrap(v, t) for v in edges] + RNG.integers(lo, hi, n, dtype, endpoint=True).tolist()
    small = RNG.integers(max(lo, -40), min(hi, 40), n, endpoint=True).tolist()
    return np.array(vals + small, dtype=dtype)[: 2 * n]


def c_div(a: int, b: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def c_mod(a: int, b: int) -> int:
    return 0 if b == 0 else a - b * c_div(a, b)


def py_reference(op: Op, t: str, a: int, b: int | None = None) -> int:
    bits = SCALARS[t].bits
    rules = {
        Op.NEG: lambda: -a, Op.NOT: lambda: ~a, Op.ABS: lambda: abs(a),
        Op.ADD: lambda: a + b, Op.SUB: lambda: a - b, Op.MUL: lambda: a * b,
        Op.AND: lambda: a & b, Op.OR: lambda: a | b, Op.XOR: lambda: a ^ b,
        Op.MAXIMUM: lambda: max(a, b), Op.MINIMUM: lambda: min(a, b),
        Op.IDIV: lambda: c_div(a, b), Op.MOD: lambda: c_mod(a, b),
        Op.SHL: lambda: a << (b % bits), Op.SHR: lambda: a >> (b % bits),
    }  # fmt: skip
    return wrap(rules[op](), t)


INT_UNARY = [Op.NEG, Op.NOT, Op.ABS]
INT_BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.AND, Op.OR, Op.XOR, Op.MAXIMUM, Op.MINIMUM]
INT_BINARY += [Op.IDIV, Op.MOD, Op.SHL, Op.SHR]


@pytest.mark.parametrize("t", INTS)
@pytest.mark.parametrize("op", INT_UNARY + INT_BINARY, ids=str)
def test_int_ops_wrap_like_c(op, t):
    arity = 1 if op in INT_UNARY else 2
    xs = [int_inputs_np(t, 60) for _ in range(arity)]
    if arity == 2:
        xs[1][:12] = int_inputs_np(t, 6)[:12]  # edge divisors and shift counts (0, -1, ...)
        xs[0][:12] = xs[0][0]  # against the type's minimum
    got = run_map_np(op, t, xs).tolist()
    want = [py_reference(op, t, *[int(x[i]) for x in xs]) for i in range(len(got))]
    assert got == want


def test_int_division_semantics():
    lo = -(2**31)
    a = torch.tensor([7, -7, 7, -7, lo, 5, -5, 0, lo], dtype=torch.int32)
    b = torch.tensor([2, 2, -2, -2, -1, 0, 0, 0, 1], dtype=torch.int32)
    assert run_map(Op.IDIV, "i32", [a, b]).tolist() == [3, -3, -3, 3, lo, 0, 0, 0, lo]
    assert run_map(Op.MOD, "i32", [a, b]).tolist() == [1, -1, 1, -1, 0, 0, 0, 0, 0]
    fa, fb = torch.tensor([-7.5, 7.5, -0.0]), torch.tensor([2.0, -2.0, 1.0])
    np.testing.assert_array_equal(run_map(Op.MOD, "f32", [fa, fb]).numpy(), [-1.5, 1.5, -0.0])


def test_shifts_take_count_modulo_width_and_shr_follows_signedness():
    a = torch.tensor([1, -16, -16, 1], dtype=torch.int32)
    n = torch.tensor([33, 2, 34, -1], dtype=torch.int32)
    assert run_map(Op.SHL, "i32", [a, n]).tolist() == [2, -64, -64, -(2**31)]
    assert run_map(Op.SHR, "i32", [a, n]).tolist() == [0, -4, -4, 0]
    u = torch.tensor([2**32 - 16], dtype=torch.uint32)
    assert run_map(Op.SHR, "u32", [u, torch.tensor([2], dtype=torch.uint32)]).tolist() == [
        2**30 - 4
    ]


@pytest.mark.parametrize(
    "op, want",
    [(Op.NOT, [1, 1, 0, 0]), (Op.AND, [0, 0, 0, 1]), (Op.OR, [0, 1, 1, 1]),
     (Op.XOR, [0, 1, 1, 0]), (Op.ADD, [0, 1, 1, 0]), (Op.MUL, [0, 0, 0, 1]),
     (Op.MAXIMUM, [0, 1, 1, 1]), (Op.MINIMUM, [0, 0, 0, 1]), (Op.NEG, [0, 0, 1, 1])],
    ids=str,
)  # fmt: skip
def test_i1_is_a_one_bit_unsigned_integer(op, want):
    a, b = torch.tensor([0, 0, 1, 1]).bool(), torch.tensor([0, 1, 0, 1]).bool()
    args = [a] if op in (Op.NOT, Op.NEG) else [a, b]
    assert run_map(op, "i1", args).int().tolist() == want


# -- casts ----------------------------------------------------------------------------

CAST_FROM_FLOAT = [(s, d) for s in FLOATS for d in FLOATS + ["i8", "i32", "i64", "u8", "i1"]]
CAST_FROM_INT = [(s, d) for s in ["i8", "i32", "i64", "u8", "u32", "i1"] for d in FLOATS + INTS]


@pytest.mark.parametrize("src, dst", CAST_FROM_FLOAT + CAST_FROM_INT, ids=str)
def test_cast_matches_torch(src, dst):
    if src in FLOATS:
        if dst in FLOATS or dst == "i1":
            x = float_inputs(src, n=300, lo=-1e5, hi=1e5)
        else:  # in range for the integer type, no NaN (undefined)
            x = float_inputs(
                src, n=300, lo=0 if dst == "u8" else -100, hi=250 if dst == "u8" else 100
            )
            x = x[torch.isfinite(x) & (x >= (0 if dst == "u8" else -100))]
    else:
        x = int_inputs(src, 150) if src != "i1" else torch.tensor([0, 1, 1, 0]).bool()
    got = run_map(Op.CAST, src, [x], dst)
    want = x.to(TORCH[dst])
    if dst in FLOATS:
        assert_same_floats(got, want)
    else:
        assert got.tolist() == want.tolist()


def test_f64_to_half_rounds_through_f32_like_torch():
    # Direct rounding would go up; through f32 the 2**-40 is lost first and the tie goes even.
    x = torch.tensor([1 + 2**-11 + 2**-40, 1 + 2**-8 + 2**-40], dtype=torch.float64)
    assert run_map(Op.CAST, "f64", [x], "f16").tolist()[0] == 1.0 == x.half()[0].item()
    assert run_map(Op.CAST, "f64", [x], "bf16").tolist()[1] == 1.0 == x.bfloat16()[1].item()


def test_scalar_pointer_masked_load_and_constants():
    """A scalar load with a false mask never reads; constants round like casts."""

    def body(b, x, out, i):
        mask = b.typed(Op.LT, i, b.const(1, i64))
        far = b.typed(Op.ADDPTR, x, i)
        v = b.typed(Op.LOAD, far, mask, b.const(2.5, SCALARS["f16"]))
        tiny = b.const(1 + 2**-11 + 2**-40, SCALARS["f16"])
        b.typed(Op.STORE, b.typed(Op.ADDPTR, out, b.const(0, i32)), b.typed(Op.ADD, v, tiny))

    params = [tensor("x", "f16"), tensor("out", "f16"), scalar("i", "i64")]
    module = build("scalar_ptr", params, body)
    out = np.zeros(1, np.float16)
    launch(module, np.array([4.0], np.float16), out, 10**9)
    assert out[0] == np.float16(3.5)
    launch(module, np.array([4.0], np.float16), out, 0)
    assert out[0] == np.float16(5.0)


# -- structure ops --------------------------------------------------------------------


def test_outer_sum_with_expand_dims_broadcast_reshape_where():
    m, n = 3, 5

    def body(b, x, y, out):
        xv = b.typed(Op.EXPAND_DIMS, load(b, x, arange(b, m)), axis=1)  # [m, 1]
        yv = b.typed(Op.EXPAND_DIMS, load(b, y, arange(b, n)), axis=0)  # [1, n]
        shp = BlockType(f32, (m, n))
        s = b.typed(Op.ADD, b.typed(Op.BROADCAST, xv, declared=shp),
                    b.typed(Op.BROADCAST, yv, declared=shp))  # fmt: skip
        flat = b.typed(Op.RESHAPE, s, declared=BlockType(f32, (m * n,)))
        off = arange(b, m * n)
        # reversed pointers for odd lanes through a WHERE between pointers
        odd = b.typed(Op.EQ, b.typed(Op.AND, off, b.splat(b.const(1, i32), (m * n,))),
                      b.splat(b.const(1, i32), (m * n,)))  # fmt: skip
        rev = b.typed(Op.SUB, b.splat(b.const(m * n - 1, i32), (m * n,)), off)
        ptrs = b.typed(Op.WHERE, odd, addptr(b, out, rev), addptr(b, out, off))
        b.typed(Op.STORE, ptrs, flat, b.typed(Op.NOT, odd))
        b.typed(Op.STORE, addptr(b, out, rev), flat, odd)

    module = build("outer", [tensor("x", "f32"), tensor("y", "f32"), tensor("out", "f32")], body)
    x, y = RNG.random(m, dtype=np.float32), RNG.random(n, dtype=np.float32)
    out = np.zeros(m * n, np.float32)
    launch(module, x, y, out)
    want = (x[:, None] + y[None, :]).reshape(-1)
    even = np.arange(m * n) % 2 == 0
    np.testing.assert_array_equal(out[even], want[even])
    np.testing.assert_array_equal(out[::-1][~even], want[~even])


def strided_copy_kernel(rows: int, cols: int, t: str = "f32") -> Module:
    """out[r, c] = x[r, c] for 2-D tensors of any strides, addressed with DIM/STRIDE."""

    def offsets(b, p):
        r = b.typed(Op.EXPAND_DIMS, b.cast(arange(b, rows), BlockType(i64, (rows,))), axis=1)
        c = b.typed(Op.EXPAND_DIMS, b.cast(arange(b, cols), BlockType(i64, (cols,))), axis=0)
        shp = BlockType(i64, (rows, cols))
        rs = b.typed(Op.MUL, b.typed(Op.BROADCAST, r, declared=shp),
                     b.splat(b.typed(Op.STRIDE, p, axis=0), (rows, cols)))  # fmt: skip
        cs = b.typed(Op.MUL, b.typed(Op.BROADCAST, c, declared=shp),
                     b.splat(b.typed(Op.STRIDE, p, axis=1), (rows, cols)))  # fmt: skip
        mask_r = b.typed(Op.LT, b.typed(Op.BROADCAST, r, declared=shp),
                         b.splat(b.typed(Op.DIM, p, axis=0), (rows, cols)))  # fmt: skip
        mask_c = b.typed(Op.LT, b.typed(Op.BROADCAST, c, declared=shp),
                         b.splat(b.typed(Op.DIM, p, axis=1), (rows, cols)))  # fmt: skip
        return b.typed(Op.ADD, rs, cs), b.typed(Op.AND, mask_r, mask_c)

    def body(b, x, out):
        xo, xm = offsets(b, x)
        oo, om = offsets(b, out)
        b.typed(Op.STORE, addptr(b, out, oo), load(b, x, xo, xm), om)

    return build("copy2d", [tensor("x", t, 2), tensor("out", t, 2)], body)


def test_transposed_view_read_and_strided_store_in_place():
    base = RNG.random((5, 7), dtype=np.float32)
    x = base.T  # 7 x 5, strides (1, 7): not contiguous
    big = np.zeros((7, 10), np.float32)
    out = big[:, ::2]  # 7 x 5, strides (10, 2): stores must land in ``big``
    launch(strided_copy_kernel(8, 6), x, out)  # blocks larger than the tensors, masked
    np.testing.assert_array_equal(out, x)
    assert (big[:, 1::2] == 0).all()


def test_bf16_stores_land_in_a_strided_torch_tensor():
    x = torch.randn(5, 7).bfloat16().T
    big = torch.zeros(7, 10, dtype=torch.bfloat16)
    out = big[:, ::2]

    def bits(t):  # a uint16 view sharing the torch tensor's memory
        return t.view(torch.int16).numpy().view(np.uint16)

    launch(strided_copy_kernel(7, 5, "bf16"), bits(x), bits(out))
    assert torch.equal(out, x)
    assert not big[:, 1::2].any()


# -- bf16 / f16 tensors ---------------------------------------------------------------


def test_bf16_tensor_bits_round_trip_through_load_and_store():
    bits = RNG.integers(0, 2**16, 512, dtype=np.uint16)
    x = from_storage(bits, "bf16")
    got = run_map(Op.NEG, "bf16", [x])
    want = -x
    nan = torch.isnan(want).numpy()
    np.testing.assert_array_equal(bits16(got)[~nan], bits16(want)[~nan])
    assert torch.isnan(got).numpy()[nan].all()


# -- control flow ---------------------------------------------------------------------


def test_for_with_loop_carried_block_and_pointer():
    """out[j] = sum_k x[k, j], iterating k with a carried accumulator and pointer."""
    k_iters, n = 6, 8

    def body(b, x, out):
        acc0 = b.splat(b.const(0.0, f32), (n,))
        ptr0 = addptr(b, x, arange(b, n))
        lo, hi, step = b.const(0, i32), b.const(k_iters, i32), b.const(1, i32)
        iv, acc, ptr = b.open_block((i32, acc0.type, ptr0.type))
        nxt = b.typed(Op.ADD, acc, b.typed(Op.LOAD, ptr))
        ivf = b.cast(iv, f32)  # also add the induction variable: checks iv's values
        nxt = b.typed(Op.ADD, nxt, b.splat(ivf, (n,)))
        ptr_next = b.typed(Op.ADDPTR, ptr, b.splat(b.const(n, i32), (n,)))
        b.yield_(nxt, ptr_next)
        region = b.close_block()
        loop = b.emit(Op.FOR, (lo, hi, step, acc0, ptr0), (acc0.type, ptr0.type), regions=(region,))
        store(b, out, arange(b, n), loop.results[0])

    module = build("forsum", [tensor("x", "f32", 2), tensor("out", "f32")], body)
    x = RNG.random((k_iters, n), dtype=np.float32)
    out = np.zeros(n, np.float32)
    launch(module, x, out)
    want = np.zeros(n, np.float32)
    for k in range(k_iters):
        want = want + x[k] + np.float32(k)
    np.testing.assert_array_equal(out, want)


def test_if_with_results_and_program_order():
    """Each program records its rank in the launch order, through a counter in memory;
    even programs store it, odd ones store its negation (an IF with a result)."""

    def body(b, counter, out):
        zero = b.const(0, i64)
        cptr = b.typed(Op.ADDPTR, counter, zero)
        rank = b.typed(Op.LOAD, cptr)
        b.typed(Op.STORE, cptr, b.typed(Op.ADD, rank, b.const(1, i32)))
        p0, p1, p2 = (b.typed(Op.PROGRAM_ID, axis=a) for a in range(3))
        g0, g1 = (b.typed(Op.NUM_PROGRAMS, axis=a) for a in range(2))
        linear = b.typed(Op.ADD, p0, b.typed(Op.MUL, g0, b.typed(Op.ADD, p1,
                         b.typed(Op.MUL, g1, p2))))  # fmt: skip
        even = b.typed(Op.EQ, b.typed(Op.MOD, linear, b.const(2, i32)), b.const(0, i32))
        b.open_block()
        b.yield_(rank)
        then = b.close_block()
        b.open_block()
        b.yield_(b.typed(Op.NEG, rank))
        other = b.close_block()
        chosen = b.emit(Op.IF, (even,), (i32,), regions=(then, other)).result
        b.typed(Op.STORE, b.typed(Op.ADDPTR, out, linear), chosen)

    module = build("order", [tensor("counter", "i32"), tensor("out", "i32")], body)
    counter, out = np.zeros(1, np.int32), np.zeros(24, np.int32)
    launch(module, counter, out, grid=(2, 3, 4))
    want = np.arange(24)
    np.testing.assert_array_equal(out, np.where(want % 2 == 0, want, -want))
    assert counter[0] == 24


def test_while_loop():
    """out[pid] = number of doublings of 1 needed to reach at least x[pid]."""

    def body(b, x, out):
        pid = b.typed(Op.PROGRAM_ID, axis=0)
        limit = b.typed(Op.LOAD, b.typed(Op.ADDPTR, x, pid))
        one, zero = b.const(1, i32), b.const(0, i32)
        v, count = b.open_block((i32, i32))
        b.emit(Op.CONDITION, (b.typed(Op.LT, v, limit), v, count))
        before = b.close_block()
        v2, count2 = b.open_block((i32, i32))
        b.yield_(b.typed(Op.MUL, v2, b.const(2, i32)), b.typed(Op.ADD, count2, one))
        after = b.close_block()
        loop = b.emit(Op.WHILE, (one, zero), (i32, i32), regions=(before, after))
        b.typed(Op.STORE, b.typed(Op.ADDPTR, out, pid), loop.results[1])

    module = build("doublings", [tensor("x", "i32"), tensor("out", "i32")], body)
    x = np.array([1, 2, 3, 100, 1024, 0], np.int32)
    out = np.full(6, -1, np.int32)
    launch(module, x, out, grid=(6, 1, 1))
    np.testing.assert_array_equal(out, [0, 1, 2, 7, 10, 0])


def test_for_with_zero_step_raises():
    def body(b, out):
        zero, four = b.const(0, i32), b.const(4, i32)
        b.open_block((i32,))
        b.yield_()
        b.emit(Op.FOR, (zero, four, zero), (), regions=(b.close_block(),))

    with pytest.raises(KernelRuntimeError, match="step 0"):
        launch(build("zero_step", [tensor("out", "f32")], body), np.zeros(1, np.float32))


# -- scalars, errors ----------------------------------------------------------------


def test_scalar_arguments_from_int_and_float_slots():
    """out[i] = x[i] * alpha + k, with k an i32 slot holding a value that wraps."""

    def body(b, x, alpha, k, out):
        off = arange(b, 4)
        scaled = b.typed(Op.MUL, load(b, x, off), b.splat(alpha, (4,)))
        store(b, out, off, b.typed(Op.ADD, scaled, b.splat(b.cast(k, f32), (4,))))

    params = [tensor("x", "f32"), scalar("alpha", "f32"), scalar("k", "i32"), tensor("out", "f32")]
    module = build("axpb", params, body)
    x, out = np.arange(4, dtype=np.float32), np.zeros(4, np.float32)
    launch(module, x, 0.1, 2**32 + 3, out)
    np.testing.assert_array_equal(out, x * np.float32(0.1) + np.float32(3))


def test_missing_rule_names_the_op(monkeypatch):
    monkeypatch.delitem(RULES, Op.SIN)
    with pytest.raises(NotImplementedError, match="interpreter: no rule for sin"):
        run_map(Op.SIN, "f32", [torch.zeros(4)])


def test_wrong_slot_count_is_rejected():
    module = add_kernel(4)
    with pytest.raises(ValueError, match="slots"):
        interpreter.run(module, [None] * 4, [0, 1, 1], [], (1, 1, 1))


def test_i1_result_of_compare_feeds_where():
    def body(b, x, out):
        off = arange(b, 5)
        v = load(b, x, off)
        pos = b.typed(Op.GT, v, b.splat(b.const(0, i32), (5,)))
        assert pos.type.elem == i1
        store(b, out, off, b.typed(Op.WHERE, pos, v, b.typed(Op.NEG, v)))

    module = build("absval", [tensor("x", "i32"), tensor("out", "i32")], body)
    out = np.zeros(5, np.int32)
    launch(module, np.array([-2, 3, 0, -5, 7], np.int32), out)
    np.testing.assert_array_equal(out, [2, 3, 0, 5, 7])
