"""Attributes of tensor values inside a kernel: layout queries and methods.

On a tensor parameter (or a pointer derived from one), ``x.shape[i]``,
``x.stride(i)``, ``x.numel`` and ``x.dtype`` describe the argument's layout;
specialized dimensions are compile-time ints, dynamic ones read the launch
arguments. On blocks, ``.shape`` is the block shape. ``.to(dtype)`` casts, ``.T``
transposes, and the builtins Triton offers as methods (``x.sum(0)``,
``x.reshape(...)``) are available as methods.
"""

from __future__ import annotations

from ..ir import Op
from ..ir import types as irt
from ..language import core as lang
from .builtins import call_builtin, const_int
from .values import SemanticError, Tensor

METHODS = frozenset({
    "reshape", "view", "ravel", "trans", "permute", "expand_dims", "broadcast_to",
    "sum", "max", "min", "argmax", "argmin", "xor_sum", "cumsum", "cumprod",
    "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "abs", "sin", "cos", "floor", "ceil",
    "erf", "tanh", "sigmoid", "fma", "umulhi", "cdiv", "zeros_like",
})  # fmt: skip


def tensor_attribute(lw, x: Tensor, attr: str):
    from .lowering import _BoundMethod

    if attr == "to":
        return _BoundMethod(
            lambda dtype, fp_downcast_rounding=None, bitcast=False: call_builtin(
                lw, "cast", [x, dtype, fp_downcast_rounding, bitcast], {}
            )
        )
    if attr in METHODS:  # x.sum(axis=0) is pl.sum(x, axis=0)
        return _BoundMethod(lambda *args, **kwargs: call_builtin(lw, attr, [x, *args], kwargs))
    if attr == "T":
        return call_builtin(lw, "trans", [x], {})
    if attr == "dtype":
        return lang.BY_IR[x.scalar]
    layout = lw.ctx.layouts.get(x.param) if x.param is not None and not x.is_block else None
    if attr == "shape":
        return layout_dims(lw, layout, Op.DIM) if layout else x.shape
    if attr == "stride":
        if layout is None:
            raise SemanticError("stride() is defined on tensor parameters only")
        dims = layout_dims(lw, layout, Op.STRIDE)
        return _BoundMethod(lambda i: dims[const_int(i, "stride axis")])
    if attr == "numel":
        if layout is None:
            numel = 1
            for d in x.shape:
                numel *= d
            return numel
        total = 1
        for d in layout_dims(lw, layout, Op.DIM):
            both_const = not isinstance(total, Tensor) and not isinstance(d, Tensor)
            total = total * d if both_const else lw.sem.binary(Op.MUL, total, d)
        return total
    raise SemanticError(f"tensor values have no attribute '{attr}'")


def layout_dims(lw, layout, op: Op) -> tuple:
    """The layout's dims (``op`` DIM) or strides (STRIDE): ints, or i64 values read at launch."""
    value, shape, strides = layout
    known = shape if op is Op.DIM else strides
    return tuple(
        d if d is not None else Tensor(lw.b.typed(op, value, axis=i)) for i, d in enumerate(known)
    )


__all__ = ["tensor_attribute", "irt"]
