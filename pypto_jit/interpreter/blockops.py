"""Rules for whole-block computations: PERMUTE, REDUCE, SCAN and DOT.

All of them compute in the element type's compute format (``numerics.ARITH``:
f16 in f32, i1 in uint8) and round the result back to the type once, so a
sum of f16 accumulates in f32 and rounds at the end. Integer sums and
products wrap (numpy reduces in the given dtype without upcasting when told
the dtype). Float reductions use numpy's order (pairwise for sum); the IR
allows any order for floats. Scans are sequential along the axis.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ir.ops import Op
from ..ir.types import ScalarType, scalar_of
from .numerics import ARITH, cast_values, scalarize
from .registry import lift, register


@register(Op.PERMUTE)
def _permute(ctx, op, x):
    order = op.attr("order")
    return lift(lambda v: np.transpose(v, order))(x)


def _compute(t: ScalarType, x) -> tuple[np.ndarray, Callable]:
    """``x`` widened to the compute format of ``t``, and the function rounding back."""
    widen, narrow = ARITH.get(t.name, (None, None))
    a = widen(np.asarray(x)) if widen is not None else np.asarray(x)
    return a, (narrow if narrow is not None else scalarize)


def _fold(ufunc: np.ufunc) -> Callable:
    # dtype= keeps numpy from widening small integers, so sums and products wrap.
    return lambda a, axis, keepdims: ufunc.reduce(a, axis=axis, dtype=a.dtype, keepdims=keepdims)


_REDUCERS: dict[str, Callable] = {
    "sum": _fold(np.add),
    "prod": _fold(np.multiply),
    # numpy's maximum/minimum propagate NaN, as the IR requires.
    "max": _fold(np.maximum),
    "min": _fold(np.minimum),
    "and": _fold(np.bitwise_and),
    "or": _fold(np.bitwise_or),
    "xor": _fold(np.bitwise_xor),
}


@register(Op.REDUCE)
def _reduce(ctx, op, x):
    t = scalar_of(op.operands[0].type)
    kind, axis, keep = op.attr("kind"), op.attr("axis"), bool(op.attr("keep_dims", False))
    a, narrow = _compute(t, x)
    if kind in ("argmax", "argmin"):
        # numpy returns the first extreme and counts NaN as the extreme of both kinds.
        find = np.argmax if kind == "argmax" else np.argmin
        return scalarize(find(a, axis=axis, keepdims=keep).astype(np.int32))
    return scalarize(narrow(_REDUCERS[kind](a, axis, keep)))


@register(Op.SCAN)
def _scan(ctx, op, x):
    t = scalar_of(op.operands[0].type)
    axis = op.attr("axis")
    reverse = bool(op.attr("reverse", False))
    a, narrow = _compute(t, x)
    scan = np.cumsum if op.attr("kind") == "sum" else np.cumprod
    if reverse:
        a = np.flip(a, axis)
    out = scan(a, axis=axis, dtype=a.dtype)
    if reverse:
        out = np.flip(out, axis)
    return narrow(out)


@register(Op.DOT)
def _dot(ctx, op, a, b, acc):
    """acc + a @ b with the operands converted to acc's type, products and sums in it."""
    src, t = scalar_of(op.operands[0].type), scalar_of(op.operands[2].type)
    a, b = cast_values(a, src, t), cast_values(b, src, t)
    if t.is_int and not t.is_bool:
        return _int_dot(t, a, b, acc)
    widen, narrow = ARITH.get(t.name, (None, None))
    if narrow is None:  # f32, f64: numpy's own arithmetic rounds every op to the type
        total = np.asarray(acc)
        for k in range(a.shape[1]):  # k ascending
            total = total + a[:, k : k + 1] * b[k : k + 1, :]
        return total
    widen = widen or np.asarray
    a, b, total = widen(np.asarray(a)), widen(np.asarray(b)), widen(np.asarray(acc))
    for k in range(a.shape[1]):  # every product and partial sum is rounded to t
        total = widen(narrow(total + widen(narrow(a[:, k : k + 1] * b[k : k + 1, :]))))
    return narrow(total)


def _int_dot(t: ScalarType, a, b, acc) -> np.ndarray:
    """Wrapping integer dot: exact modulo 2**64 in uint64, then truncated to t."""
    ua, ub, uacc = (np.asarray(v).astype(np.uint64) for v in (a, b, acc))
    total = np.matmul(ua, ub) + uacc  # unsigned: wraps, and the order does not matter
    unsigned = np.dtype(f"u{t.itemsize}")
    return total.astype(unsigned).view(t.np_dtype)
