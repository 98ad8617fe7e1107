"""The pass pipeline: each rewrite with a case that fires and one that must not.

IR is written in its textual form; a pass's output is compared with the
expected text after both are printed (so value numbering does not matter).
Constant folding is checked against numpy/torch and against the reference
interpreter running the unfolded IR.
"""

from __future__ import annotations

import math
import struct
import textwrap

import numpy as np
import pytest
import torch

from pypto_jit.ir import Builder, Module, Op, Param
from pypto_jit.ir.parser import parse_module
from pypto_jit.ir.printer import print_module
from pypto_jit.ir.types import BlockType, PtrType, ScalarType, f32, i1, i32
from pypto_jit.ir.verifier import verify
from pypto_jit.passes import (
    PIPELINE,
    PipelineError,
    canonicalize,
    cse,
    dce,
    mask_simplify,
    run_pipeline,
)

HEAD = """kernel @k(
  %x: ptr<f32> tensor(shape=[256], strides=[1]),
  %out: ptr<f32> tensor(shape=[256], strides=[1]),
  %n: i32 scalar,
  %f: f32 scalar,
  %c: i1 scalar
) {
"""


def ir(body: str) -> Module:
    m = parse_module(HEAD + textwrap.dedent(body).strip() + "\n}\n")
    verify(m)
    return m


def check(run, before: str, after: str) -> Module:
    """``run(before)`` verifies and prints exactly as ``after``."""
    out = run(ir(before))
    verify(out)
    assert print_module(out) == print_module(ir(after))
    return out


def unchanged(run, body: str) -> None:
    check(run, body, body)


def op_names(m: Module) -> list[str]:
    return [str(o.op) for o in m.walk()]


# -- constant folding ---------------------------------------------------------------------------
def fold(op: Op, t: ScalarType, *values, to: ScalarType | None = None):
    """What canonicalize makes of ``op`` over CONSTs: the folded value, or None if kept."""
    b = Builder()
    b.open_block()
    args = [b.const(v, t) for v in values]
    r = b.typed(op, *args, declared=to)
    out = canonicalize(Module("k", (), b.close_block()))
    verify(out)
    (d,) = [o for o in out.walk() if r in o.results]
    return d.attr("value") if d.op is Op.CONST else None


INT_TYPES = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
INT_OPS = {
    Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.AND: np.bitwise_and,
    Op.OR: np.bitwise_or, Op.XOR: np.bitwise_xor, Op.MAXIMUM: np.maximum,
    Op.MINIMUM: np.minimum,
}  # fmt: skip


def _int_samples(dt: np.dtype, rng: np.random.Generator, n: int) -> np.ndarray:
    info = np.iinfo(dt)
    edges = np.array([info.min, info.max, 0, 1, info.max // 2], dtype=dt)
    return np.concatenate([edges, rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)])


@pytest.mark.parametrize("tname", INT_TYPES)
@pytest.mark.parametrize("op", list(INT_OPS), ids=str)
def test_int_folding_wraps_like_numpy(op, tname):
    t = ScalarType(tname)
    rng = np.random.default_rng(0)
    a, b = _int_samples(t.np_dtype, rng, 12), _int_samples(t.np_dtype, rng, 12)[::-1]
    with np.errstate(all="ignore"):
        want = INT_OPS[op](a, b)
    for x, y, w in zip(a, b, want, strict=True):
        assert fold(op, t, int(x), int(y)) == int(w), (op, t, x, y)


@pytest.mark.parametrize("tname", ["i8", "i32", "i64", "u16", "u64"])
def test_int_division_truncates_and_shifts_wrap(tname):
    t = ScalarType(tname)
    rng = np.random.default_rng(1)
    a = _int_samples(t.np_dtype, rng, 10)
    b = _int_samples(t.np_dtype, rng, 10)[::-1]
    b = np.where(b == 0, 3, b).astype(t.np_dtype)
    with np.errstate(all="ignore"):
        rem = np.fmod(a, b)  # C remainder: the sign of the dividend
        quo = (a - rem) // b  # exact: a - rem is a multiple of b
    for x, y, q, r in zip(a, b, quo, rem, strict=True):
        assert fold(Op.IDIV, t, int(x), int(y)) == int(q)
        assert fold(Op.MOD, t, int(x), int(y)) == int(r)
    for count in (0, 3, t.bits - 1, t.bits, t.bits + 5):
        x = int(a[-1])
        shl = np.left_shift(a[-1:], count % t.bits)[0]
        shr = np.right_shift(a[-1:], count % t.bits)[0]
        assert fold(Op.SHL, t, x, count) == int(shl)
        assert fold(Op.SHR, t, x, count) == int(shr)  # arithmetic iff signed, as numpy


def test_int_folding_edge_cases():
    assert fold(Op.IDIV, i32, -7, 2) == -3 and fold(Op.MOD, i32, -7, 2) == -1
    assert fold(Op.IDIV, i32, 7, -2) == -3 and fold(Op.MOD, i32, 7, -2) == 1
    assert fold(Op.IDIV, i32, -(2**31), -1) == -(2**31)
    assert fold(Op.MOD, i32, -(2**31), -1) == 0
    assert fold(Op.SHR, i32, -8, 1) == -4
    assert fold(Op.SHR, ScalarType("u32"), 2**32 - 8, 1) == 2**31 - 4
    assert fold(Op.NEG, i32, -(2**31)) == -(2**31)
    assert fold(Op.ABS, ScalarType("i8"), -128) == -128
    assert fold(Op.NOT, ScalarType("u8"), 5) == 250
    assert fold(Op.NOT, i1, True) is False
    assert fold(Op.AND, i1, True, False) is False
    assert fold(Op.LT, ScalarType("u32"), 1, 2**32 - 1) is True
    assert fold(Op.LT, i32, 1, -1) is False


def test_int_folding_refusals():
    # Division by zero is defined at run time (0); it is not folded here.
    assert fold(Op.IDIV, i32, 5, 0) is None
    assert fold(Op.MOD, ScalarType("u8"), 5, 0) is None
    # i1 arithmetic has no agreed meaning.
    assert fold(Op.ADD, i1, True, True) is None
    assert fold(Op.MUL, i1, True, True) is None


F32_OPS = {Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.divide}
SPECIALS = [0.0, -0.0, 1.0, -1.5, math.inf, -math.inf, 3.4e38, 1e-45, 65504.0]


def _bits(x: float, tname: str) -> int:
    if tname == "f16":
        return int(np.array(x, np.float16).view(np.uint16))
    if tname == "bf16":
        return struct.unpack("<I", struct.pack("<f", x))[0] >> 16
    if tname == "f32":
        return struct.unpack("<I", struct.pack("<f", x))[0]
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _float_samples(tname: str) -> list[float]:
    rng = np.random.default_rng(2)
    xs = list(rng.standard_normal(10) * 10.0 ** rng.integers(-3, 4, 10)) + SPECIALS
    if tname == "bf16":
        return [float(v) for v in torch.tensor(xs, dtype=torch.float32).bfloat16().float()]
    dt = {"f16": np.float16, "f32": np.float32, "f64": np.float64}[tname]
    with np.errstate(all="ignore"):
        return [float(dt(v)) for v in xs]


def _float_reference(op: Op, tname: str, a: float, b: float) -> float:
    if tname == "bf16":  # torch computes bf16 in f32 and rounds to nearest even
        x, y = (torch.tensor([v], dtype=torch.bfloat16) for v in (a, b))
        return float({Op.ADD: x + y, Op.SUB: x - y, Op.MUL: x * y, Op.DIV: x / y}[op].float())
    dt = {"f16": np.float16, "f32": np.float32, "f64": np.float64}[tname]
    with np.errstate(all="ignore"):
        return float(F32_OPS[op](dt(a), dt(b)))


@pytest.mark.parametrize("tname", ["f16", "bf16", "f32", "f64"])
@pytest.mark.parametrize("op", list(F32_OPS), ids=str)
def test_float_folding_rounds_in_the_type(op, tname):
    t = ScalarType(tname)
    xs = _float_samples(tname)
    folded = 0
    for a, b in zip(xs, xs[::-1], strict=True):
        want = _float_reference(op, tname, a, b)
        got = fold(op, t, a, b)
        if math.isnan(want):
            assert got is None  # NaN results are left to the run time
            continue
        folded += 1
        assert got is not None and _bits(got, tname) == _bits(want, tname), (op, a, b, got, want)
    assert folded > len(xs) // 2


def test_float_nan_semantics():
    nan = math.nan
    assert fold(Op.EQ, f32, nan, nan) is False
    assert fold(Op.NE, f32, nan, nan) is True
    assert fold(Op.LT, f32, nan, 1.0) is False
    assert fold(Op.GE, f32, 1.0, nan) is False
    assert fold(Op.EQ, f32, 0.0, -0.0) is True
    assert fold(Op.MAXIMUM, f32, nan, 1.0) is None  # NaN results are not folded
    assert fold(Op.MAXIMUM, f32, 1.0, nan) is None
    assert fold(Op.DIV, f32, 0.0, 0.0) is None
    assert fold(Op.SUB, f32, math.inf, math.inf) is None
    assert fold(Op.MAXIMUM, f32, -0.0, 0.0) is None  # fmax's choice on signed zeros
    assert fold(Op.MAXIMUM, f32, -2.0, 1.5) == 1.5
    assert fold(Op.DIV, f32, 1.0, -0.0) == -math.inf
    assert fold(Op.EXP, f32, 1.0) is None  # libm's rounding is not ours
    assert fold(Op.SQRT, f32, 4.0) is None
    assert math.copysign(1, fold(Op.CEIL, f32, -0.5)) == -1  # ceil(-0.5) is -0.0
    assert fold(Op.FLOOR, f32, -0.5) == -1.0
    assert fold(Op.MOD, f32, -7.5, 2.0) == -1.5
    assert fold(Op.MOD, f32, 1.0, 0.0) is None


def test_cast_folding():
    f16, bf16, i8, u8, i64 = (ScalarType(n) for n in ("f16", "bf16", "i8", "u8", "i64"))
    assert fold(Op.CAST, f32, -2.7, to=i32) == -2
    assert fold(Op.CAST, f32, 2.7, to=i32) == 2
    assert fold(Op.CAST, f32, 3e9, to=i32) is None  # out of range: undefined, not folded
    assert fold(Op.CAST, f32, math.inf, to=i32) is None
    assert fold(Op.CAST, i32, 300, to=i8) == 44
    assert fold(Op.CAST, i32, -1, to=u8) == 255
    assert fold(Op.CAST, i32, 7, to=i1) is True
    assert fold(Op.CAST, f32, -0.0, to=i1) is False
    assert fold(Op.CAST, f32, math.nan, to=i1) is True
    assert fold(Op.CAST, i1, True, to=f32) == 1.0
    assert fold(Op.CAST, i64, 2**24 + 1, to=f32) == float(np.float32(2**24 + 1))
    assert fold(Op.CAST, i64, 2**60 + 1, to=f32) is None  # would round twice here
    assert fold(Op.CAST, i32, 2049, to=f16) is None  # not exact in f16: path-dependent
    assert fold(Op.CAST, i32, 2048, to=f16) == 2048.0
    x = 1.0 + 2.0**-11 + 2.0**-20  # rounds up to f16 (just above half an ulp)
    assert fold(Op.CAST, f32, float(np.float32(x)), to=f16) == float(np.float16(np.float32(x)))
    y = float(np.float32(1.0 + 2.0**-8 + 2.0**-9))  # bf16: round to nearest even
    want = float(torch.tensor([y]).bfloat16().float())
    assert fold(Op.CAST, f32, y, to=bf16) == want
    assert fold(Op.CAST, f32, 1.0 + 2.0**-8, to=bf16) == 1.0  # a tie goes to even
    assert fold(Op.CAST, f32, math.nan, to=f16) is None


# -- folding agrees with the reference interpreter ------------------------------------------------
_STORAGE = {"bf16": np.uint16}


def _run_scalar_kernel(m: Module, t: ScalarType) -> np.ndarray:
    interpreter = pytest.importorskip("pypto_jit.interpreter")
    out = np.zeros(1, dtype=_STORAGE.get(t.name, t.np_dtype))
    interpreter.run(m, [out], [0, 1, 1], [], (1, 1, 1))
    return out.view(np.uint8)


def _scalar_kernel(op: Op, t: ScalarType, values, to: ScalarType | None) -> Module:
    res_t = to or (i1 if op in (Op.LT, Op.EQ, Op.NE) else t)
    b = Builder()
    (out,) = b.open_block((PtrType(res_t),))
    r = b.typed(op, *[b.const(v, t) for v in values], declared=to)
    b.typed(Op.STORE, out, r)
    p = Param("out", "tensor", PtrType(res_t), (1,), (1,))
    return Module("k", (p,), b.close_block())


INTERP_CASES = [
    (Op.ADD, "i8", (100, 100), None), (Op.MUL, "i32", (2**20, 2**15), None),
    (Op.IDIV, "i32", (-7, 2), None), (Op.MOD, "i64", (-7, 3), None),
    (Op.SHR, "i16", (-300, 3), None), (Op.SHL, "u8", (3, 9), None),
    (Op.ADD, "f16", (1000.0, 0.1875), None), (Op.MUL, "bf16", (1.0078125, 3.0), None),
    (Op.DIV, "f32", (1.0, 3.0), None), (Op.SUB, "f64", (0.1, 0.3), None),
    (Op.LT, "f32", (math.nan, 1.0), None), (Op.NE, "f32", (math.nan, math.nan), None),
    (Op.EQ, "u16", (65535, 65535), None),
    (Op.CAST, "f32", (-3.75,), "i32"), (Op.CAST, "f32", (1.0009765625,), "f16"),
    (Op.CAST, "f32", (1.00390625,), "bf16"), (Op.CAST, "i32", (300,), "i8"),
]  # fmt: skip


@pytest.mark.parametrize("op,tname,values,to", INTERP_CASES)
def test_folding_agrees_with_interpreter(op, tname, values, to):
    t, to_t = ScalarType(tname), ScalarType(to) if to else None
    m = _scalar_kernel(op, t, values, to_t)
    folded = canonicalize(m)
    verify(folded)
    assert op not in {o.op for o in folded.walk()}, "expected this case to fold"
    res_t = m.params[0].type.elem
    assert (_run_scalar_kernel(folded, res_t) == _run_scalar_kernel(m, res_t)).all()


# -- canonicalize: identities and structure --------------------------------------------------------
def test_int_identities_fold():
    check(
        canonicalize,
        """
        %z = const {value=0} : i32
        %one = const {value=1} : i32
        %m1 = const {value=-1} : i32
        %a = add %n, %z
        %b = add %z, %a
        %cm = mul %b, %one
        %d = sub %cm, %z
        %e = or %d, %z
        %g = and %m1, %e
        %h = shl %g, %z
        %zero = mul %h, %z
        %s = add %h, %zero
        %p = splat %s : block<i32,[4]>
        %ps = splat %n : block<i32,[4]>
        %q = add %p, %ps
        """,
        """
        %z = const {value=0} : i32
        %one = const {value=1} : i32
        %m1 = const {value=-1} : i32
        %p = splat %n : block<i32,[4]>
        %ps = splat %n : block<i32,[4]>
        %0 = add %n, %n
        %q = splat %0 : block<i32,[4]>
        """,
    )


def test_int_mul_by_zero_is_the_zero_operand():
    check(
        canonicalize,
        """
        %z = const {value=0} : i32
        %zs = splat %z : block<i32,[4]>
        %a = arange {start=0, end=4} : block<i32,[4]>
        %b = mul %a, %zs
        %p = splat %x : block<ptr<f32>,[4]>
        %q = addptr %p, %b
        """,
        """
        %z = const {value=0} : i32
        %zs = splat %z : block<i32,[4]>
        %a = arange {start=0, end=4} : block<i32,[4]>
        %p = splat %x : block<ptr<f32>,[4]>
        %q = addptr %p, %zs
        """,
    )


def test_float_identities_only_where_exact():
    # x + 0.0 turns -0.0 into +0.0 and x * 0.0 is NaN for inf: neither folds.
    unchanged(
        canonicalize,
        """
        %z = const {value=0.0} : f32
        %a = add %f, %z
        %b = mul %f, %z
        %nz = const {value=-0.0} : f32
        %cc = sub %f, %nz
        %two = const {value=2.0} : f32
        %d = div %f, %two
        """,
    )
    check(
        canonicalize,
        """
        %z = const {value=0.0} : f32
        %nz = const {value=-0.0} : f32
        %one = const {value=1.0} : f32
        %a = add %f, %nz
        %b = sub %a, %z
        %cm = mul %one, %b
        %d = div %cm, %one
        %e = neg %d
        """,
        """
        %z = const {value=0.0} : f32
        %nz = const {value=-0.0} : f32
        %one = const {value=1.0} : f32
        %e = neg %f
        """,
    )


def test_where_cast_and_structure_identities():
    check(
        canonicalize,
        """
        %t = const {value=true} : i1
        %w = where %t, %n, %n
        %v = where %c, %w, %w
        %k = cast %v : i32
        %ts = splat %t : block<i1,[2,4]>
        %a = arange {start=0, end=4} : block<i32,[4]>
        %a2 = expand_dims %a {axis=0} : block<i32,[1,4]>
        %b = broadcast %a2 : block<i32,[2,4]>
        %b2 = broadcast %b : block<i32,[2,4]>
        %ks = splat %k : block<i32,[2,4]>
        %r = where %ts, %b2, %ks
        %ns = splat %n : block<i32,[4]>
        %ne = expand_dims %ns {axis=1} : block<i32,[4,1]>
        %nb = broadcast %ne : block<i32,[4,4]>
        %nr = reshape %nb : block<i32,[16]>
        """,
        """
        %t = const {value=true} : i1
        %ts = splat %t : block<i1,[2,4]>
        %a = arange {start=0, end=4} : block<i32,[4]>
        %a2 = expand_dims %a {axis=0} : block<i32,[1,4]>
        %b = broadcast %a2 : block<i32,[2,4]>
        %ks = splat %n : block<i32,[2,4]>
        %ns = splat %n : block<i32,[4]>
        %ne = splat %n : block<i32,[4,1]>
        %nb = splat %n : block<i32,[4,4]>
        %nr = splat %n : block<i32,[16]>
        """,
    )


def test_elementwise_over_splats_becomes_scalar_and_folds():
    check(
        canonicalize,
        """
        %a = const {value=3} : i32
        %b = const {value=4} : i32
        %sa = splat %a : block<i32,[8]>
        %sb = splat %b : block<i32,[8]>
        %s = mul %sa, %sb
        %sn = splat %n : block<i32,[8]>
        %lt = lt %sn, %s
        %fs = splat %f : block<f32,[8]>
        %e = exp %fs
        """,
        """
        %a = const {value=3} : i32
        %b = const {value=4} : i32
        %sa = splat %a : block<i32,[8]>
        %sb = splat %b : block<i32,[8]>
        %0 = const {value=12} : i32
        %s = splat %0 : block<i32,[8]>
        %sn = splat %n : block<i32,[8]>
        %1 = lt %n, %0
        %lt = splat %1 : block<i1,[8]>
        %fs = splat %f : block<f32,[8]>
        %2 = exp %f
        %e = splat %2 : block<f32,[8]>
        """,
    )


def test_splat_of_const_stays_a_splat_and_mixed_ops_stay():
    unchanged(
        canonicalize,
        """
        %a = const {value=3} : i32
        %sa = splat %a : block<i32,[8]>
        %r = arange {start=0, end=8} : block<i32,[8]>
        %s = add %r, %sa
        %z = const {value=0} : i32
        %q = idiv %a, %z
        %m = mod %n, %z
        """,
    )


def test_zero_trip_for_becomes_its_inits():
    check(
        canonicalize,
        """
        %lo = const {value=5} : i32
        %one = const {value=1} : i32
        %r = for %lo, %lo, %one, %f {
        ^(%i: i32, %acc: f32):
          %a2 = add %acc, %acc
          yield %a2
        }
        %m1 = const {value=-1} : i32
        %z = const {value=0} : i32
        %r2 = for %z, %lo, %m1, %r {
        ^(%j: i32, %acc2: f32):
          yield %acc2
        }
        %s = neg %r2
        """,
        """
        %lo = const {value=5} : i32
        %one = const {value=1} : i32
        %m1 = const {value=-1} : i32
        %z = const {value=0} : i32
        %s = neg %f
        """,
    )


def test_for_with_iterations_or_unknown_bounds_stays():
    unchanged(
        canonicalize,
        """
        %lo = const {value=0} : i32
        %one = const {value=1} : i32
        %r = for %lo, %n, %one, %f {
        ^(%i: i32, %acc: f32):
          %a2 = add %acc, %acc
          yield %a2
        }
        %z = const {value=0} : i32
        %r2 = for %lo, %lo, %z, %r {
        ^(%j: i32, %acc2: f32):
          yield %acc2
        }
        %r3 = for %lo, %one, %one, %r2 {
        ^(%k: i32, %acc3: f32):
          yield %acc3
        }
        """,
    )


def test_if_with_constant_condition_is_inlined():
    check(
        canonicalize,
        """
        %t = const {value=false} : i1
        %r = if %t : f32 {
          %a = add %f, %f
          yield %a
        } else {
          %b = mul %f, %f
          store %x, %b
          yield %b
        }
        %r2 = if %c : f32 {
          yield %r
        } else {
          yield %f
        }
        """,
        """
        %t = const {value=false} : i1
        %b = mul %f, %f
        store %x, %b
        %r2 = if %c : f32 {
          yield %b
        } else {
          yield %f
        }
        """,
    )


# -- CSE ----------------------------------------------------------------------------------------
def test_cse_merges_pure_ops_and_sees_enclosing_blocks():
    check(
        cse,
        """
        %a = add %n, %n
        %b = add %n, %n
        %m = mul %a, %b
        %m2 = mul %b, %a
        %lo = const {value=0} : i32
        %one = const {value=1} : i32
        %r = for %lo, %n, %one, %m {
        ^(%i: i32, %acc: i32):
          %lo2 = const {value=0} : i32
          %inner = add %n, %n
          %s = add %acc, %inner
          %s2 = add %acc, %inner
          %t = add %s, %s2
          yield %t
        }
        %after = add %r, %lo
        """,
        """
        %a = add %n, %n
        %m = mul %a, %a
        %lo = const {value=0} : i32
        %one = const {value=1} : i32
        %r = for %lo, %n, %one, %m {
        ^(%i: i32, %acc: i32):
          %s = add %acc, %a
          %t = add %s, %s
          yield %t
        }
        %after = add %r, %lo
        """,
    )


def test_cse_does_not_leak_out_of_regions_nor_merge_memory_or_distinct_constants():
    unchanged(
        cse,
        """
        %r = if %c : i32 {
          %a = add %n, %n
          yield %a
        } else {
          %b = add %n, %n
          yield %b
        }
        %after = add %n, %n
        %l1 = load %x
        %l2 = load %x
        store %out, %l1
        store %out, %l1
        %z = const {value=0.0} : f32
        %nz = const {value=-0.0} : f32
        %s1 = sub %n, %after
        %s2 = sub %after, %n
        """,
    )


# -- DCE ----------------------------------------------------------------------------------------
def test_dce_removes_unused_pure_ops_loads_and_effect_free_control_flow():
    check(
        dce,
        """
        %a = add %n, %n
        %b = mul %a, %a
        %l = load %x
        %lo = const {value=0} : i32
        %one = const {value=1} : i32
        %r = for %lo, %n, %one, %f {
        ^(%i: i32, %acc: f32):
          %a2 = add %acc, %acc
          yield %a2
        }
        %q = if %c : f32 {
          yield %f
        } else {
          yield %l
        }
        %keep = add %f, %f
        store %out, %keep
        """,
        """
        %keep = add %f, %f
        store %out, %keep
        """,
    )


def test_dce_keeps_stores_and_control_flow_that_stores():
    body = """
        %lo = const {value=0} : i32
        %one = const {value=1} : i32
        %r = for %lo, %n, %one, %f {
        ^(%i: i32, %acc: f32):
          %unused = add %i, %i
          store %out, %acc
          yield %acc
        }
        if %c {
          store %x, %f
          yield
        } else {
          yield
        }
        """
    check(dce, body, body.replace("%unused = add %i, %i\n", ""))


# -- mask simplification ------------------------------------------------------------------------
MASKED = """
    %a = arange {{start={start}, end={end}}} : block<i32,[{size}]>
    %lim = const {{value={limit}}} : i32
    %ls = splat %lim : block<i32,[{size}]>
    %mask = lt %a, %ls
    %xs = splat %x : block<ptr<f32>,[{size}]>
    %xp = addptr %xs, %a
    %zero = const {{value=0.0}} : f32
    %other = splat %zero : block<f32,[{size}]>
    %v = load %xp, %mask, %other
    %os = splat %out : block<ptr<f32>,[{size}]>
    %op = addptr %os, %a
    store %op, %v, %mask
"""


def test_mask_proven_true_is_dropped():
    out = mask_simplify(ir(MASKED.format(start=0, end=256, size=256, limit=256)))
    verify(out)
    mem = [o for o in out.walk() if o.op in (Op.LOAD, Op.STORE)]
    assert [len(o.operands) for o in mem] == [1, 2]
    after = dce(canonicalize(out))
    assert "lt" not in op_names(after) and "where" not in op_names(after)


def test_mask_not_proven_stays():
    for start, end, limit in [(0, 256, 255), (1, 257, 256)]:
        unchanged(mask_simplify, MASKED.format(start=start, end=end, size=256, limit=limit))


def test_mask_proven_false_deletes_store_and_load_gives_other():
    out = dce(mask_simplify(ir(MASKED.format(start=0, end=16, size=16, limit=0))))
    verify(out)
    assert "load" not in op_names(out) and "store" not in op_names(out)
    check(
        mask_simplify,
        """
        %a = arange {start=4, end=8} : block<i32,[4]>
        %lim = const {value=2} : i32
        %ls = splat %lim : block<i32,[4]>
        %mask = le %a, %ls
        %xs = splat %x : block<ptr<f32>,[4]>
        %xp = addptr %xs, %a
        %v = load %xp, %mask
        %s = add %v, %v
        """,
        """
        %a = arange {start=4, end=8} : block<i32,[4]>
        %lim = const {value=2} : i32
        %ls = splat %lim : block<i32,[4]>
        %0 = const {value=false} : i1
        %mask = splat %0 : block<i1,[4]>
        %xs = splat %x : block<ptr<f32>,[4]>
        %xp = addptr %xs, %a
        %1 = const {value=0.0} : f32
        %v = splat %1 : block<f32,[4]>
        %s = add %v, %v
        """,
    )


def test_runtime_masks_stay():
    unchanged(
        mask_simplify,
        """
        %pid = program_id {axis=0} : i32
        %bs = const {value=256} : i32
        %base = mul %pid, %bs
        %sb = splat %base : block<i32,[256]>
        %a = arange {start=0, end=256} : block<i32,[256]>
        %offs = add %sb, %a
        %lim = const {value=1024} : i32
        %ls = splat %lim : block<i32,[256]>
        %mask = lt %offs, %ls
        %ns = splat %n : block<i32,[256]>
        %mask2 = lt %a, %ns
        %xs = splat %x : block<ptr<f32>,[256]>
        %xp = addptr %xs, %offs
        %v = load %xp, %mask
        %v2 = load %xp, %mask2
        """,
    )


def test_wrapping_arithmetic_is_not_trusted():
    # arange + (2^31 - 8) wraps to negative values in the upper lanes: `s < 0` is
    # not all-false and `s >= 2^31 - 8` not all-true, though unbounded ints say so.
    unchanged(
        mask_simplify,
        """
        %a = arange {start=0, end=16} : block<i32,[16]>
        %big = const {value=2147483640} : i32
        %bs = splat %big : block<i32,[16]>
        %s = add %a, %bs
        %z = const {value=0} : i32
        %zs = splat %z : block<i32,[16]>
        %mask = lt %s, %zs
        %mask2 = ge %s, %bs
        %xs = splat %x : block<ptr<f32>,[16]>
        %xp = addptr %xs, %a
        %v = load %xp, %mask
        store %xp, %v, %mask2
        """,
    )


LOOP = """
    %lo = const {{value=0}} : i32
    %hi = const {{value={upper}}} : i32
    %step = const {{value=64}} : i32
    %acc = for %lo, %hi, %step, %f {{
    ^(%k: i32, %s: f32):
      %ks = splat %k : block<i32,[64]>
      %a = arange {{start=0, end=64}} : block<i32,[64]>
      %offs = add %ks, %a
      %K = const {{value={bound}}} : i32
      %Ks = splat %K : block<i32,[64]>
      %mask = lt %offs, %Ks
      %xs = splat %x : block<ptr<f32>,[64]>
      %xp = addptr %xs, %offs
      %v = load %xp, %mask
      store %xp, %v, %mask
      yield %s
    }}
"""


def test_loop_whose_step_divides_the_bound_loses_its_masks():
    out = mask_simplify(ir(LOOP.format(upper=256, bound=256)))
    verify(out)
    assert [len(o.operands) for o in out.walk() if o.op in (Op.LOAD, Op.STORE)] == [1, 2]


def test_loop_masks_stay_when_the_last_tile_is_partial():
    unchanged(mask_simplify, LOOP.format(upper=250, bound=250))
    unchanged(mask_simplify, LOOP.format(upper=256, bound=255))


SCALAR_LOOP = """
    %lo = const {{value={lower}}} : i32
    %hi = const {{value={upper}}} : i32
    %step = const {{value={step}}} : i32
    %z = const {{value=0}} : i32
    for %lo, %hi, %step {{
    ^(%k: i32):
      %ok = ge %k, %z
      %p = addptr %x, %k
      %v = load %p, %ok
      yield
    }}
"""


@pytest.mark.parametrize(
    "lower,upper,step,dropped",
    [
        (0, 1024, 64, True),
        (255, -1, -1, True),  # counts down, stays at or above 0
        (255, -2, -1, False),  # reaches -1
        (-64, 1024, 64, False),
        # iv += 64 may wrap past INT_MAX to a negative value that is still < upper.
        (0, 2**31 - 1, 64, False),
        (0, 2**31 - 64, 64, True),
    ],
)
def test_induction_variable_range(lower, upper, step, dropped):
    text = SCALAR_LOOP.format(lower=lower, upper=upper, step=step)
    out = mask_simplify(ir(text))
    verify(out)
    (load,) = [o for o in out.walk() if o.op is Op.LOAD]
    assert (len(load.operands) == 1) == dropped


def test_two_dimensional_mask_of_proven_parts():
    out = mask_simplify(
        ir(
            """
            %r = arange {start=0, end=4} : block<i32,[4]>
            %c4 = const {value=4} : i32
            %c4s = splat %c4 : block<i32,[4]>
            %rm = lt %r, %c4s
            %rm2 = expand_dims %rm {axis=1} : block<i1,[4,1]>
            %rmb = broadcast %rm2 : block<i1,[4,8]>
            %col = arange {start=0, end=8} : block<i32,[8]>
            %c8 = const {value=8} : i32
            %c8s = splat %c8 : block<i32,[8]>
            %cm = lt %col, %c8s
            %cm2 = expand_dims %cm {axis=0} : block<i1,[1,8]>
            %cmb = broadcast %cm2 : block<i1,[4,8]>
            %mask = and %rmb, %cmb
            %xs = splat %x : block<ptr<f32>,[4,8]>
            %ri = expand_dims %r {axis=1} : block<i32,[4,1]>
            %rib = broadcast %ri : block<i32,[4,8]>
            %xp = addptr %xs, %rib
            %v = load %xp, %mask
            """
        )
    )
    verify(out)
    (load,) = [o for o in out.walk() if o.op is Op.LOAD]
    assert len(load.operands) == 1


# -- the pipeline -------------------------------------------------------------------------------
def vector_add(n_text: str = "%n") -> Module:
    """The tutorial's vector add, as the frontend emits it (with duplicated splats)."""
    return ir(
        f"""
        %pid = program_id {{axis=0}} : i32
        %bs = const {{value=256}} : i32
        %base = mul %pid, %bs
        %sb = splat %base : block<i32,[256]>
        %a = arange {{start=0, end=256}} : block<i32,[256]>
        %offs = add %sb, %a
        %ns = splat {n_text} : block<i32,[256]>
        %mask = lt %offs, %ns
        %xs = splat %x : block<ptr<f32>,[256]>
        %xp = addptr %xs, %offs
        %va = load %xp, %mask
        %xs2 = splat %x : block<ptr<f32>,[256]>
        %xp2 = addptr %xs2, %offs
        %ns2 = splat {n_text} : block<i32,[256]>
        %mask2 = lt %offs, %ns2
        %vb = load %xp2, %mask2
        %s = add %va, %vb
        %os = splat %out : block<ptr<f32>,[256]>
        %op = addptr %os, %offs
        store %op, %s, %mask
        """
    )


def _passes_available() -> list:
    try:
        import pypto_jit.passes.address  # noqa: F401
    except ModuleNotFoundError:
        return PIPELINE[:-1]  # address.py is written in parallel; run the rest
    return PIPELINE


def test_pipeline_runs_to_a_fixed_point_and_verifies():
    seen: list[str] = []
    once = run_pipeline(
        vector_add(), verify=verify, dump=lambda name, m: seen.append(name),
        passes=_passes_available(),
    )  # fmt: skip
    assert seen == [name for name, _ in _passes_available()]
    twice = run_pipeline(once, verify=verify, passes=_passes_available())
    assert print_module(twice) == print_module(once)
    assert op_names(once).count("load") == 2 and op_names(once).count("lt") == 1
    assert op_names(once).count("splat") == 4  # the x splat and the n splat are shared


def _run_vector_add(m: Module, n: int) -> np.ndarray:
    interpreter = pytest.importorskip("pypto_jit.interpreter")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(256).astype(np.float32)
    out = np.full(256, -1.0, dtype=np.float32)
    interpreter.run(m, [x, out, None, None, None], [0, 256, 1, 0, 256, 1, n, 0], [0.0], (1,))
    return out


@pytest.mark.parametrize("n", [256, 100])
def test_pipeline_preserves_meaning(n):
    m = vector_add()
    opt = run_pipeline(m, verify=verify, passes=_passes_available())
    np.testing.assert_array_equal(_run_vector_add(opt, n), _run_vector_add(m, n))


def test_pipeline_drops_masks_of_an_exactly_specialized_block():
    # One program over a specialized length equal to the block: no mask survives.
    m = ir(
        """
        %a = arange {start=0, end=256} : block<i32,[256]>
        %n = const {value=256} : i32
        %ns = splat %n : block<i32,[256]>
        %mask = lt %a, %ns
        %zero = const {value=0.0} : f32
        %zs = splat %zero : block<f32,[256]>
        %xs = splat %x : block<ptr<f32>,[256]>
        %xp = addptr %xs, %a
        %v = load %xp, %mask, %zs
        %fs = splat %f : block<f32,[256]>
        %w = where %mask, %v, %fs
        %os = splat %out : block<ptr<f32>,[256]>
        %op = addptr %os, %a
        store %op, %w, %mask
        """.replace("%n =", "%nn =").replace("splat %n :", "splat %nn :")
    )
    opt = run_pipeline(m, verify=verify, passes=_passes_available())
    names = op_names(opt)
    assert "lt" not in names and "where" not in names and "const" not in names
    assert [len(o.operands) for o in opt.walk() if o.op in (Op.LOAD, Op.STORE)] == [1, 2]


def test_pipeline_names_the_pass_that_broke_the_ir():
    def breaks(m: Module) -> Module:
        body = m.body.ops[0]
        return Module(m.name, m.params, type(m.body)(m.body.args, m.body.ops + (body,)))

    with pytest.raises(PipelineError, match="'breaks'"):
        run_pipeline(vector_add(), verify=verify, passes=[("dce", dce), ("breaks", breaks)])


def test_pipeline_default_list_is_the_documented_order():
    assert [name for name, _ in PIPELINE] == [
        "canonicalize", "cse", "dce", "mask_simplify", "canonicalize", "dce", "carried_offsets",
        "nowrap", "address", "fusion", "streaming", "prefix_mask", "write_prefetch",
    ]  # fmt: skip


# -- random programs: the pipeline never changes what the interpreter computes ---------------------
FUZZ_TYPES = ["i8", "i32", "u32", "i64", "f16", "bf16", "f32"]
INT_BIN = [Op.ADD, Op.SUB, Op.MUL, Op.IDIV, Op.MOD, Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR,
           Op.MAXIMUM, Op.MINIMUM]  # fmt: skip
FLOAT_BIN = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM]
CMP = [Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE]
LANES = 8


class _Fuzz:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.t = ScalarType(FUZZ_TYPES[self.rng.integers(len(FUZZ_TYPES))])
        self.b = Builder()

    def pick(self, xs):
        return xs[self.rng.integers(len(xs))]

    def const(self) -> object:
        if self.t.is_int:
            lo, hi = (np.iinfo(self.t.np_dtype).min, np.iinfo(self.t.np_dtype).max)
            return int(self.pick([0, 1, -1 if lo < 0 else 2, 3, lo, hi, 7, 255]))
        return float(self.pick([0.0, -0.0, 1.0, -1.5, 0.1, 3.0, math.inf, 65504.0, 1e-3]))

    def scalar(self, depth: int, n) -> object:
        b, t = self.b, self.t
        choice = self.rng.integers(4 if depth > 0 else 2)
        if choice == 0:
            return b.const(self.const(), t)
        if choice == 1:
            return b.cast(n, t)
        a, c = self.scalar(depth - 1, n), self.scalar(depth - 1, n)
        if choice == 2:
            return b.typed(self.pick(INT_BIN if t.is_int else FLOAT_BIN), a, c)
        return b.typed(Op.WHERE, b.typed(self.pick(CMP), a, c), a, c)

    def block(self, depth: int, n) -> object:
        b, t = self.b, self.t
        choice = self.rng.integers(5 if depth > 0 else 2)
        if choice == 0:
            return b.splat(self.scalar(2, n), (LANES,))
        if choice == 1:
            return b.cast(b.typed(Op.ARANGE, start=-3, end=LANES - 3), BlockType(t, (LANES,)))
        a, c = self.block(depth - 1, n), self.block(depth - 1, n)
        if choice == 2:
            return b.typed(self.pick(INT_BIN if t.is_int else FLOAT_BIN), a, c)
        if choice == 3:
            return b.typed(Op.WHERE, b.typed(self.pick(CMP), a, c), a, c)
        unary = [Op.NEG, Op.ABS] + ([Op.NOT] if t.is_int else [Op.FLOOR])
        return b.typed(self.pick(unary), a)

    def module(self) -> Module:
        b, t = self.b, self.t
        out_t = PtrType(t)
        out, n = b.open_block((out_t, i32))
        value = self.block(3, n)
        lanes = b.typed(Op.ARANGE, start=0, end=LANES)
        limit = b.splat(self.pick([b.const(int(self.rng.integers(-1, LANES + 2)), i32), n]),
                        (LANES,))  # fmt: skip
        mask = b.typed(self.pick(CMP), lanes, limit)
        ptrs = b.typed(Op.ADDPTR, b.splat(out, (LANES,)), lanes)
        b.typed(Op.STORE, ptrs, value, mask)
        params = (Param("out", "tensor", out_t, (LANES,), (1,)), Param("n", "scalar", i32))
        return Module("fuzz", params, b.close_block())


def _run_fuzz(m: Module, n: int) -> np.ndarray:
    interpreter = pytest.importorskip("pypto_jit.interpreter")
    t = m.params[0].type.elem
    out = np.zeros(LANES, dtype=_STORAGE.get(t.name, t.np_dtype))
    interpreter.run(m, [out, None], [0, LANES, 1, n], [], (1, 1, 1))
    return out.view(np.uint8)


@pytest.mark.parametrize("chunk", range(4))
def test_random_programs_keep_their_meaning(chunk):
    for seed in range(chunk * 50, chunk * 50 + 50):
        m = _Fuzz(seed).module()
        verify(m)
        opt = run_pipeline(m, verify=verify, passes=_passes_available())
        for n in (0, 5, LANES):
            want, got = _run_fuzz(m, n), _run_fuzz(opt, n)
            assert (want == got).all(), f"seed {seed}, n={n}:\n{print_module(m)}"
        again = run_pipeline(opt, verify=verify, passes=_passes_available())
        assert print_module(again) == print_module(opt), f"seed {seed}: not a fixed point"


# -- fusion: which values are computed in the loop of their consumer --------------------------
def fused(body: str) -> dict[str, list[str | None]]:
    """``fuse`` attrs after address analysis and fusion, by op name, in program order."""
    from pypto_jit.passes import annotate_addresses, fuse

    out = fuse(annotate_addresses(ir(body)))
    verify(out)
    attrs: dict[str, list[str | None]] = {}
    for op in out.walk():
        attrs.setdefault(str(op.op), []).append(op.attr("fuse"))
    return attrs


CHAIN = """
    %a = arange {start=0, end=256} : block<i32,[256]>
    %xs = splat %x : block<ptr<f32>,[256]>
    %xp = addptr %xs, %a
    %v = load %xp
    %e = tanh %v
    %d = div %e, %e
    %os = splat %out : block<ptr<f32>,[256]>
    %op = addptr %os, %a
    store %op, %d
"""


def test_fusion_inlines_single_sink_chains():
    f = fused(CHAIN)
    assert f["load"] == ["inline"] and f["tanh"] == ["inline"] and f["div"] == ["inline"]
    assert f["arange"] == [None] and f["addptr"] == [None, None]  # cheap: virtual anyway


def test_fusion_leaves_f32_exp_to_a_loop_of_its_own():
    f = fused(CHAIN.replace("tanh %v", "exp %v"))
    assert f["exp"] == [None]  # rendered over its array by the prelude's vector exp
    assert f["load"] == ["inline"] and f["div"] == ["inline"]  # read by exp's loop, the store's


def test_fusion_fills_multi_sink_values_in_their_first_sink():
    f = fused(
        """
        %a = arange {start=0, end=256} : block<i32,[256]>
        %xs = splat %x : block<ptr<f32>,[256]>
        %xp = addptr %xs, %a
        %v = load %xp
        %e = tanh %v
        %s = reduce %e {axis=0, keep_dims=false, kind="sum"} : f32
        %ss = splat %s : block<f32,[256]>
        %d = div %e, %ss
        %os = splat %out : block<ptr<f32>,[256]>
        %op = addptr %os, %a
        store %op, %d
        """
    )
    assert f["tanh"] == ["first"]  # sinks: the reduce (fills the array), then the store
    assert f["load"] == ["inline"]  # read only where tanh is computed: in the reduce's loop
    assert f["div"] == ["inline"]


def test_fusion_keeps_loads_before_side_effects():
    f = fused(
        """
        %a = arange {start=0, end=256} : block<i32,[256]>
        %xs = splat %x : block<ptr<f32>,[256]>
        %xp = addptr %xs, %a
        %v = load %xp
        %zero = const {value=0.0} : f32
        %zeros = splat %zero : block<f32,[256]>
        store %xp, %zeros
        %w = tanh %v
        %os = splat %out : block<ptr<f32>,[256]>
        %op = addptr %os, %a
        store %op, %w
        """
    )
    assert f["load"] == [None]  # its use is after a store to its tensor: read before that
    assert f["tanh"] == ["inline"]


SHIFTED = """
    %a = arange {start=0, end=256} : block<i32,[256]>
    %xs = splat %x : block<ptr<f32>,[256]>
    %xp = addptr %xs, %a
    %v = load %xp
    %one = const {value=1} : i32
    %ones = splat %one : block<i32,[256]>
    %b = add %a, %ones
    %xq = addptr %xs, %b
    store %xq, %v
"""


def test_fusion_does_not_fuse_a_load_into_a_store_to_other_lanes_of_its_tensor():
    assert fused(SHIFTED)["load"] == [None]
    in_place = SHIFTED.replace("store %xq, %v", "store %xp, %v")  # the same lanes: fine
    assert fused(in_place)["load"] == ["inline"]


def test_fusion_never_reaches_into_loops():
    f = fused(
        """
        %a = arange {start=0, end=256} : block<i32,[256]>
        %xs = splat %x : block<ptr<f32>,[256]>
        %xp = addptr %xs, %a
        %v = load %xp
        %e = erf %v
        %z = const {value=0} : i32
        %one = const {value=1} : i32
        %r = for %z, %n, %one, %e : block<f32,[256]> {
        ^(%i: i32, %acc: block<f32,[256]>):
          %t = log %acc
          yield %t
        }
        %os = splat %out : block<ptr<f32>,[256]>
        %op = addptr %os, %a
        store %op, %r
        """
    )
    assert f["erf"] == [None]  # the loop reads it (once per iteration): stored before
    assert f["log"] == ["inline"]  # in the loop body, computed in the yield's copy
    assert f["load"] == ["inline"]


def test_cheap_ops():
    from pypto_jit.passes.fusion import cheap

    m = ir(
        """
        %a = arange {start=0, end=4} : block<i32,[4]>
        %b = add %a, %a
        %g = cast %a : block<f32,[4]>
        %h = add %g, %g
        %q = div %g, %g
        %lt = lt %a, %a
        %w = where %lt, %g, %g
        %wi = where %lt, %a, %a
        """
    )
    kinds = [(str(op.op), cheap(op)) for op in m.walk()]
    assert kinds == [
        ("arange", True), ("add", True), ("cast", False), ("add", True), ("div", False),
        ("lt", True), ("where", False), ("where", True),
    ]  # fmt: skip


# -- streaming stores ---------------------------------------------------------------------------
BIG = """kernel @k(
  %x: ptr<f32> tensor(shape=[16777216], strides=[1]),
  %out: ptr<f32> tensor(shape=[16777216], strides=[1])
) {
"""


def streamed(body: str, head: str = BIG) -> bool:
    from pypto_jit.ir.parser import parse_module
    from pypto_jit.passes import annotate_addresses, fuse, stream_stores

    m = parse_module(head + textwrap.dedent(body).strip() + "\n}\n")
    m = stream_stores(fuse(annotate_addresses(m)))
    verify(m)
    (store,) = [op for op in m.walk() if op.op is Op.STORE]
    return bool(store.attr("stream"))


# The 1024 lanes of a row of x in %v (%a the lane offsets, %xp their pointers).
ROW_LOAD = """
    %a = arange {start=0, end=1024} : block<i32,[1024]>
    %xs = splat %x : block<ptr<f32>,[1024]>
    %xp = addptr %xs, %a
    %v = load %xp
"""

COPY = (
    ROW_LOAD
    + """\
    %w = add %v, %v
    %os = splat %out : block<ptr<f32>,[1024]>
    %op = addptr %os, %a
    store %op, %w
"""
)


def test_streaming_large_cheap_outputs():
    assert streamed(COPY)
    small = HEAD.replace("[256]", "[1024]")
    assert not streamed(COPY, small)  # 4 KiB: it stays in cache for whoever reads it
    assert not streamed(COPY.replace("%w = add %v, %v", "%w = tanh %v"))  # compute-bound
    assert not streamed(COPY.replace("1024", "64"))  # rows shorter than a few lines
    read_back = (
        COPY.split("    %w = add")[0]
        + "    %os = splat %out : block<ptr<f32>,[1024]>\n    %op = addptr %os, %a\n"
        + "    %u = load %op\n    %w = add %v, %u\n    store %op, %w\n"
    )
    assert not streamed(read_back)  # the output is loaded too


def _two(x_shape: str, out_shape: str) -> str:
    return BIG.replace("[16777216]", x_shape, 1).replace("[16777216]", out_shape, 1)


def test_streaming_needs_a_footprint_past_the_last_level_cache():
    assert streamed(COPY, _two("[4194304]", "[4194304]"))  # 16 MiB in, 16 MiB out
    assert not streamed(COPY, _two("[2097152]", "[2097152]"))  # 8 + 8: stays in cache
    assert streamed(COPY, _two("[7340032]", "[1048576]"))  # 28 + 4
    assert not streamed(COPY, _two("[8388608]", "[524288]"))  # a 2 MiB output of 34 MiB


# -- write prefetch -----------------------------------------------------------------------------
# 8 MiB tensors (not streamed: the kernel spans 16 MiB), a 4 KiB weight and a dynamic row count
MID = """kernel @k(
  %x: ptr<f32> tensor(shape=[2048, 1024], strides=[1024, 1]),
  %out: ptr<f32> tensor(shape=[2048, 1024], strides=[1024, 1]),
  %w: ptr<f32> tensor(shape=[1024], strides=[1]),
  %n: i32 scalar
) {
"""

# Two passes over a row of x: a sum, then the row again minus the mean, stored.
TWO_PASS = (
    ROW_LOAD
    + """\
    %s = reduce %v {axis=0, keep_dims=false, kind="sum"} : f32
    %v2 = load %xp
    %ss = splat %s : block<f32,[1024]>
    %y = sub %v2, %ss
    %os = splat %out : block<ptr<f32>,[1024]>
    %op = addptr %os, %a
    store %op, %y
"""
)


def _prefetch_module(body: str, head: str = MID):
    """``head`` + ``body`` through the passes write prefetch reads, then write prefetch."""
    from pypto_jit import passes

    m = parse_module(head + textwrap.dedent(body).strip() + "\n}\n")
    m = passes.stream_stores(passes.fuse(passes.annotate_addresses(m)))
    m = passes.prefetch_stores(passes.mark_prefix_masks(m))
    verify(m)
    return m


def prefetched(body: str, head: str = MID) -> bool:
    (store,) = [op for op in _prefetch_module(body, head).walk() if op.op is Op.STORE]
    return bool(store.attr("prefetch"))


def _masked(body: str, value: str, compare: str = "lt") -> str:
    """``body`` with its store of ``value`` masked by ``%a <compare> n``."""
    ns = f"    %ns = splat %n : block<i32,[1024]>\n    %m = {compare} %a, %ns\n    %xs ="
    return body.replace(f"store %op, {value}", f"store %op, {value}, %m").replace(
        "    %xs =", ns, 1
    )


def test_write_prefetch_of_rows_whose_loop_reads_warm_data():
    assert prefetched(TWO_PASS)  # the row of x is read a second time
    weights = TWO_PASS.replace(
        "    %y = sub %v2, %ss",
        "    %ws = splat %w : block<ptr<f32>,[1024]>\n    %wp = addptr %ws, %a\n"
        "    %wv = load %wp\n    %y = mul %v2, %wv",
    )
    assert prefetched(weights)  # and a 4 KiB weight, read for the first time
    masked = _masked(TWO_PASS, "%y")
    assert prefetched(masked)  # a prefix mask: its surely active lanes
    assert not prefetched(masked.replace("%m = lt %a, %ns", "%m = gt %a, %ns"))


def test_write_prefetch_skips_loops_that_stream_compute_or_store_little():
    first_read = (
        TWO_PASS.replace("%y = sub %v2, %ss", "%y = add %v2, %v2")
        .replace(
            '    %v = load %xp\n    %s = reduce %v {axis=0, keep_dims=false, kind="sum"} : f32\n',
            "",
        )
        .replace("    %ss = splat %s : block<f32,[1024]>\n", "")
    )
    assert "load" in first_read and "%v =" not in first_read
    assert not prefetched(first_read)  # the loop streams x in: prefetches would delay it
    assert not prefetched(TWO_PASS.replace("%y = sub %v2, %ss", "%y = tanh %v2"))
    assert not prefetched(TWO_PASS.replace("1024]>", "32]>").replace("end=1024", "end=32"))
    assert not prefetched(TWO_PASS, BIG)  # 64 MiB out: streamed instead


# A softmax row: the row's loads (in the max's loop), then exp, the sum and a division on
# arrays; the output row's address is computed last, from the program id.
SOFTMAX = (
    ROW_LOAD
    + """\
    %mx = reduce %v {axis=0, keep_dims=false, kind="max"} : f32
    %mxs = splat %mx : block<f32,[1024]>
    %z = sub %v, %mxs
    %e = exp %z
    %s = reduce %e {axis=0, keep_dims=false, kind="sum"} : f32
    %ss = splat %s : block<f32,[1024]>
    %d = div %e, %ss
    %pid = program_id {axis=0} : i32
    %c = const {value=1024} : i32
    %row = mul %pid, %c : i32
    %rows = splat %row : block<i32,[1024]>
    %cols = add %rows, %a : block<i32,[1024]>
    %os = splat %out : block<ptr<f32>,[1024]>
    %op = addptr %os, %cols
    store %op, %d
"""
)


def test_early_write_prefetch_after_the_last_memory_access():
    from pypto_jit.passes.write_prefetch import early_points

    m = _prefetch_module(SOFTMAX)
    ops = list(m.body.ops)
    store = ops[-1]
    assert store.attr("prefetch") == "early"
    kinds = [op.op for op in ops]
    # the row's address ops moved up to right after the max (whose loop reads x)
    first_reduce, exp = kinds.index(Op.REDUCE), kinds.index(Op.EXP)
    moved = [op.op for op in ops[first_reduce + 1 : exp]]
    assert Op.PROGRAM_ID in moved and Op.MUL in moved and Op.ADDPTR in moved
    (point,) = early_points(m.body)
    assert first_reduce < point < exp and early_points(m.body)[point] == [store]
    # its prefix mask moves too, and the prefetch waits for it
    assert _prefetch_module(_masked(SOFTMAX, "%d")).body.ops[-1].attr("prefetch") == "early"


def test_early_write_prefetch_only_where_it_overlaps_work():
    def early(body: str) -> bool:
        return _prefetch_module(body).body.ops[-1].attr("prefetch") == "early"

    assert early(SOFTMAX)
    # the store loop reads x itself: the prefetches would compete with its loads
    assert not early(SOFTMAX.replace("%d = div %e, %ss", "%d = div %v, %ss"))
    # no work to overlap but the store loop's own division (of the max by itself)
    idle = [line for line in SOFTMAX.splitlines() if not line.strip().startswith(
        ("%z =", "%e =", "%s =", "%ss =", "%d ="))]  # fmt: skip
    idle = "\n".join(idle).replace("    %pid =", "    %d = div %mxs, %mxs\n    %pid =")
    assert "%d = div %mxs, %mxs" in idle and not early(idle)
    assert early(idle.replace("%d = div %mxs, %mxs", "%e = exp %mxs\n    %d = div %e, %mxs"))
    # a mask that is not a prefix: which lines are written is not known up front
    assert not early(_masked(SOFTMAX, "%d", "gt"))
    assert not early(SOFTMAX.replace("1024]>", "32]>").replace("end=1024", "end=32"))
    two_rows = SOFTMAX.replace(
        "    %op = addptr %os, %cols\n    store %op, %d",
        "    %op = addptr %os, %cols\n    %op2 = reshape %op : block<ptr<f32>,[2, 512]>\n"
        "    %d2 = reshape %d : block<f32,[2, 512]>\n    store %op2, %d2",
    )
    assert "store %op2, %d2" in two_rows and not early(two_rows)
