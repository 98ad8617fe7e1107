"""Rules for elementwise ops: unary, binary, comparisons, WHERE and CAST.

Arithmetic rules receive the operands' scalar type and the operands already
widened to the type's compute format (see ``numerics.ARITH``); the wrapper
rounds the result back to the IR type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ir.ops import Op
from ..ir.types import ScalarType, is_ptr, scalar_of
from .numerics import ARITH, cast_values, scalarize
from .registry import Ptr, register


def arith(*ops: Op) -> Callable[[Callable], Callable]:
    """Register ``fn(t, *operands)`` for ``ops``, with widening and rounding around it."""

    def deco(fn: Callable) -> Callable:
        def rule(ctx, op, *vals):
            t = scalar_of(op.operands[0].type)
            widen, narrow = ARITH.get(t.name, (None, None))
            if widen is not None:
                vals = [widen(v) for v in vals]
            out = fn(t, *vals)
            return scalarize(narrow(out) if narrow is not None else out)

        register(*ops)(rule)
        return fn

    return deco


def _simple(ops_to_ufuncs: dict[Op, Callable]) -> None:
    for op, ufunc in ops_to_ufuncs.items():
        arith(op)(lambda t, *xs, _f=ufunc: _f(*xs))


_simple({
    Op.NEG: np.negative, Op.NOT: np.invert, Op.ABS: np.abs,
    Op.EXP: np.exp, Op.EXP2: np.exp2, Op.LOG: np.log, Op.LOG2: np.log2,
    Op.SQRT: np.sqrt, Op.SIN: np.sin, Op.COS: np.cos, Op.FLOOR: np.floor, Op.CEIL: np.ceil,
    Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.true_divide,
    Op.AND: np.bitwise_and, Op.OR: np.bitwise_or, Op.XOR: np.bitwise_xor,
    # numpy's maximum/minimum propagate NaN, as the IR requires.
    Op.MAXIMUM: np.maximum, Op.MINIMUM: np.minimum,
})  # fmt: skip


@arith(Op.RSQRT)
def _rsqrt(t: ScalarType, x):
    return np.reciprocal(np.sqrt(x))


@arith(Op.IDIV)
def _idiv(t: ScalarType, a, b):
    if t.is_float:
        return np.trunc(np.true_divide(a, b))
    zero, safe, minus_one = _safe_divisor(t, b)
    rem = np.fmod(a, safe)  # C remainder: sign of the dividend
    q = (a - rem) // safe  # exact division, so floor == trunc
    if minus_one is not None:
        q = np.where(minus_one, np.negative(a), q)  # INT_MIN / -1 wraps to INT_MIN
    return np.where(zero, a.dtype.type(0), q)


@arith(Op.MOD)
def _mod(t: ScalarType, a, b):
    if t.is_float:
        return np.fmod(a, b)
    zero, safe, _ = _safe_divisor(t, b)  # x % -1 == 0 falls out of safe == 1
    return np.where(zero, a.dtype.type(0), np.fmod(a, safe))


def _safe_divisor(t: ScalarType, b):
    """Divisors 0 (and -1 for signed types) replaced by 1, so numpy never traps or warns."""
    one = b.dtype.type(1)
    zero = b == 0
    if not t.is_signed:
        return zero, np.where(zero, one, b), None
    minus_one = b == -1
    return zero, np.where(zero | minus_one, one, b), minus_one


def _shift_count(t: ScalarType, b):
    return np.bitwise_and(b, b.dtype.type(t.bits - 1))  # modulo the bit width (i1: 0)


@arith(Op.SHL)
def _shl(t: ScalarType, a, b):
    n = _shift_count(t, b)
    if not t.is_signed:
        return np.left_shift(a, n)
    unsigned = np.dtype(f"u{a.dtype.itemsize}")  # shift the bits, not the value
    return np.left_shift(a.astype(unsigned), n.astype(unsigned)).astype(a.dtype)


@arith(Op.SHR)
def _shr(t: ScalarType, a, b):
    return np.right_shift(a, _shift_count(t, b))  # arithmetic for signed dtypes


_COMPARE = {
    Op.LT: np.less, Op.LE: np.less_equal, Op.GT: np.greater,
    Op.GE: np.greater_equal, Op.EQ: np.equal, Op.NE: np.not_equal,
}  # fmt: skip


@register(*_COMPARE)
def _compare(ctx, op, a, b):
    if isinstance(a, Ptr):
        a, b = _same_tensor(op, a, b)
    return scalarize(_COMPARE[op.op](a, b))


@register(Op.WHERE)
def _where(ctx, op, cond, a, b):
    if isinstance(a, Ptr):
        x, y = _same_tensor(op, a, b)
        return Ptr(a.param, scalarize(np.where(cond, x, y)))
    return scalarize(np.where(cond, a, b))


def _same_tensor(op, a: Ptr, b: Ptr):
    if a.param != b.param:
        raise NotImplementedError(f"interpreter: {op.op} on pointers into different tensors")
    return a.off, b.off


@register(Op.CAST)
def _cast(ctx, op, x):
    src, dst = op.operands[0].type, op.results[0].type
    if is_ptr(src):
        if src != dst:
            raise NotImplementedError(f"interpreter: pointer cast {src} -> {dst}")
        return x
    return cast_values(x, scalar_of(src), scalar_of(dst))
