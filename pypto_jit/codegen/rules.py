"""C rules for geometry, block-structure and elementwise ops.

Memory ops live in ``memory.py``, control flow in ``control.py``.
"""

from __future__ import annotations

from ..ir.nodes import Operation
from ..ir.ops import BINARY, COMPARE, UNARY, Op
from ..ir.types import BlockType, elem, is_ptr, scalar_of
from . import exprs
from .ctype import literal
from .emitter import Emitter, c_type, rule

# -- geometry -------------------------------------------------------------------------


@rule(Op.CONST)
def _const(r: Emitter, op: Operation) -> None:
    v, value = op.result, op.attr("value")
    r.consts[v] = value
    name = r.bind(v, r.fresh())
    r.emit(f"const {c_type(v.type)} {name} = {literal(value, v.type)};")


@rule(Op.PROGRAM_ID)
def _program_id(r: Emitter, op: Operation) -> None:
    r.scalar(op.result, f"(int32_t)pid{op.attr('axis')}")


@rule(Op.NUM_PROGRAMS)
def _num_programs(r: Emitter, op: Operation) -> None:
    r.scalar(op.result, f"(int32_t)ctx->grid[{op.attr('axis')}]")


@rule(Op.DIM, Op.STRIDE)
def _layout(r: Emitter, op: Operation) -> None:
    k, axis = r.param_of[op.operands[0]], op.attr("axis")
    param = r.module.params[k]
    known = (param.shape if op.op is Op.DIM else param.strides)[axis]
    rank = len(param.shape)
    slot = r.slots[k] + 1 + axis + (rank if op.op is Op.STRIDE else 0)
    r.scalar(op.result, f"INT64_C({known})" if known is not None else f"iargs[{slot}]")


# -- block structure --------------------------------------------------------------------


@rule(Op.ARANGE)
def _arange(r: Emitter, op: Operation) -> None:
    v = op.result
    name = r.declare(v)
    r.loop(v.type.numel, f"{name}[i] = (int32_t)(INT64_C({op.attr('start')}) + i);")


@rule(Op.SPLAT)
def _splat(r: Emitter, op: Operation) -> None:
    v = op.result
    name = r.declare(v)
    r.loop(v.type.numel, f"{name}[i] = {r.name(op.operands[0])};")


@rule(Op.RESHAPE)
def _reshape(r: Emitter, op: Operation) -> None:
    r.bind(op.result, r.name(op.operands[0]))  # row-major data does not move


@rule(Op.EXPAND_DIMS)
def _expand_dims(r: Emitter, op: Operation) -> None:
    src = op.operands[0]
    if isinstance(src.type, BlockType):
        r.bind(op.result, r.name(src))
    else:
        name = r.declare(op.result)
        r.emit(f"{name}[0] = {r.name(src)};")


@rule(Op.BROADCAST)
def _broadcast(r: Emitter, op: Operation) -> None:
    src, v = op.operands[0], op.result
    if not isinstance(src.type, BlockType):
        return _splat(r, op)
    if src.type.numel == v.type.numel:  # only unit dims added: same data
        return _expand_dims(r, op)
    dshape = v.type.shape
    sshape = (1,) * (len(dshape) - len(src.type.shape)) + src.type.shape
    strides, acc = [], 1
    for s in reversed(sshape):
        strides.append(acc if s != 1 else 0)
        acc *= s
    _strided_copy(r, r.declare(v), r.name(src), dshape, tuple(reversed(strides)))


def _strided_copy(r: Emitter, dst: str, src: str, dshape, sstrides) -> None:
    """``dst`` (row-major over ``dshape``) gets ``src[sum(idx * sstrides)]``."""
    dims: list[tuple[int, int]] = []  # (size, source stride), unit dims dropped, merged
    for d, s in zip(dshape, sstrides, strict=True):
        if d == 1:
            continue
        if dims and dims[-1][1] == s * d:  # outer dim continues the inner one
            dims[-1] = (dims[-1][0] * d, s)
        else:
            dims.append((d, s))
    if not dims:
        r.emit(f"{dst}[0] = {src}[0];")
        return
    dst_strides, acc = [], 1
    for d, _ in reversed(dims):
        dst_strides.append(acc)
        acc *= d
    dst_strides.reverse()
    idx = [f"i{k}" for k in range(len(dims))]
    d_ix = " + ".join(f"{i} * {s}" for i, s in zip(idx, dst_strides, strict=True))
    s_ix = " + ".join(f"{i} * {s}" for i, (_, s) in zip(idx, dims, strict=True)) or "0"
    for k, (d, _) in enumerate(dims[:-1]):
        r.open(f"for (int64_t i{k} = 0; i{k} < {d}; ++i{k}) {{")
    r.loop(dims[-1][0], f"{dst}[{d_ix}] = {src}[{s_ix}];", var=idx[-1])
    for _ in dims[:-1]:
        r.close()


# -- elementwise -------------------------------------------------------------------------


@rule(*UNARY)
def _unary(r: Emitter, op: Operation) -> None:
    t = scalar_of(op.operands[0].type)
    r.elementwise(op, lambda a: exprs.unary(op.op, t, a))


@rule(*(BINARY | COMPARE))
def _binary(r: Emitter, op: Operation) -> None:
    st = scalar_of(op.operands[0].type)  # comparisons of pointers compare their offsets
    r.elementwise(op, lambda a, b: exprs.binary(op.op, st, a, b))


@rule(Op.WHERE)
def _where(r: Emitter, op: Operation) -> None:
    r.elementwise(op, exprs.where)


@rule(Op.CAST)
def _cast(r: Emitter, op: Operation) -> None:
    src, dst = op.operands[0].type, op.result.type
    if is_ptr(src):
        if elem(src) != elem(dst):
            raise NotImplementedError("no C rule for op 'cast' between pointer element types")
        r.bind(op.result, r.name(op.operands[0]))
        return
    a, b = scalar_of(src), scalar_of(dst)
    r.elementwise(op, lambda x: exprs.cast(a, b, x))
