"""Tensor arguments as flat element views, bounds checks, and the ADDPTR/LOAD/STORE rules.

A pointer addresses element ``o`` of a tensor parameter exactly like a C
pointer would: the byte at ``data + o * itemsize``, whatever the tensor's
strides. Each tensor argument is therefore seen as a 1-D array of ``span``
elements over the caller's memory (a strided view, so stores land in place);
valid offsets are ``[0, span)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import OutOfBoundsError
from ..ir.nodes import Param
from ..ir.ops import Op
from ..ir.types import scalar_of
from .numerics import bf16_bits, bf16_to_f32, scalarize
from .registry import Ptr, as_int64, register


@dataclass
class TensorArg:
    name: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    span: int
    flat: np.ndarray | None  # ``span`` elements; None when no array was passed
    storage: np.dtype  # dtype of ``flat``: the IR type's, raw bits (uint16) for bf16
    bf16: bool


def span_of(shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    if any(d == 0 for d in shape):
        return 0
    return 1 + sum((d - 1) * s for d, s in zip(shape, strides, strict=True))


def bind_tensor(
    param: Param, array: np.ndarray | None, shape: tuple[int, ...], strides: tuple[int, ...]
) -> TensorArg:
    """View ``array`` (the tensor parameter ``param``) as a flat run of elements."""
    if any(s < 0 for s in strides):
        raise ValueError(f"interpreter: tensor {param.name} has negative strides {strides}")
    t = scalar_of(param.type)
    bf16 = t.name == "bf16"
    storage = np.dtype(np.uint16) if bf16 else t.np_dtype
    span = span_of(shape, strides)
    if array is None:
        return TensorArg(param.name, shape, strides, 0, None, storage, bf16)
    if array.dtype.itemsize != storage.itemsize:
        raise TypeError(f"interpreter: tensor {param.name} is {array.dtype}, expected {storage}")
    # Never view past the array's own memory, whatever the slots claim.
    own = span_of(array.shape, tuple(s // array.itemsize for s in array.strides))
    if span > own:
        raise ValueError(f"interpreter: tensor {param.name} spans {span} elements, array has {own}")
    flat = as_strided(array, shape=(span,), strides=(array.itemsize,))
    if flat.dtype != storage:
        flat = flat.view(storage)
    return TensorArg(param.name, shape, strides, span, flat, storage, bf16)


@register(Op.ADDPTR)
def _addptr(ctx, op, ptr: Ptr, off):
    return Ptr(ptr.param, ptr.off + as_int64(off))


def check_bounds(ctx, op, what: str, tensor: TensorArg, off: np.ndarray, mask) -> None:
    bad = (off < 0) | (off >= tensor.span)
    if mask is not None:
        bad &= mask
    if not bad.any():
        return
    index = int(off.reshape(-1)[np.argmax(bad.reshape(-1))])  # first lane, row-major
    valid = f"valid 0..{tensor.span - 1}" if tensor.span else "the tensor is empty"
    raise OutOfBoundsError(
        f"{ctx.where(op)}: {what} {tensor.name}[{index}] out of bounds ({valid}) "
        f"in program {ctx.pid}",
        kernel=ctx.kernel,
        loc=op.loc,
        pid=ctx.pid,
        param=tensor.name,
        index=index,
    )


@register(Op.LOAD)
def _load(ctx, op, ptr: Ptr, mask=None, other=None):
    tensor = ctx.tensors[ptr.param]
    off = np.asarray(ptr.off)
    if mask is not None:
        mask = np.asarray(mask)
    check_bounds(ctx, op, "load from", tensor, off, mask)
    if mask is None:
        raw = tensor.flat[off]
    else:
        # Masked-off lanes are never read: the tensor may be empty or None.
        raw = np.zeros(off.shape, tensor.storage)
        if mask.any():
            raw[mask] = tensor.flat[off[mask]]
    value = bf16_to_f32(raw) if tensor.bf16 else raw
    if other is not None:
        value = np.where(mask, value, other)
    return scalarize(value)


@register(Op.STORE)
def _store(ctx, op, ptr: Ptr, value, mask=None):
    tensor = ctx.tensors[ptr.param]
    off = np.asarray(ptr.off)
    if mask is not None:
        mask = np.asarray(mask)
    check_bounds(ctx, op, "store to", tensor, off, mask)
    raw = bf16_bits(value) if tensor.bf16 else np.asarray(value)
    if mask is None:
        tensor.flat[off] = raw
    elif mask.any():
        tensor.flat[off[mask]] = np.broadcast_to(raw, off.shape)[mask]
    return None
