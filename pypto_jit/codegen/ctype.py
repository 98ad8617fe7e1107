"""C spellings of IR scalar types and constants.

Two C types per IR scalar type: the *register* type that temporaries and locals use,
and the *memory* type of tensor elements. They differ for i1 (``uint8_t`` 0/1 in
registers: gcc vectorizes byte masks but not ``_Bool`` ones) and for f16/bf16 (16-bit
patterns in memory, ``float`` in registers, rounded to the type after every op).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..ir.types import ScalarType

_REG = {
    "i1": "uint8_t", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "i64": "int64_t",
    "u8": "uint8_t", "u16": "uint16_t", "u32": "uint32_t", "u64": "uint64_t",
    "f16": "float", "bf16": "float", "f32": "float", "f64": "double",
}  # fmt: skip
_MEM = {**_REG, "f16": "uint16_t", "bf16": "uint16_t"}


def reg(t: ScalarType) -> str:
    """C type of a value of ``t`` held in a local or a temporary array."""
    return _REG[t.name]


def mem(t: ScalarType) -> str:
    """C type of a tensor element of type ``t``."""
    return _MEM[t.name]


def wide_unsigned(t: ScalarType) -> str:
    """Unsigned type that integer arithmetic on ``t`` is done in (no UB, wraps)."""
    return "uint64_t" if t.bits == 64 else "uint32_t"


def round_bf16(x: float) -> float:
    """``x`` rounded to bfloat16 (through f32, nearest even), as a Python float."""
    if math.isnan(x):
        return x
    (u,) = struct.unpack("<I", struct.pack("<f", float(np.float32(x))))
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return struct.unpack("<f", struct.pack("<I", u & 0xFFFFFFFF))[0]


def _float_literal(x: float, t: ScalarType) -> str:
    if t.name == "f16":
        x = float(np.float32(x).astype(np.float16))  # through f32, like CAST
    elif t.name == "bf16":
        x = round_bf16(x)
    elif t.name == "f32":
        x = float(np.float32(x))
    cast = "(double)" if t.name == "f64" else "(float)"
    if math.isnan(x):
        return f"{cast}NAN"
    if math.isinf(x):
        return f"{cast}INFINITY" if x > 0 else f"-{cast}INFINITY"
    # The shortest repr of the double parses back to it, and to the same float: x is one.
    text = repr(x)
    if "e" not in text and "." not in text:
        text += ".0"
    return text + ("" if t.name == "f64" else "f")


def literal(value: int | float | bool, t: ScalarType) -> str:
    """A C expression of register type ``reg(t)`` for the constant ``value``."""
    if t.is_float:
        return _float_literal(float(value), t)
    if t.is_bool:
        return "1" if value else "0"
    v = int(value) % (1 << t.bits)  # wrap into the type, as two's complement
    if t.is_signed and v >= 1 << (t.bits - 1):
        v -= 1 << t.bits
    if t.name == "i64":
        return "INT64_MIN" if v == -(1 << 63) else f"INT64_C({v})"
    if t.name == "u64":
        return f"UINT64_C({v})"
    return f"({reg(t)}){v}" if v < 0 or t.bits < 32 else f"{v}{'u' if t.is_unsigned else ''}"


def c_string(text: str) -> str:
    """A C string literal for ``text`` (UTF-8; escapes quotes, backslashes, controls)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":  # '?' could start a trigraph
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


# Bytes per element of the C types block arrays are declared with (stack accounting).
C_SIZES = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "uint32_t": 4, "int32_t": 4}
C_SIZES |= {"float": 4, "uint64_t": 8, "int64_t": 8, "double": 8}
