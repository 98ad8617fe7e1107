"""``pypto_jit.language`` (imported as ``pl``): the kernel language, Triton's names."""

from .builtins import (
    abs,
    arange,
    cast,
    cdiv,
    ceil,
    cos,
    exp,
    exp2,
    floor,
    full,
    load,
    log,
    log2,
    maximum,
    minimum,
    num_programs,
    program_id,
    rsqrt,
    sin,
    sqrt,
    static_assert,
    static_print,
    store,
    where,
    zeros,
)
from .core import DTYPES, Out, constexpr, dtype

int1 = DTYPES["int1"]
int8 = DTYPES["int8"]
int16 = DTYPES["int16"]
int32 = DTYPES["int32"]
int64 = DTYPES["int64"]
uint8 = DTYPES["uint8"]
uint16 = DTYPES["uint16"]
uint32 = DTYPES["uint32"]
uint64 = DTYPES["uint64"]
float16 = DTYPES["float16"]
bfloat16 = DTYPES["bfloat16"]
float32 = DTYPES["float32"]
float64 = DTYPES["float64"]

__all__ = [
    "Out", "abs", "arange", "bfloat16", "cast", "cdiv", "ceil", "constexpr", "cos", "dtype",
    "exp", "exp2", "float16", "float32", "float64", "floor", "full", "int1", "int8", "int16",
    "int32", "int64", "load", "log", "log2", "maximum", "minimum", "num_programs",
    "program_id", "rsqrt", "sin", "sqrt", "static_assert", "static_print", "store", "uint8",
    "uint16", "uint32", "uint64", "where", "zeros",
]  # fmt: skip
