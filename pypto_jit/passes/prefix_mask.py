"""Prefix masks: which STOREs are masked by ``offs < n`` with ``offs`` counting up by one.

The usual Triton store ``pl.store(base + offs, x, mask=offs < n)`` with
``offs = start + pl.arange(0, B)`` writes lanes ``0 .. n - start - 1`` and no others. Its
loop can then stop at that count instead of testing every lane: the lanes it runs are all
active, so the loads of its body masked by the same mask read unconditionally, and gcc
emits plain vector loads and stores (a masked-off tail costs a shorter last vector, not a
compare and a masked access per vector). On an AVX-512 machine that made a bias + GELU
loop about 15% faster.

A STORE gets ``prefix=True`` when it is a contiguous one-row block store (``contig``, a
1-D block) whose mask is ``lt(a, splat(n))`` over i32 lanes, with ``a`` an
``arange`` or ``add`` of one and a splat (either order, nested). The renderer reads the count
from lane 0 of ``a`` and of the splat, and keeps the masked loop for the case it cannot
match exactly (``a``'s int32 lanes would wrap around).
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, scalar_of


def mark_prefix_masks(m: Module) -> Module:
    """``m`` with ``prefix=True`` on the STOREs whose mask is a prefix of the row."""
    defs = {v: op for op in m.walk() for v in op.results}
    return replace(m, body=_block(m.body, defs))


def _block(block: Block, defs: dict[Value, Operation]) -> Block:
    ops = []
    for op in block.ops:
        if op.regions:
            op = replace(op, regions=tuple(_block(r, defs) for r in op.regions))
        elif op.op is Op.STORE and _prefix(op, defs):
            op = op.with_attrs(prefix=True)
        ops.append(op)
    return replace(block, ops=tuple(ops))


def _prefix(op: Operation, defs: dict[Value, Operation]) -> bool:
    if len(op.operands) != 3 or not op.attr("contig"):
        return False
    t = op.operands[0].type
    if not isinstance(t, BlockType) or len(t.shape) != 1:
        return False
    lt = defs.get(op.operands[2])
    if lt is None or lt.op is not Op.LT or scalar_of(lt.operands[0].type).name != "i32":
        return False
    return _counts_up(lt.operands[0], t.shape[0], defs) and _is_op(lt.operands[1], Op.SPLAT, defs)


def _counts_up(v: Value, n: int, defs: dict[Value, Operation]) -> bool:
    """``v``'s lanes are ``v[0] + j`` (before int32 wrap-around) for j in [0, n)."""
    op = defs.get(v)
    if op is None:
        return False
    if op.op is Op.ARANGE:
        return op.attr("end") - op.attr("start") == n
    if op.op is Op.ADD:
        a, b = op.operands
        return (_is_op(a, Op.SPLAT, defs) and _counts_up(b, n, defs)) or (
            _is_op(b, Op.SPLAT, defs) and _counts_up(a, n, defs)
        )
    return False


def _is_op(v: Value, kind: Op, defs: dict[Value, Operation]) -> bool:
    op = defs.get(v)
    return op is not None and op.op is kind
