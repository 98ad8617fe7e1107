"""Exact scalar arithmetic for constant folding, with the IR's semantics.

Every function returns the folded Python value (``bool`` for i1, ``int`` for
other integers, ``float`` for floats) or ``None`` when the result cannot be
folded exactly: integer division by zero (left to the run time, which defines
it as 0), float results that are NaN (the sign and payload of a run-time NaN
are the hardware's), transcendentals (libm's rounding is not ours), and
conversions whose rounding would depend on the path taken.

Floats: f64 and f32 compute in their own precision; f16 and bf16 compute in
f32 and round the result to the type (round to nearest even).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..ir.ops import Op
from ..ir.types import ScalarType

Number = int | float | bool


# -- representation ---------------------------------------------------------------------------
def wrap(x: int, t: ScalarType) -> int | bool:
    """``x`` reduced to ``t``'s width, two's complement for signed types."""
    if t.is_bool:
        return bool(x & 1)
    bits = t.bits
    x &= (1 << bits) - 1
    if t.is_signed and x >> (bits - 1):
        x -= 1 << bits
    return x


def int_range(t: ScalarType) -> tuple[int, int]:
    if t.is_signed:
        return -(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1
    return 0, (1 << t.bits) - 1


def _bf16(x: np.float32) -> float:
    """Round an f32 to bf16, nearest even (NaN excluded by the callers)."""
    (u,) = struct.unpack("<I", struct.pack("<f", float(x)))
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", u))[0]


def round_float(x: float | np.floating, t: ScalarType) -> float:
    """``x`` (exact in f32 unless ``t`` is f64) rounded to ``t``."""
    if t.name == "f64":
        return float(x)
    with np.errstate(over="ignore"):  # overflow to inf is the correctly rounded result
        f = np.float32(x)
        if t.name == "f16":
            return float(np.float16(f))
    return _bf16(f) if t.name == "bf16" else float(f)


def normalize(value: Number, t: ScalarType) -> Number:
    """A CONST's ``value`` attr as ``t`` holds it."""
    if t.is_int:
        return wrap(int(value), t)
    if t.name == "f64":
        return float(value)
    return round_float(np.float64(value), t) if not math.isnan(value) else float(value)


# -- integers -----------------------------------------------------------------------------------
def _idiv(a: int, b: int) -> int | None:
    if b == 0:
        return None
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _mod(a: int, b: int) -> int | None:
    q = _idiv(a, b)
    return None if q is None else a - q * b


_INT_BINARY = {
    Op.ADD: lambda a, b, n: a + b,
    Op.SUB: lambda a, b, n: a - b,
    Op.MUL: lambda a, b, n: a * b,
    Op.IDIV: lambda a, b, n: _idiv(a, b),
    Op.MOD: lambda a, b, n: _mod(a, b),
    Op.AND: lambda a, b, n: a & b,
    Op.OR: lambda a, b, n: a | b,
    Op.XOR: lambda a, b, n: a ^ b,
    # Shift counts are taken modulo the width; SHR of a signed (negative) Python
    # int is arithmetic and of an unsigned (non-negative) one logical, as required.
    Op.SHL: lambda a, b, n: a << (b % n),
    Op.SHR: lambda a, b, n: a >> (b % n),
    Op.MAXIMUM: lambda a, b, n: max(a, b),
    Op.MINIMUM: lambda a, b, n: min(a, b),
}
# Arithmetic on i1 has no agreed meaning across backends; only logic folds there.
_BOOL_BINARY = frozenset({Op.AND, Op.OR, Op.XOR, Op.MAXIMUM, Op.MINIMUM})


def _int_binary(op: Op, t: ScalarType, a: int, b: int) -> Number | None:
    if t.is_bool and op not in _BOOL_BINARY:
        return None
    fn = _INT_BINARY.get(op)
    r = fn(a, b, t.bits) if fn else None
    return None if r is None else wrap(r, t)


def _int_unary(op: Op, t: ScalarType, a: int) -> Number | None:
    if op is Op.NOT:
        return (not a) if t.is_bool else wrap(~a, t)
    if t.is_bool:
        return None
    if op is Op.NEG:
        return wrap(-a, t)
    if op is Op.ABS:
        return wrap(abs(a), t)
    return None


# -- floats -------------------------------------------------------------------------------------
def _compute_type(t: ScalarType) -> type:
    return np.float64 if t.name == "f64" else np.float32


def _float_binary(op: Op, t: ScalarType, a: float, b: float) -> float | None:
    if math.isnan(a) or math.isnan(b):
        return None  # every binary op propagates NaN, and NaN results are not folded
    ct = _compute_type(t)
    x, y = ct(a), ct(b)
    if op is Op.MOD:
        if math.isinf(a) or b == 0:
            return None
        r = math.fmod(float(x), float(y))  # fmod is exact, so f64 arithmetic is enough
    elif op in (Op.MAXIMUM, Op.MINIMUM):
        if a == b == 0.0 and math.copysign(1, a) != math.copysign(1, b):
            return None  # fmax(-0, +0) is the C library's choice
        r = (max if op is Op.MAXIMUM else min)(x, y)
    else:
        fn = _FLOAT_ARITH.get(op)
        if fn is None:
            return None
        with np.errstate(all="ignore"):
            r = fn(x, y)
    if math.isnan(r):
        return None
    return round_float(r, t)


_FLOAT_ARITH = {
    Op.ADD: lambda x, y: x + y,
    Op.SUB: lambda x, y: x - y,
    Op.MUL: lambda x, y: x * y,
    Op.DIV: lambda x, y: x / y,
}


def _float_unary(op: Op, t: ScalarType, a: float) -> float | None:
    if math.isnan(a):
        return None
    if op is Op.NEG:
        return -a
    if op is Op.ABS:
        return abs(a)
    if op is Op.FLOOR:
        return float(np.floor(a))  # numpy keeps the sign of zero (ceil(-0.5) is -0.0)
    if op is Op.CEIL:
        return float(np.ceil(a))
    return None  # transcendentals: libm's rounding is not ours to predict


# -- entry points -------------------------------------------------------------------------------
def fold_unary(op: Op, t: ScalarType, a: Number) -> Number | None:
    a = normalize(a, t)
    return _int_unary(op, t, a) if t.is_int else _float_unary(op, t, a)


def fold_binary(op: Op, t: ScalarType, a: Number, b: Number) -> Number | None:
    a, b = normalize(a, t), normalize(b, t)
    return _int_binary(op, t, a, b) if t.is_int else _float_binary(op, t, a, b)


def fold_compare(op: Op, t: ScalarType, a: Number, b: Number) -> bool | None:
    # IEEE comparisons: anything involving NaN is false, except NE.
    a, b = normalize(a, t), normalize(b, t)
    return {
        Op.LT: a < b, Op.LE: a <= b, Op.GT: a > b,
        Op.GE: a >= b, Op.EQ: a == b, Op.NE: a != b,
    }[op]  # fmt: skip


def fold_cast(src: ScalarType, dst: ScalarType, a: Number) -> Number | None:
    a = normalize(a, src)
    if dst.is_bool:
        return a != 0  # NaN != 0 holds, as in C
    if src.is_int:
        return _int_to(dst, int(a))
    if dst.is_int:
        if not math.isfinite(a):
            return None
        lo, hi = int_range(dst)
        r = math.trunc(a)
        return r if lo <= r <= hi else None  # out of range is undefined: leave it
    if math.isnan(a):
        return None
    if src.name == "f64" and dst.name in ("f16", "bf16") and float(np.float32(a)) != a:
        return None  # f64 -> f32 -> f16 and f64 -> f16 may round differently
    return round_float(a, dst)


def _int_to(dst: ScalarType, a: int) -> Number | None:
    if dst.is_int:
        return wrap(a, dst)
    if dst.name == "f64":
        return float(a)  # Python rounds int -> float to nearest even
    if abs(a) > 1 << 53:
        return None  # float(a) would round once before the rounding to f32
    r = round_float(float(a), dst)
    if dst.name in ("f16", "bf16") and r != a:
        return None  # int -> f16 may round through f32 first: fold only exact values
    return r
