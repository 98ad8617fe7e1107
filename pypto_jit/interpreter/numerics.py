"""Number formats the interpreter holds values in, and conversions between them.

Values are numpy scalars (scalar IR types) or arrays (blocks) of the IR type's
``np_dtype``. Two types need care:

* ``bf16`` has no numpy dtype: it is held as float32 whose low 16 bits are
  zero, re-rounded (nearest even) after every op that can produce new bits.
* ``f16`` is held as numpy float16, but ops compute in float32 and round the
  result once: numpy's own float16 transcendentals do not always round like
  that (its exp/log/sin/cos differ from float32-then-round in ~1e-4 of inputs).

``i1`` arithmetic is done in uint8 and reduced modulo 2, so that it wraps like
the other unsigned integer types (add is xor, mul is and).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ir.types import ScalarType

F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)
_BF16_QNAN = np.uint16(0x7FC0)  # what torch produces for any NaN


def scalarize(x):
    """A 0-d array as a numpy scalar; anything else unchanged."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return x[()]
    return x


def bf16_bits(x) -> np.ndarray:
    """float32 values -> raw bf16 bits (uint16), rounding to nearest even."""
    a = np.asarray(x, dtype=F32)
    u = a.view(np.uint32)
    rounded = ((u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))) >> 16).astype(np.uint16)
    return np.where(np.isnan(a), _BF16_QNAN, rounded)


def bf16_to_f32(bits) -> np.ndarray:
    """Raw bf16 bits (uint16) -> float32 values (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(F32)


def round_bf16(x):
    """Round float32 values to the nearest bf16, kept as float32."""
    return scalarize(bf16_to_f32(bf16_bits(x)))


def to_f16(x):
    return scalarize(np.asarray(x).astype(F16))


def _to_f32(x):
    return x.astype(F32)


def _to_u8(x):
    return x.astype(np.uint8)


def _from_u8(x):
    return scalarize((np.asarray(x) & np.uint8(1)).astype(bool))


# How arithmetic on a type is carried out: (widen operands, narrow the result).
Conversion = tuple[Callable | None, Callable | None]
ARITH: dict[str, Conversion] = {
    "f16": (_to_f32, to_f16),
    "bf16": (None, round_bf16),
    "i1": (_to_u8, _from_u8),
}


def wrap_int(value: int, t: ScalarType):
    """A Python int as a numpy scalar of integer type ``t``, wrapping modulo 2**bits."""
    if t.is_bool:
        return np.bool_(value & 1)
    bits = t.bits
    value &= (1 << bits) - 1
    if t.is_signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return t.np_dtype.type(value)


def from_python(value: int | float | bool, t: ScalarType):
    """A Python constant (or an ABI slot) as a value of scalar type ``t``."""
    if t.is_bool:
        return np.bool_(value != 0)
    if t.is_int:
        return wrap_int(int(value), t)
    if t.name == "bf16":
        return round_bf16(np.float32(value))
    if t.name == "f16":
        return np.float32(value).astype(F16)  # through f32, as CAST and torch do
    return t.np_dtype.type(value)


def cast_values(x, src: ScalarType, dst: ScalarType):
    """CAST semantics: float->int truncates, ->i1 is ``!= 0``, ints wrap, floats round."""
    a = np.asarray(x)
    if dst.is_bool:
        out = a != 0
    elif dst.is_int:
        # numpy's float->int astype truncates toward zero like C; out-of-range is
        # undefined in the IR and numpy's warning is silenced by the caller.
        out = a.astype(dst.np_dtype)
    elif dst.name == "bf16":
        out = round_bf16(a.astype(F32))
    elif dst.name == "f16":
        # Through f32, like torch and a C compiler that converts via float.
        out = a.astype(F32).astype(F16)
    else:
        out = a.astype(dst.np_dtype)
    return scalarize(out)
