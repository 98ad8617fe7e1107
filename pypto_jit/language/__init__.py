"""``pypto_jit.language`` (imported as ``pl``): the kernel language, Triton's names.

The random-number functions (``rand``, ``randn``, ``randint``, ``randint4x``,
...) are ``@pypto.jit`` helpers written in the language itself
(``language/random.py``). They are imported on first use, because
``pypto_jit.jit`` imports this package while ``pypto_jit`` is still loading.
"""

import importlib

from .builtins import (  # noqa: A004 - Triton's names shadow Python builtins
    abs,
    arange,
    argmax,
    argmin,
    assume,
    atomic_add,
    atomic_and,
    atomic_cas,
    atomic_max,
    atomic_min,
    atomic_or,
    atomic_xchg,
    atomic_xor,
    broadcast,
    broadcast_to,
    cast,
    cdiv,
    ceil,
    clamp,
    cos,
    cumprod,
    cumsum,
    debug_barrier,
    device_assert,
    device_print,
    div_rn,
    dot,
    erf,
    exp,
    exp2,
    expand_dims,
    fdiv,
    floor,
    fma,
    full,
    full_like,
    load,
    load_tile,
    log,
    log2,
    max,
    max_constancy,
    max_contiguous,
    maximum,
    min,
    minimum,
    multiple_of,
    num_programs,
    permute,
    program_id,
    range,
    ravel,
    reshape,
    rsqrt,
    sigmoid,
    sin,
    sqrt,
    sqrt_rn,
    static_assert,
    static_print,
    static_range,
    store,
    store_tile,
    sum,
    tanh,
    to_tensor,
    trans,
    umulhi,
    view,
    where,
    xor_sum,
    zeros,
    zeros_like,
)
from .core import DTYPES, Out, PropagateNan, constexpr, dtype

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

RANDOM = (
    "randint",
    "randint4x",
    "rand",
    "rand4x",
    "randn",
    "randn4x",
    "philox",
    "philox_impl",
    "uint_to_uniform_float",
    "pair_uniform_to_normal",
)


def __getattr__(name: str):
    if name in RANDOM or name == "random":
        random = importlib.import_module(f"{__name__}.random")
        return random if name == "random" else getattr(random, name)
    raise AttributeError(f"module 'pypto_jit.language' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Out", "PropagateNan", "abs", "arange", "argmax", "argmin", "assume", "atomic_add",
    "atomic_and", "atomic_cas", "atomic_max", "atomic_min", "atomic_or", "atomic_xchg",
    "atomic_xor", "bfloat16", "broadcast", "broadcast_to", "cast", "cdiv", "ceil", "clamp",
    "constexpr", "cos", "cumprod", "cumsum", "debug_barrier", "device_assert", "device_print",
    "div_rn", "dot", "dtype", "erf", "exp", "exp2", "expand_dims", "fdiv", "float16", "float32",
    "float64", "floor", "fma", "full", "full_like", "int1", "int16", "int32", "int64", "int8",
    "load", "load_tile", "log", "log2", "max", "max_constancy", "max_contiguous", "maximum",
    "min", "minimum", "multiple_of", "num_programs", "pair_uniform_to_normal", "permute",
    "philox", "philox_impl", "program_id", "rand", "rand4x", "randint", "randint4x", "randn",
    "randn4x", "range", "ravel", "reshape", "rsqrt", "sigmoid", "sin", "sqrt", "sqrt_rn",
    "static_assert", "static_print", "static_range", "store", "store_tile", "sum", "tanh",
    "to_tensor", "trans", "uint16", "uint32", "uint64", "uint8", "uint_to_uniform_float",
    "umulhi", "view", "where", "xor_sum", "zeros", "zeros_like",
]  # fmt: skip
