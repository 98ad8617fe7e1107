"""Lowering rules for shape builtins: reshape, expand_dims, broadcast_to, trans, permute.

Pointer blocks may be reshaped, permuted and broadcast like any other block;
the result keeps the tensor parameter it points into.
"""

from __future__ import annotations

from ..ir import Op
from ..ir import types as irt
from .builtins import const_int, numel, rule, varargs_shape
from .semantic import broadcast_shapes
from .values import SemanticError, Tensor


def _tensor(lw, x) -> Tensor:
    return x if isinstance(x, Tensor) else lw.sem.to_tensor(x)


def _block(lw, x, what: str) -> Tensor:
    t = _tensor(lw, x)
    if not t.is_block:
        raise SemanticError(f"{what} needs a block, got {t.type}")
    return t


def normalize_axis(axis, rank: int, what: str) -> int:
    """``axis`` in ``[0, rank)``; negative axes count from the end, as in numpy."""
    a = const_int(axis, f"{what} axis")
    if not -rank <= a < rank:
        raise SemanticError(f"{what}: axis {a} is out of range for a block of rank {rank}")
    return a % rank


def reshape(lw, x: Tensor, shp: tuple[int, ...]) -> Tensor:
    if numel(x.shape) != numel(shp):
        raise SemanticError(
            f"cannot reshape {x.type} ({numel(x.shape)} elements) to "
            f"{list(shp)} ({numel(shp)} elements)"
        )
    if x.shape == shp:
        return x
    if not x.is_block:
        return lw.sem.broadcast_to(x, shp)
    declared = irt.BlockType(irt.elem(x.type), shp)
    return Tensor(lw.b.typed(Op.RESHAPE, x.value, declared=declared), x.param)


@rule("reshape")
def _reshape(lw, input, *shape, can_reorder=False):  # noqa: A002 - Triton's parameter name
    return reshape(lw, _tensor(lw, input), varargs_shape(shape, "pl.reshape shape"))


@rule("view")
def _view(lw, input, *shape):  # noqa: A002
    return _reshape(lw, input, *shape)


@rule("ravel")
def _ravel(lw, input, can_reorder=False):  # noqa: A002
    x = _tensor(lw, input)
    return reshape(lw, x, (numel(x.shape),))


@rule("expand_dims")
def _expand_dims(lw, input, axis):  # noqa: A002
    x = _tensor(lw, input)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    rank = len(x.shape) + len(axes)
    norm = sorted(normalize_axis(a, rank, "pl.expand_dims") for a in axes)
    if len(set(norm)) != len(norm):
        raise SemanticError(f"pl.expand_dims: repeated axis in {list(axes)}")
    v = x.value
    for a in norm:  # ascending, so each axis lands where the result has it
        v = lw.b.typed(Op.EXPAND_DIMS, v, axis=a)
    return Tensor(v, x.param)


@rule("broadcast_to")
def _broadcast_to(lw, input, *shape):  # noqa: A002
    x = _tensor(lw, input)
    shp = varargs_shape(shape, "pl.broadcast_to shape")
    if len(x.shape) > len(shp) or broadcast_shapes(x.shape, shp) != shp:
        raise SemanticError(f"cannot broadcast {x.type} to shape {list(shp)}")
    return lw.sem.broadcast_to(x, shp)


@rule("broadcast")
def _broadcast(lw, input, other):  # noqa: A002
    a, b = _tensor(lw, input), _tensor(lw, other)
    shp = broadcast_shapes(a.shape, b.shape)
    return lw.sem.broadcast_to(a, shp), lw.sem.broadcast_to(b, shp)


@rule("permute")
def _permute(lw, input, *dims):  # noqa: A002
    x = _block(lw, input, "pl.permute")
    return permute(lw, x, _order(dims, len(x.shape), "pl.permute"))


@rule("trans")
def _trans(lw, input, *dims):  # noqa: A002
    x = _block(lw, input, "pl.trans")
    if not dims:
        if len(x.shape) != 2:
            raise SemanticError(
                f"pl.trans without dims needs a 2-D block, got {x.type}; pass the order of the axes"
            )
        return permute(lw, x, (1, 0))
    return permute(lw, x, _order(dims, len(x.shape), "pl.trans"))


def permute(lw, x: Tensor, order: tuple[int, ...]) -> Tensor:
    if order == tuple(range(len(order))):
        return x
    return Tensor(lw.b.typed(Op.PERMUTE, x.value, order=order), x.param)


def _order(dims: tuple, rank: int, what: str) -> tuple[int, ...]:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    order = tuple(normalize_axis(d, rank, what) for d in dims)
    if sorted(order) != list(range(rank)):
        raise SemanticError(f"{what}: {list(dims)} is not a permutation of the {rank} axes")
    return order
