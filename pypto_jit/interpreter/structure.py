"""Rules for constants, program geometry, tensor layout and block structure."""

from __future__ import annotations

import numpy as np

from ..ir.ops import Op
from ..ir.types import shape
from .numerics import from_python
from .registry import Ptr, lift, register


@register(Op.CONST)
def _const(ctx, op):
    return from_python(op.attr("value"), op.results[0].type)


@register(Op.PROGRAM_ID)
def _program_id(ctx, op):
    return np.int32(ctx.pid[op.attr("axis")])


@register(Op.NUM_PROGRAMS)
def _num_programs(ctx, op):
    return np.int32(ctx.grid[op.attr("axis")])


@register(Op.DIM)
def _dim(ctx, op, tensor: Ptr):
    return np.int64(ctx.tensors[tensor.param].shape[op.attr("axis")])


@register(Op.STRIDE)
def _stride(ctx, op, tensor: Ptr):
    return np.int64(ctx.tensors[tensor.param].strides[op.attr("axis")])


@register(Op.ARANGE)
def _arange(ctx, op):
    return np.arange(op.attr("start"), op.attr("end"), dtype=np.int32)


@register(Op.SPLAT)
def _splat(ctx, op, x):
    shp = shape(op.results[0].type)
    return lift(lambda v: np.full(shp, v, dtype=np.asarray(v).dtype))(x)


@register(Op.BROADCAST)
def _broadcast(ctx, op, x):
    # A read-only view is fine: rules never write into their operands.
    shp = shape(op.results[0].type)
    return lift(lambda v: np.broadcast_to(v, shp))(x)


@register(Op.RESHAPE)
def _reshape(ctx, op, x):
    shp = shape(op.results[0].type)
    return lift(lambda v: np.reshape(v, shp))(x)


@register(Op.EXPAND_DIMS)
def _expand_dims(ctx, op, x):
    axis = op.attr("axis")
    return lift(lambda v: np.expand_dims(np.asarray(v), axis))(x)
