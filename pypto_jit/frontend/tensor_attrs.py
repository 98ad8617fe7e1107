"""Attributes of tensor values inside a kernel: layout queries and methods.

On a tensor parameter (or a pointer derived from one), ``x.shape[i]``,
``x.stride(i)``, ``x.numel`` and ``x.dtype`` describe the argument's layout;
specialized dimensions are compile-time ints, dynamic ones read the launch
arguments. On blocks, ``.shape`` is the block shape. ``.to(dtype)`` casts.
"""

from __future__ import annotations

from ..ir import Op
from ..ir import types as irt
from ..language import core as lang
from .builtins import as_dtype, const_int
from .values import SemanticError, Tensor


def tensor_attribute(lw, x: Tensor, attr: str):
    from .lowering import _BoundMethod

    if attr == "to":
        return _BoundMethod(lambda dtype, bitcast=False: _to(lw, x, dtype, bitcast))
    if attr == "dtype":
        return lang.BY_IR[x.scalar]
    layout = lw.ctx.layouts.get(x.param) if x.param is not None and not x.is_block else None
    if attr == "shape":
        return _dims(lw, layout, Op.DIM) if layout else x.shape
    if attr == "stride":
        if layout is None:
            raise SemanticError("stride() is defined on tensor parameters only")
        dims = _dims(lw, layout, Op.STRIDE)
        return _BoundMethod(lambda i: dims[const_int(i, "stride axis")])
    if attr == "numel":
        if layout is None:
            numel = 1
            for d in x.shape:
                numel *= d
            return numel
        total = 1
        for d in _dims(lw, layout, Op.DIM):
            both_const = not isinstance(total, Tensor) and not isinstance(d, Tensor)
            total = total * d if both_const else lw.sem.binary(Op.MUL, total, d)
        return total
    if attr == "T":
        raise SemanticError("'.T' is not supported yet")
    raise SemanticError(f"tensor values have no attribute '{attr}'")


def _to(lw, x: Tensor, dtype, bitcast: bool) -> Tensor:
    if bitcast:
        raise SemanticError("bitcast is not supported yet")
    return lw.sem.cast(x, as_dtype(dtype))


def _dims(lw, layout, op: Op) -> tuple:
    """The layout's dims (``op`` DIM) or strides (STRIDE): ints, or i64 values read at launch."""
    value, shape, strides = layout
    known = shape if op is Op.DIM else strides
    return tuple(
        d if d is not None else Tensor(lw.b.typed(op, value, axis=i))
        for i, d in enumerate(known)
    )


__all__ = ["tensor_attribute", "irt"]
