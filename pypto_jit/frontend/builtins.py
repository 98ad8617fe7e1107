"""Lowering rules for the ``pl.*`` builtins: one small rule per builtin.

A rule receives the lowering context and the call's arguments as frontend
values (Python constants or ``Tensor``s) and returns a frontend value.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..ir import Op
from ..ir import types as irt
from ..language.core import dtype as pl_dtype
from .semantic import literal_type
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


def as_dtype(x, what: str = "dtype") -> irt.ScalarType:
    if isinstance(x, pl_dtype):
        return x.ir
    raise SemanticError(f"{what} must be a pl dtype such as pl.float32, got {describe(x)}")


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


# -- memory -----------------------------------------------------------------------
@rule("load")
def _load(lw, pointer, mask=None, other=None):
    p = _pointer(pointer, "pl.load")
    sem = lw.sem
    mask_t = _mask(lw, mask)
    if mask_t is not None:
        shp = _shape_of(p, mask_t)
        p, mask_t = sem.broadcast_to(p, shp), sem.broadcast_to(mask_t, shp)
    operands = [p.value] + ([mask_t.value] if mask_t is not None else [])
    if mask_t is not None and other is not None:
        o = sem.broadcast_to(sem.cast(sem.to_tensor(other), p.scalar), p.shape)
        operands.append(o.value)
    return Tensor(lw.b.typed(Op.LOAD, *operands))


@rule("store")
def _store(lw, pointer, value, mask=None):
    p = _pointer(pointer, "pl.store")
    sem = lw.sem
    v = sem.to_tensor(value, None) if not isinstance(value, Tensor) else value
    if not p.is_block and v.is_block:
        raise SemanticError(f"pl.store of a {v.type} block through a single pointer {p.type}")
    mask_t = _mask(lw, mask)
    shp = _shape_of(p, mask_t) if mask_t is not None else p.shape
    p = sem.broadcast_to(p, shp)
    v = sem.broadcast_to(sem.cast(v, p.scalar), shp)
    operands = [p.value, v.value]
    if mask_t is not None:
        operands.append(sem.broadcast_to(mask_t, shp).value)
    lw.b.typed(Op.STORE, *operands)
    return None


def _pointer(x, what: str) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_ptr:
        raise SemanticError(f"{what} expects a pointer or block of pointers, got {describe(x)}")
    return x


def _mask(lw, mask) -> Tensor | None:
    if mask is None or mask is True:
        return None
    m = lw.sem.to_tensor(mask)
    if not m.scalar.is_bool:
        raise SemanticError(f"mask must be a boolean (int1) block, got {m.type}")
    return m


def _shape_of(*tensors: Tensor) -> tuple[int, ...]:
    from .semantic import broadcast_shapes

    shp: tuple[int, ...] = ()
    for t in tensors:
        shp = broadcast_shapes(shp, t.shape)
    return shp


# -- elementwise ------------------------------------------------------------------
@rule("where")
def _where(lw, condition, x, y):
    return lw.sem.where(condition, x, y)


@rule("cast")
def _cast(lw, input, dtype):  # noqa: A002 - Triton's parameter name
    return lw.sem.cast(input, as_dtype(dtype))


def _math_rule(name: str, op: Op) -> None:
    @rule(name)
    def _math(lw, x):
        return lw.sem.math(op, x, name)


for _name, _op in [("exp", Op.EXP), ("exp2", Op.EXP2), ("log", Op.LOG), ("log2", Op.LOG2),
                   ("sqrt", Op.SQRT), ("rsqrt", Op.RSQRT), ("sin", Op.SIN), ("cos", Op.COS),
                   ("floor", Op.FLOOR), ("ceil", Op.CEIL)]:
    _math_rule(_name, _op)


@rule("abs")
def _abs(lw, x):
    x = lw.sem.to_tensor(x)
    if x.scalar.is_unsigned or x.scalar.is_bool:
        return x
    return lw.sem.unary(Op.ABS, x)


@rule("maximum")
def _maximum(lw, x, y):
    return lw.sem.minmax(Op.MAXIMUM, x, y)


@rule("minimum")
def _minimum(lw, x, y):
    return lw.sem.minmax(Op.MINIMUM, x, y)


@rule("cdiv")
def _cdiv(lw, x, div):
    if not isinstance(x, Tensor) and not isinstance(div, Tensor):
        return -(-const_int(x, "cdiv x") // const_int(div, "cdiv div"))
    total = lw.sem.binary(Op.ADD, x, lw.sem.binary(Op.SUB, div, 1))
    return lw.sem.binary(Op.IDIV, total, div)


# -- compile time ------------------------------------------------------------------
@rule("static_assert")
def _static_assert(lw, cond, msg=""):
    if isinstance(cond, Tensor):
        raise SemanticError("pl.static_assert needs a compile-time condition")
    if not cond:
        raise SemanticError(f"static_assert failed: {msg}" if msg else "static_assert failed")


@rule("static_print")
def _static_print(lw, *values):
    print(*(str(v.type) if isinstance(v, Tensor) else v for v in values))


def literal_or_tensor_type(x) -> irt.ScalarType:
    return x.scalar if isinstance(x, Tensor) else literal_type(x)
