"""Rules for the math ops beyond numpy's ufuncs: ERF, TANH, UMULHI, FMA and BITCAST.

ERF and TANH are computed in float64 and rounded once to the operand's
compute type (f32 for f16/bf16, which the wrapper then rounds to the type), so
the reference is as close to correctly rounded as float64 allows.

FMA rounds ``a * b + c`` once:

* f32 (and f16/bf16, which compute in f32 and then round to the type): the
  product of two f32 values is exact in float64; the sum is rounded to odd in
  float64 (round to nearest, then a one-ulp nudge toward the exact sum when the
  rounding was inexact and left an even significand, the error being known
  exactly from TwoSum). Rounding a round-to-odd value with 53 bits to 24 bits
  gives the correctly rounded result (Boldo & Melquiond, "Emulation of FMA and
  correctly rounded sums: proved algorithms using rounding to odd", 2008), so
  there is no double-rounding error.
* f64: exact rational arithmetic on the lanes whose operands are finite
  (Python ints; ``int / int`` is correctly rounded), IEEE rules for the others.
  Python 3.11 has no ``math.fma`` and numpy's longdouble is too narrow to hold
  a float64 product exactly; f64 FMA is rare, so a per-lane loop is acceptable.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir.ops import Op
from ..ir.types import ScalarType, scalar_of
from .elementwise import arith
from .numerics import F32, bf16_to_f32, scalarize
from .registry import register

F64 = np.dtype(np.float64)

_erf64 = np.frompyfunc(math.erf, 1, 1)


def _via_f64(fn):
    """Evaluate ``fn`` in float64 and round once to the operand's compute dtype."""

    def rule(t: ScalarType, x):
        x = np.asarray(x)
        return np.asarray(fn(x.astype(F64)), dtype=F64).astype(x.dtype)

    return rule


arith(Op.ERF)(_via_f64(_erf64))
arith(Op.TANH)(_via_f64(np.tanh))


# -- UMULHI ---------------------------------------------------------------------------


@arith(Op.UMULHI)
def _umulhi(t: ScalarType, a, b):
    """The high ``bits`` of the double-width product of the operands taken as UNSIGNED,
    for every integer type (as Triton's ``umulhi``, which is ``__nv_umulhi`` even for
    int32); a signed type gets those bits reinterpreted, e.g. i32: umulhi(-1, -1) == -2."""
    a, b = np.asarray(a), np.asarray(b)
    bits = t.bits  # i1 computes in uint8: the high bit of a 2-bit product of 0/1 is 0
    unsigned = np.dtype(f"u{a.dtype.itemsize}")  # astype wraps: the two's complement bits
    ua, ub = a.astype(unsigned).astype(np.uint64), b.astype(unsigned).astype(np.uint64)
    if bits <= 32:
        hi = (ua * ub) >> np.uint64(bits)  # the exact product fits in 64 bits
    else:
        hi = _umulhi64(ua, ub)
    return hi.astype(a.dtype)  # wraps into the signed type


def _umulhi64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """High 64 bits of the 128-bit unsigned product, from 32-bit halves (no overflow)."""
    low, s32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    a_lo, a_hi, b_lo, b_hi = a & low, a >> s32, b & low, b >> s32
    lo_lo, hi_lo, lo_hi, hi_hi = a_lo * b_lo, a_hi * b_lo, a_lo * b_hi, a_hi * b_hi
    cross = (lo_lo >> s32) + (hi_lo & low) + lo_hi  # at most 2**64 - 1
    return hi_hi + (hi_lo >> s32) + (cross >> s32)


# -- FMA ------------------------------------------------------------------------------


@arith(Op.FMA)
def _fma(t: ScalarType, a, b, c):
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    if a.dtype == F64:
        return _fma64(a, b, c)
    return _fma32(a, b, c)


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a.astype(F64) * b.astype(F64)  # exact: 24 + 24 significant bits
    c64 = c.astype(F64)
    s = p + c64
    bb = s - p  # TwoSum: p + c == s + err exactly (no overflow is possible here)
    err = (p - (s - bb)) + (c64 - bb)
    even = (np.asarray(s).view(np.int64) & 1) == 0
    nudge = (err != 0) & even & np.isfinite(s)
    toward = np.where(err > 0, np.inf, -np.inf)
    odd = np.where(nudge, np.nextafter(s, toward), s)  # s rounded to odd
    return odd.astype(F32)


def _fma64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    shape = a.shape
    a, b, c = (x.reshape(-1) for x in (a, b, c))  # one IR type: one shape
    out = a * b + c  # exact IEEE results where an operand is not finite...
    finite_ab = np.isfinite(a) & np.isfinite(b)
    # ...except that a finite product that overflows must not turn c = +-inf into NaN.
    out = np.where(finite_ab & ~np.isfinite(c), c, out)
    for i in np.flatnonzero(finite_ab & np.isfinite(c)):
        out[i] = _exact_fma(float(a[i]), float(b[i]), float(c[i]))
    return out.reshape(shape)


def _exact_fma(x: float, y: float, z: float) -> float:
    """``x * y + z`` rounded once, from exact integer ratios (finite operands)."""
    (nx, dx), (ny, dy), (nz, dz) = x.as_integer_ratio(), y.as_integer_ratio(), z.as_integer_ratio()
    num, den = nx * ny * dz + nz * dx * dy, dx * dy * dz
    if num == 0:
        # An exact zero sum is -0 only when both addends are -0 (round to nearest).
        product_sign = math.copysign(1.0, x) * math.copysign(1.0, y)
        both_neg_zero = (x == 0 or y == 0) and product_sign < 0 and math.copysign(1.0, z) < 0
        return -0.0 if both_neg_zero else 0.0
    try:
        return num / den  # int / int is correctly rounded; underflow keeps the sign
    except OverflowError:
        return math.copysign(math.inf, num)


# -- BITCAST --------------------------------------------------------------------------


@register(Op.BITCAST)
def _bitcast(ctx, op, x):
    src, dst = scalar_of(op.operands[0].type), scalar_of(op.results[0].type)
    a = np.asarray(x)
    if src.name == "bf16":  # held as float32 with 16 zero low bits: take the high half
        a = (a.astype(F32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    if dst.name == "bf16":
        return scalarize(bf16_to_f32(a.view(np.uint16)))
    return scalarize(a.view(dst.np_dtype))
