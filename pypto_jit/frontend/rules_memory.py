"""Lowering rules for memory builtins: load/store, atomics, and tile loads/stores.

Tiles (``pl.load_tile`` / ``pl.store_tile``) need no IR op of their own: they
become the pointer arithmetic a Triton user would write by hand -- one
``arange`` per axis times the tensor's stride -- plus a bounds mask built from
the tensor's shape, so they profit from every pass that handles plain loads.
"""

from __future__ import annotations

from ..ir import Op
from ..ir import types as irt
from .builtins import const_shape, numel, rule, shape_of
from .values import SemanticError, Tensor, describe


# -- load / store ---------------------------------------------------------------------
@rule("load")
def _load(lw, pointer, mask=None, other=None, boundary_check=(), padding_option="",
          cache_modifier="", eviction_policy="", volatile=False):  # fmt: skip
    _no_block_pointers(boundary_check, padding_option)
    p = _pointer(pointer, "pl.load")
    sem = lw.sem
    mask_t = _mask(lw, mask)
    if mask_t is not None:
        shp = shape_of(p, mask_t)
        p, mask_t = sem.broadcast_to(p, shp), sem.broadcast_to(mask_t, shp)
    operands = [p.value] + ([mask_t.value] if mask_t is not None else [])
    if mask_t is not None and other is not None:
        o = sem.broadcast_to(sem.cast(sem.to_tensor(other), p.scalar), p.shape)
        operands.append(o.value)
    return Tensor(lw.b.typed(Op.LOAD, *operands))


@rule("store")
def _store(lw, pointer, value, mask=None, boundary_check=(), cache_modifier="", eviction_policy=""):
    _no_block_pointers(boundary_check, "")
    p = _pointer(pointer, "pl.store")
    sem = lw.sem
    v = _value(lw, p, value, "pl.store")
    mask_t = _mask(lw, mask)
    shp = shape_of(p, mask_t) if mask_t is not None else p.shape
    p = sem.broadcast_to(p, shp)
    v = sem.broadcast_to(v, shp)
    operands = [p.value, v.value]
    if mask_t is not None:
        operands.append(sem.broadcast_to(mask_t, shp).value)
    lw.b.typed(Op.STORE, *operands)
    return None


def _no_block_pointers(boundary_check, padding_option) -> None:
    if boundary_check or padding_option:
        raise SemanticError(
            "boundary_check/padding_option belong to block pointers, which are "
            "not supported; use pl.load_tile(t, offsets, shape, padding=...)"
        )


def _pointer(x, what: str) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_ptr:
        raise SemanticError(f"{what} expects a pointer or block of pointers, got {describe(x)}")
    return x


def _value(lw, p: Tensor, value, what: str) -> Tensor:
    """The value stored through ``p``, converted to its element type."""
    v = lw.sem.to_tensor(value) if not isinstance(value, Tensor) else value
    if v.is_ptr:
        raise SemanticError(f"{what} of a pointer value {v.type}")
    if not p.is_block and v.is_block:
        raise SemanticError(f"{what} of a {v.type} block through a single pointer {p.type}")
    return lw.sem.cast(v, p.scalar)


def _mask(lw, mask) -> Tensor | None:
    if mask is None or mask is True:
        return None
    m = lw.sem.to_tensor(mask)
    if not m.scalar.is_bool:
        raise SemanticError(f"mask must be a boolean (int1) block, got {m.type}")
    return m


# -- atomics --------------------------------------------------------------------------
_SEMS = (None, "acquire", "release", "acq_rel", "relaxed")
_SCOPES = (None, "gpu", "cta", "sys")


def _atomic_rule(kind: str) -> None:
    name = f"atomic_{kind}"

    @rule(name)
    def _atomic(lw, pointer, val, mask=None, sem=None, scope=None):
        return _atomic_rmw(lw, kind, pointer, val, mask, sem, scope)

    _atomic.__name__ = f"_{name}"


for _kind in ("add", "max", "min", "and", "or", "xor", "xchg"):
    _atomic_rule(_kind)


def _atomic_operands(lw, what: str, pointer, sem, scope, mask) -> tuple[Tensor, Tensor | None]:
    if sem not in _SEMS:
        raise SemanticError(f"{what}: sem must be one of {', '.join(map(str, _SEMS[1:]))}")
    if scope not in _SCOPES:
        raise SemanticError(f"{what}: scope must be one of {', '.join(map(str, _SCOPES[1:]))}")
    p = _pointer(pointer, what)
    m = _mask(lw, mask)
    if m is not None:
        p = lw.sem.broadcast_to(p, shape_of(p, m))
        m = lw.sem.broadcast_to(m, p.shape)
    return p, m


def _atomic_rmw(lw, kind: str, pointer, val, mask, sem, scope) -> Tensor:
    what = f"pl.atomic_{kind}"
    p, m = _atomic_operands(lw, what, pointer, sem, scope, mask)
    t = p.scalar
    if kind in ("and", "or", "xor") and (not t.is_int or t.is_bool):
        raise SemanticError(f"{what} needs integer elements, got a pointer to {t}")
    if kind in ("add", "max", "min") and t.is_bool:
        raise SemanticError(f"{what} is not defined on booleans")
    v = lw.sem.broadcast_to(_value(lw, p, val, what), p.shape)
    operands = [p.value, v.value] + ([m.value] if m is not None else [])
    return Tensor(lw.b.typed(Op.ATOMIC_RMW, *operands, kind=kind))


@rule("atomic_cas")
def _atomic_cas(lw, pointer, cmp, val, sem=None, scope=None):
    p, _ = _atomic_operands(lw, "pl.atomic_cas", pointer, sem, scope, None)
    c = lw.sem.broadcast_to(_value(lw, p, cmp, "pl.atomic_cas"), p.shape)
    v = lw.sem.broadcast_to(_value(lw, p, val, "pl.atomic_cas"), p.shape)
    return Tensor(lw.b.typed(Op.ATOMIC_CAS, p.value, c.value, v.value))


# -- tiles ------------------------------------------------------------------------------
@rule("load_tile")
def _load_tile(lw, tensor, offsets, shape, padding=0):
    base, layout = _tile_tensor(lw, tensor, "pl.load_tile")
    shp = const_shape(shape, "pl.load_tile shape")
    ptrs, mask = _tile_pointers(lw, base, layout, offsets, shp, "pl.load_tile")
    if padding == "zero":
        padding = 0
    elif padding == "nan":
        padding = float("nan")
    if not isinstance(padding, (bool, int, float, Tensor)):
        raise SemanticError(f"pl.load_tile padding must be a number, got {describe(padding)}")
    return _load(lw, ptrs, mask, padding if mask is not None else None)


@rule("store_tile")
def _store_tile(lw, tensor, offsets, value):
    base, layout = _tile_tensor(lw, tensor, "pl.store_tile")
    v = lw.sem.to_tensor(value) if not isinstance(value, Tensor) else value
    if not v.is_block:
        raise SemanticError(
            f"pl.store_tile needs a block value (its shape is the tile's), got {v.type}"
        )
    ptrs, mask = _tile_pointers(lw, base, layout, offsets, v.shape, "pl.store_tile")
    return _store(lw, ptrs, v, mask)


def _tile_tensor(lw, x, what: str) -> tuple[Tensor, tuple]:
    layout = lw.ctx.layouts.get(x.param) if isinstance(x, Tensor) and x.param is not None else None
    if layout is None or x.value is not layout[0]:
        raise SemanticError(
            f"{what} needs a tensor parameter (its shape and strides give the "
            f"tile's bounds), got {describe(x)}"
        )
    return x, layout


def _tile_pointers(lw, base: Tensor, layout, offsets, shp, what: str):
    """Pointers to the tile at ``offsets`` of shape ``shp`` and the mask of its in-bounds lanes."""
    from .tensor_attrs import layout_dims

    dims, strides = layout_dims(lw, layout, Op.DIM), layout_dims(lw, layout, Op.STRIDE)
    offs = tuple(offsets) if isinstance(offsets, (tuple, list)) else (offsets,)
    if not (len(offs) == len(shp) == len(dims)):
        raise SemanticError(
            f"{what}: the tensor has {len(dims)} dimensions but the tile has "
            f"{len(offs)} offsets and a {len(shp)}-D shape"
        )
    for o in offs:
        if isinstance(o, Tensor):
            if o.is_block or not o.scalar.is_int or o.scalar.is_bool:
                raise SemanticError(f"{what} offsets must be integer scalars, got {o.type}")
        elif isinstance(o, bool) or not isinstance(o, int):
            raise SemanticError(f"{what} offsets must be integers, got {describe(o)}")
    it = _index_type(offs, dims, strides, shp)
    sem = lw.sem
    total, mask = None, None
    for axis, (o, size, dim, stride) in enumerate(zip(offs, shp, dims, strides, strict=True)):
        idx = sem.cast(Tensor(lw.b.typed(Op.ARANGE, start=0, end=size)), it)
        if not (isinstance(o, int) and o == 0):
            idx = sem.binary(Op.ADD, idx, sem.cast(o, it))
        idx = _along(lw, idx, axis, len(shp))
        if isinstance(stride, Tensor):
            term = sem.binary(Op.MUL, idx, sem.cast(stride, it))
        else:
            term = idx if stride == 1 else sem.binary(Op.MUL, idx, stride)
        total = term if total is None else sem.binary(Op.ADD, total, term)
        for check in _bounds(lw, idx, o, size, dim):
            mask = check if mask is None else sem.binary(Op.AND, mask, check)
    ptrs = sem.binary(Op.ADD, base, sem.broadcast_to(total, shp))
    return ptrs, (sem.broadcast_to(mask, shp) if mask is not None else None)


def _along(lw, idx: Tensor, axis: int, rank: int) -> Tensor:
    """A 1-D index block as a rank-``rank`` block laid along ``axis`` (size 1 elsewhere)."""
    v = idx.value
    for a in range(rank):
        if a != axis:
            v = lw.b.typed(Op.EXPAND_DIMS, v, axis=a)
    return Tensor(v)


def _bounds(lw, idx: Tensor, offset, size: int, dim) -> list[Tensor]:
    """The lane checks ``0 <= idx < dim`` that are not known to hold at compile time."""
    checks = []
    if not (isinstance(offset, int) and offset >= 0):
        checks.append(lw.sem.compare(Op.GE, idx, 0))
    if not (isinstance(offset, int) and isinstance(dim, int) and offset + size <= dim):
        checks.append(lw.sem.compare(Op.LT, idx, dim))
    return checks


def _index_type(offs, dims, strides, shp) -> irt.ScalarType:
    """i32 when every in-bounds element offset provably fits in it, else i64.

    Lanes outside the tensor may overflow in i32, but they are masked off.
    """
    for x in (*offs, *dims, *strides):
        if isinstance(x, Tensor) and (x.scalar.bits > 32 or x.scalar.is_unsigned):
            return irt.i64
    if any(isinstance(d, Tensor) for d in (*dims, *strides)):
        return irt.i64
    extent = sum((d - 1) * abs(s) for d, s in zip(dims, strides, strict=True) if d > 0)
    limit = 2**31 - 1
    consts = [abs(o) + s for o, s in zip(offs, shp, strict=True) if isinstance(o, int)]
    if extent >= limit or numel(shp) >= limit or any(c >= limit for c in consts):
        return irt.i64
    return irt.i32
