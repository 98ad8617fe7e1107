"""Result-type rules for every non-region op: one small rule per op group.

The builder uses these to type new operations and the verifier re-checks them,
so the two can never disagree. Ops whose result type is chosen by the caller
(CONST, CAST, SPLAT, BROADCAST, RESHAPE) instead check that choice.
"""

from __future__ import annotations

from .ops import (
    ATOMIC_KINDS,
    BINARY,
    BITWISE,
    COMPARE,
    FLOAT_UNARY,
    REDUCE_KINDS,
    SCAN_KINDS,
    UNARY,
    Op,
)
from .types import (
    BlockType,
    PtrType,
    ScalarType,
    Type,
    elem,
    i1,
    i32,
    i64,
    is_ptr,
    scalar_of,
    shape,
    with_elem,
)


class IRTypeError(ValueError):
    """Operand or result types violate an op's rule."""


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise IRTypeError(message)


def _same(op: Op, types: list[Type]) -> Type:
    _need(
        all(t == types[0] for t in types),
        f"{op} needs operands of one type, got " + ", ".join(map(str, types)),
    )
    return types[0]


def _broadcastable(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    if len(src) > len(dst):
        return False
    return all(s in (1, d) for s, d in zip(reversed(src), reversed(dst), strict=False))


def infer(op: Op, operands: list[Type], attrs: dict, declared: Type | None = None) -> Type | None:
    """The result type of ``op`` (``None`` for ops without a result).

    ``declared`` is the caller's choice for ops typed by their result.
    """
    if op in UNARY:
        t = operands[0]
        _need(not is_ptr(t), f"{op} on a pointer")
        if op in FLOAT_UNARY:
            _need(scalar_of(t).is_float, f"{op} needs a float operand, got {t}")
        if op is Op.NOT:
            _need(scalar_of(t).is_int, f"{op} needs an integer or boolean operand, got {t}")
        return t
    if op in BINARY:
        t = _same(op, operands)
        _need(not is_ptr(t), f"{op} on pointers")
        if op in BITWISE:
            _need(scalar_of(t).is_int, f"{op} needs integer operands, got {t}")
        if op is Op.DIV:
            _need(scalar_of(t).is_float, f"div needs float operands, got {t}")
        return t
    if op in COMPARE:
        return with_elem(_same(op, operands), i1)
    rule = _RULES.get(op)
    _need(rule is not None, f"no type rule for {op}")
    return rule(operands, attrs, declared)


def _const(operands, attrs, declared):
    _need(isinstance(declared, ScalarType), f"const must be a scalar, got {declared}")
    _need("value" in attrs, "const needs a value")
    return declared


def _grid(operands, attrs, declared):
    _need(attrs.get("axis") in (0, 1, 2), f"axis must be 0, 1 or 2, got {attrs.get('axis')}")
    return i32


def _layout(operands, attrs, declared):
    _need(len(operands) == 1 and isinstance(operands[0], PtrType), "dim/stride need a tensor")
    return i64


def _arange(operands, attrs, declared):
    start, end = attrs.get("start"), attrs.get("end")
    _need(
        isinstance(start, int) and isinstance(end, int) and end > start,
        f"arange needs int start < end, got {start}, {end}",
    )
    return BlockType(i32, (end - start,))


def _splat(operands, attrs, declared):
    _need(not isinstance(operands[0], BlockType), "splat needs a scalar")
    _need(
        isinstance(declared, BlockType) and declared.elem == operands[0],
        f"splat of {operands[0]} cannot give {declared}",
    )
    return declared


def _broadcast(operands, attrs, declared):
    src = operands[0]
    _need(
        isinstance(declared, BlockType)
        and elem(src) == declared.elem
        and _broadcastable(shape(src), declared.shape),
        f"cannot broadcast {src} to {declared}",
    )
    return declared


def _reshape(operands, attrs, declared):
    src = operands[0]
    _need(
        isinstance(src, BlockType)
        and isinstance(declared, BlockType)
        and src.elem == declared.elem
        and src.numel == declared.numel,
        f"cannot reshape {src} to {declared}",
    )
    return declared


def _expand_dims(operands, attrs, declared):
    src, axis = operands[0], attrs.get("axis")
    shp = shape(src)
    _need(isinstance(axis, int) and 0 <= axis <= len(shp), f"bad expand_dims axis {axis}")
    return BlockType(elem(src), shp[:axis] + (1,) + shp[axis:])


def _cast(operands, attrs, declared):
    _need(
        declared is not None and shape(declared) == shape(operands[0]),
        f"cast cannot change the shape: {operands[0]} -> {declared}",
    )
    _need(is_ptr(declared) == is_ptr(operands[0]), "cast between pointers and numbers")
    return declared


def _addptr(operands, attrs, declared):
    p, off = operands
    _need(is_ptr(p), f"addptr needs a pointer, got {p}")
    _need(not is_ptr(off) and scalar_of(off).is_int, f"pointer offset must be an integer: {off}")
    _need(shape(p) == shape(off), f"addptr shapes differ: {p} vs {off}")
    return p


def _load(operands, attrs, declared):
    p = operands[0]
    _need(is_ptr(p), f"load needs pointers, got {p}")
    value_t = with_elem(p, scalar_of(p))
    if len(operands) > 1:
        _need(operands[1] == with_elem(p, i1), f"load mask must be {with_elem(p, i1)}")
    if len(operands) > 2:
        _need(operands[2] == value_t, f"load other must be {value_t}, got {operands[2]}")
    return value_t


def _store(operands, attrs, declared):
    p, v = operands[0], operands[1]
    _need(is_ptr(p), f"store needs pointers, got {p}")
    _need(v == with_elem(p, scalar_of(p)), f"store of {v} through {p}")
    if len(operands) > 2:
        _need(operands[2] == with_elem(p, i1), f"store mask must be {with_elem(p, i1)}")
    return None


def _where(operands, attrs, declared):
    c, a, b = operands
    _need(a == b, f"where branches differ: {a} vs {b}")
    _need(c == with_elem(a, i1), f"where condition must be {with_elem(a, i1)}, got {c}")
    return a


def _fma(operands, attrs, declared):
    t = _same(Op.FMA, operands)
    _need(not is_ptr(t) and scalar_of(t).is_float, f"fma needs float operands, got {t}")
    return t


def _bitcast(operands, attrs, declared):
    src = operands[0]
    _need(
        declared is not None
        and shape(declared) == shape(src)
        and not is_ptr(declared)
        and not is_ptr(src)
        and scalar_of(declared).bits == scalar_of(src).bits,
        f"bitcast needs a same-width, same-shape type: {src} -> {declared}",
    )
    return declared


def _permute(operands, attrs, declared):
    src, order = operands[0], attrs.get("order")
    shp = shape(src)
    _need(
        isinstance(order, tuple) and sorted(order) == list(range(len(shp))) and len(shp) > 0,
        f"permute order {order} is not a permutation of the axes of {src}",
    )
    return BlockType(elem(src), tuple(shp[i] for i in order))


def _reduced_shape(src: Type, attrs: dict) -> tuple[int, ...]:
    shp, axis = shape(src), attrs.get("axis")
    _need(
        isinstance(src, BlockType) and isinstance(axis, int) and 0 <= axis < len(shp),
        f"axis {axis} is out of range for {src}",
    )
    if attrs.get("keep_dims"):
        return shp[:axis] + (1,) + shp[axis + 1 :]
    return shp[:axis] + shp[axis + 1 :]


def _reduce(operands, attrs, declared):
    src, kind = operands[0], attrs.get("kind")
    _need(kind in REDUCE_KINDS, f"unknown reduction {kind!r}")
    _need(not is_ptr(src), "reduction of pointers")
    if kind in ("and", "or", "xor"):
        _need(scalar_of(src).is_int, f"reduction {kind} needs integers, got {src}")
    e = i32 if kind in ("argmax", "argmin") else scalar_of(src)
    shp = _reduced_shape(src, attrs)
    return BlockType(e, shp) if shp else e


def _scan(operands, attrs, declared):
    src = operands[0]
    _need(attrs.get("kind") in SCAN_KINDS, f"unknown scan {attrs.get('kind')!r}")
    _reduced_shape(src, attrs)  # checks the axis
    _need(not is_ptr(src), "scan of pointers")
    return src


def _dot(operands, attrs, declared):
    a, b, acc = operands
    ok = all(isinstance(t, BlockType) and len(t.shape) == 2 for t in operands)
    _need(ok, f"dot needs 2-D blocks, got {a}, {b}, {acc}")
    (m, k), (k2, n) = a.shape, b.shape
    _need(
        k == k2 and acc.shape == (m, n),
        f"dot shapes do not agree: [{m},{k}] x [{k2},{n}] -> {list(acc.shape)}",
    )
    _need(a.elem == b.elem and not is_ptr(a), f"dot operands differ: {a.elem} vs {b.elem}")
    return acc


def _atomic_rmw(operands, attrs, declared):
    p, v = operands[0], operands[1]
    _need(attrs.get("kind") in ATOMIC_KINDS, f"unknown atomic {attrs.get('kind')!r}")
    _need(is_ptr(p) and v == with_elem(p, scalar_of(p)), f"atomic of {v} through {p}")
    if len(operands) > 2:
        _need(operands[2] == with_elem(p, i1), f"atomic mask must be {with_elem(p, i1)}")
    return v


def _atomic_cas(operands, attrs, declared):
    p, cmp, v = operands
    value_t = with_elem(p, scalar_of(p))
    _need(is_ptr(p) and cmp == value_t and v == value_t, f"atomic_cas of {v} through {p}")
    return v


def _device_assert(operands, attrs, declared):
    _need(
        scalar_of(operands[0]) == i1, f"device_assert needs a boolean condition, got {operands[0]}"
    )
    return None


def _print(operands, attrs, declared):
    return None


_RULES = {
    Op.CONST: _const, Op.PROGRAM_ID: _grid, Op.NUM_PROGRAMS: _grid,
    Op.DIM: _layout, Op.STRIDE: _layout, Op.ARANGE: _arange, Op.SPLAT: _splat,
    Op.BROADCAST: _broadcast, Op.RESHAPE: _reshape, Op.EXPAND_DIMS: _expand_dims,
    Op.CAST: _cast, Op.ADDPTR: _addptr, Op.LOAD: _load, Op.STORE: _store, Op.WHERE: _where,
    Op.FMA: _fma, Op.BITCAST: _bitcast, Op.PERMUTE: _permute, Op.REDUCE: _reduce,
    Op.SCAN: _scan, Op.DOT: _dot, Op.ATOMIC_RMW: _atomic_rmw, Op.ATOMIC_CAS: _atomic_cas,
    Op.DEVICE_ASSERT: _device_assert, Op.PRINT: _print,
}  # fmt: skip
