"""C rules for geometry, block-structure and elementwise ops.

Memory ops live in ``memory.py``, control flow in ``control.py``.
"""

from __future__ import annotations

from ..ir.nodes import Operation, Value
from ..ir.ops import BINARY, COMPARE, UNARY, Op
from ..ir.types import BlockType, elem, is_ptr, scalar_of
from ..passes.fusion import cheap, own_loop_exp
from . import exprs, vector
from .ctype import literal
from .emitter import Emitter, Lanes, c_type, rule

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
    start = op.attr("start")
    r.bind_lanes(op.result, Lanes(lambda ix: f"(int32_t)(INT64_C({start}) + ({ix}))", frozenset()))


@rule(Op.SPLAT)
def _splat(r: Emitter, op: Operation) -> None:
    r.bind_lanes(op.result, r.lanes_of(lambda s: s, op.operands))


@rule(Op.RESHAPE, Op.EXPAND_DIMS)
def _same_data(r: Emitter, op: Operation) -> None:
    """Row-major lanes do not move: the result reads the source's lane at the same index."""
    src = op.operands[0]
    if not isinstance(op.result.type, BlockType):  # a pointer cast to its own type
        r.bind(op.result, r.name(src))
    elif r.is_virtual(src) or r.is_pending(src) or not isinstance(src.type, BlockType):
        r.bind_lanes(op.result, r.lanes_of(lambda s: s, (src,)))
    else:
        r.bind(op.result, r.name(src))


@rule(Op.BROADCAST)
def _broadcast(r: Emitter, op: Operation) -> None:
    src, v = op.operands[0], op.result
    if not isinstance(src.type, BlockType) or src.type.numel == v.type.numel:
        return _same_data(r, op)  # a splat, or only unit dims added
    dshape = v.type.shape
    sshape = (1,) * (len(dshape) - len(src.type.shape)) + src.type.shape
    strides, acc = [], 1
    for s in reversed(sshape):
        strides.append(acc if s != 1 else 0)
        acc *= s
    _strided_copy(r, r.declare(v), src, dshape, tuple(reversed(strides)))


@rule(Op.PERMUTE)
def _permute(r: Emitter, op: Operation) -> None:
    src, order = op.operands[0], op.attr("order")
    strides, acc = [], 1
    for d in reversed(src.type.shape):
        strides.append(acc)
        acc *= d
    strides.reverse()
    sstrides = tuple(strides[a] for a in order)
    _strided_copy(r, r.declare(op.result), src, op.result.type.shape, sstrides)


def _strided_copy(r: Emitter, dst: str, src: Value, dshape, sstrides) -> None:
    """``dst`` (row-major over ``dshape``) gets lane ``sum(idx * sstrides)`` of ``src``."""
    dims: list[tuple[int, int]] = []  # (size, source stride), unit dims dropped, merged
    for d, s in zip(dshape, sstrides, strict=True):
        if d == 1:
            continue
        if dims and dims[-1][1] == s * d:  # outer dim continues the inner one
            dims[-1] = (dims[-1][0] * d, s)
        else:
            dims.append((d, s))
    if not dims:
        r.emit(f"{dst}[0] = {r.lane(src, '0')};")
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
        r.open(f"for (int32_t i{k} = 0; i{k} < {d}; ++i{k}) {{")
    r.loop(dims[-1][0], f"{dst}[{d_ix}] = {r.lane(src, s_ix)};", var=idx[-1])
    for _ in dims[:-1]:
        r.close()


# -- elementwise -------------------------------------------------------------------------


@rule(*UNARY)
def _unary(r: Emitter, op: Operation) -> None:
    t = scalar_of(op.operands[0].type)
    if own_loop_exp(op) and op.attr("fuse") is None:
        _exp_block(r, op)
        return
    r.elementwise(op, lambda a: exprs.unary(op.op, t, a))


def _exp_block(r: Emitter, op: Operation) -> None:
    """An f32 EXP block: its argument's lanes into its array, then ``pypto_expf_n`` on the
    array (explicit vector code, which a loop gcc vectorizes cannot call inline) -- or, on
    cpu, both in one pass over chunks of 16 lanes (``vector.exp_rows``)."""
    (x,) = op.operands
    name = r.declare(op.result)
    if vector.exp_rows(r, x, name):
        return
    r.for_lanes(op.result.type, lambda ix: f"{name}[{ix}] = {r.lane(x, ix)};", r.cols(x))
    r.emit(f"pypto_expf_n({name}, {op.result.type.numel});")


@rule(*(BINARY | COMPARE))
def _binary(r: Emitter, op: Operation) -> None:
    st = scalar_of(op.operands[0].type)  # comparisons of pointers compare their offsets
    r.elementwise(op, lambda a, b: exprs.binary(op.op, st, a, b), cheap=cheap(op))


@rule(Op.WHERE)
def _where(r: Emitter, op: Operation) -> None:
    r.elementwise(op, exprs.where, cheap=cheap(op))


@rule(Op.FMA)
def _fma(r: Emitter, op: Operation) -> None:
    t = scalar_of(op.result.type)
    r.elementwise(op, lambda a, b, c: exprs.fma(t, a, b, c))


@rule(Op.BITCAST)
def _bitcast(r: Emitter, op: Operation) -> None:
    a, b = scalar_of(op.operands[0].type), scalar_of(op.result.type)
    r.elementwise(op, lambda x: exprs.bitcast(a, b, x), cheap=cheap(op))


@rule(Op.CAST)
def _cast(r: Emitter, op: Operation) -> None:
    src, dst = op.operands[0].type, op.result.type
    if is_ptr(src):
        if elem(src) != elem(dst):
            raise NotImplementedError("no C rule for op 'cast' between pointer element types")
        return _same_data(r, op)
    a, b = scalar_of(src), scalar_of(dst)
    r.elementwise(op, lambda x: exprs.cast(a, b, x), cheap=cheap(op))
