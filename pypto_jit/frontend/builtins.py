"""Lowering rules for the ``pl.*`` builtins: one small rule per builtin.

A rule receives the lowering context and the call's arguments as frontend
values (Python constants or ``Tensor``s) and returns a frontend value. Its
signature is the builtin's (Triton's), so arguments bind exactly as they do in
Triton. This file holds the registry, shared helpers, block creation, casts
and the compile-time and debugging builtins; the other rules live in
``rules_*.py`` (imported at the bottom so that they register).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..ir import Op
from ..ir import types as irt
from ..language.core import dtype as pl_dtype
from .semantic import broadcast_shapes, literal_type
from .values import SemanticError, Tensor, describe

RULES: dict[str, Callable] = {}


def rule(name: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        RULES[name] = fn
        return fn

    return register


def call_builtin(lw, name: str, args: list, kwargs: dict):
    fn = RULES.get(name)
    if fn is None:
        raise SemanticError(f"pl.{name} is not supported yet")
    try:
        bound = inspect.signature(fn).bind(lw, *args, **kwargs)
    except TypeError as e:
        raise SemanticError(f"pl.{name}(): {e}") from None
    return fn(*bound.args, **bound.kwargs)


# -- helpers -------------------------------------------------------------------
def const_int(x, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise SemanticError(f"{what} must be a compile-time integer, got {describe(x)}")
    return x


def const_bool(x, what: str) -> bool:
    if not isinstance(x, (bool, int)):
        raise SemanticError(f"{what} must be a compile-time boolean, got {describe(x)}")
    return bool(x)


def const_shape(shape, what: str = "shape") -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, (tuple, list)) or not dims:
        raise SemanticError(
            f"{what} must be a tuple of compile-time integers, got {describe(shape)}"
        )
    out = tuple(const_int(d, what) for d in dims)
    if any(d < 1 for d in out):
        raise SemanticError(f"{what} dimensions must be positive, got {list(out)}")
    return out


def varargs_shape(dims: tuple, what: str) -> tuple[int, ...]:
    """``f(x, (M, N))`` and ``f(x, M, N)`` are both accepted, as in Triton."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return const_shape(dims, what)


def as_dtype(x, what: str = "dtype") -> irt.ScalarType:
    if isinstance(x, pl_dtype):
        return x.ir
    raise SemanticError(f"{what} must be a pl dtype such as pl.float32, got {describe(x)}")


def numeric(lw, x, what: str) -> Tensor:
    """``x`` as a tensor that is not a pointer."""
    t = lw.sem.to_tensor(x)
    if t.is_ptr:
        raise SemanticError(f"{what} is not defined on pointers, got {t.type}")
    return t


def shape_of(*tensors: Tensor) -> tuple[int, ...]:
    shp: tuple[int, ...] = ()
    for t in tensors:
        shp = broadcast_shapes(shp, t.shape)
    return shp


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# -- program geometry ----------------------------------------------------------------
@rule("program_id")
def _program_id(lw, axis=0):
    return Tensor(lw.b.typed(Op.PROGRAM_ID, axis=_axis(axis)))


@rule("num_programs")
def _num_programs(lw, axis=0):
    return Tensor(lw.b.typed(Op.NUM_PROGRAMS, axis=_axis(axis)))


def _axis(axis) -> int:
    axis = const_int(axis, "axis")
    if axis not in (0, 1, 2):
        raise SemanticError(f"axis must be 0, 1 or 2, got {axis}")
    return axis


# -- block creation -----------------------------------------------------------------
@rule("arange")
def _arange(lw, start, end):
    start, end = const_int(start, "arange start"), const_int(end, "arange end")
    if end <= start:
        raise SemanticError(f"pl.arange({start}, {end}): end must be greater than start")
    if end > 2**31 - 1:
        raise SemanticError(f"pl.arange end {end} does not fit in int32")
    return Tensor(lw.b.typed(Op.ARANGE, start=start, end=end))


@rule("full")
def _full(lw, shape, value, dtype):
    shp, t = const_shape(shape), as_dtype(dtype)
    return lw.sem.broadcast_to(lw.sem.to_tensor(value, t), shp)


@rule("zeros")
def _zeros(lw, shape, dtype):
    return _full(lw, shape, 0, dtype)


@rule("full_like")
def _full_like(lw, input, value, dtype=None):  # noqa: A002 - Triton's parameter name
    x = numeric(lw, input, "pl.full_like")
    t = as_dtype(dtype) if dtype is not None else x.scalar
    return lw.sem.broadcast_to(lw.sem.to_tensor(value, t), x.shape)


@rule("zeros_like")
def _zeros_like(lw, input):  # noqa: A002
    return _full_like(lw, input, 0)


@rule("to_tensor")
def _to_tensor(lw, x):
    return lw.sem.to_tensor(x)


# -- casts --------------------------------------------------------------------------
@rule("where")
def _where(lw, condition, x, y):
    return lw.sem.where(condition, x, y)


@rule("cast")
def _cast(lw, input, dtype, fp_downcast_rounding=None, bitcast=False):  # noqa: A002
    t = as_dtype(dtype)
    if fp_downcast_rounding not in (None, "rtne"):
        raise SemanticError(
            f"fp_downcast_rounding={fp_downcast_rounding!r} is not supported; "
            "casts round to nearest even"
        )
    if not const_bool(bitcast, "bitcast"):
        return lw.sem.cast(input, t)
    x = numeric(lw, input, "bitcast")
    if x.scalar == t:
        return x
    if x.scalar.bits != t.bits or t.is_bool:
        raise SemanticError(f"cannot bitcast {x.scalar} to {t}: the widths differ")
    return Tensor(lw.b.typed(Op.BITCAST, x.value, declared=irt.with_elem(x.type, t)))


# -- compile time, hints and debugging --------------------------------------------------
@rule("static_assert")
def _static_assert(lw, cond, msg=""):
    if isinstance(cond, Tensor):
        raise SemanticError("pl.static_assert needs a compile-time condition")
    if not cond:
        raise SemanticError(f"static_assert failed: {msg}" if msg else "static_assert failed")


@rule("static_print")
def _static_print(lw, *values):
    print(*(str(v.type) if isinstance(v, Tensor) else v for v in values))


@rule("device_print")
def _device_print(lw, prefix, *args, hex=False):  # noqa: A002 - Triton's parameter name
    if not isinstance(prefix, str):
        raise SemanticError(f"pl.device_print: the prefix must be a string, got {describe(prefix)}")
    if hex:
        raise SemanticError("pl.device_print(hex=True) is not supported")
    values = [numeric(lw, a, "pl.device_print").value for a in args]
    lw.b.typed(Op.PRINT, *values, prefix=prefix)


@rule("device_assert")
def _device_assert(lw, cond, msg="", mask=None):
    if not isinstance(msg, str):
        raise SemanticError(f"pl.device_assert: the message must be a string, got {describe(msg)}")
    if not isinstance(cond, Tensor) and cond and mask is None:
        return  # statically true
    c = numeric(lw, cond, "pl.device_assert")
    if not c.scalar.is_bool:
        c = lw.sem.compare(Op.NE, c, 0)
    if mask is not None:  # masked-off lanes pass
        m = numeric(lw, mask, "pl.device_assert mask")
        if not m.scalar.is_bool:
            raise SemanticError(f"mask must be a boolean (int1) block, got {m.type}")
        c = lw.sem.binary(Op.OR, c, lw.sem.unary(Op.NOT, m))
    lw.b.typed(Op.DEVICE_ASSERT, c.value, msg=msg)


def _hint_rule(name: str) -> None:
    @rule(name)
    def _hint(lw, input, values):  # noqa: A002
        items = values if isinstance(values, (tuple, list)) else (values,)
        for v in items:
            const_int(v, f"pl.{name} value")
        return input  # a hint only: the address pass derives what it needs itself

    _hint.__name__ = f"_{name}"


for _name in ("multiple_of", "max_contiguous", "max_constancy"):
    _hint_rule(_name)


@rule("assume")
def _assume(lw, cond):
    return None  # a hint for the optimizer; nothing to check at run time


@rule("debug_barrier")
def _debug_barrier(lw):
    return None  # the programs of a grid never share a block of threads


def _loop_only(name: str) -> None:
    @rule(name)
    def _iterable(lw, *args, **kwargs):
        raise SemanticError(f"pl.{name}(...) can only be used as the iterable of a 'for' loop")


for _name in ("range", "static_range"):
    _loop_only(_name)


def literal_or_tensor_type(x) -> irt.ScalarType:
    return x.scalar if isinstance(x, Tensor) else literal_type(x)


# The remaining rules register themselves on import.
from . import rules_math, rules_memory, rules_reduce, rules_shape  # noqa: E402, F401
