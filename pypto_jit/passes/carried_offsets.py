"""Pointer blocks that a loop advances by a uniform step become one scalar offset.

Triton's K loop carries its pointer blocks and advances them every step,
``a_ptrs += BLOCK_K * stride_ak``: every lane moves by the same amount. Carried as a
block, that is a stored array of int64 offsets that each step reads and rewrites
(128 KiB for a 256 x 64 tile). This pass carries the sum of the steps instead, a
scalar ``o`` (i64), and uses ``p0 + o`` for the block, where ``p0`` is the block the
loop started with: a loop-invariant block that the renderer computes where its lanes
are read (a contiguous load needs one lane per row).

A carried pointer block qualifies when the loop yields ``addptr(p, splat(s))`` of its
own argument ``p``. Pointers are int64 offsets, so summing the steps in i64 first gives
the same offsets.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.infer import infer
from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, i64, is_ptr
from .nowrap import substitute
from .rewrite import Rewrite, Rewriter
from .rewrite import replace as rewrite_as


def carry_offsets(m: Module) -> Module:
    """``m`` with uniformly stepped pointer blocks of FOR loops carried as offsets."""
    return _Offsets(m).run()


def _op(at: Operation, code: Op, *operands: Value, declared=None, **attrs) -> Operation:
    t = infer(code, [v.type for v in operands], attrs, declared)
    return Operation(code, (Value(t),), operands, tuple(attrs.items()), loc=at.loc)


def _at(at: Operation, base: Value, offset: Value) -> list[Operation]:
    """``base + splat(offset)``: the pointer block ``base`` moved by a scalar offset."""
    spread = _op(at, Op.SPLAT, offset, declared=BlockType(i64, base.type.shape))
    return [spread, _op(at, Op.ADDPTR, base, spread.result)]


class _Offsets(Rewriter):
    def visit(self, op: Operation) -> Rewrite | None:
        if op.op is not Op.FOR:
            return None
        body = op.regions[0]
        inside = {r: o for o in body.ops for r in o.results}
        picks = {}  # carried index -> (the step op that yields it, its scalar step)
        for j, (arg, y) in enumerate(zip(body.args[1:], body.ops[-1].operands, strict=True)):
            step = inside.get(y)
            if not (isinstance(arg.type, BlockType) and is_ptr(arg.type)) or step is None:
                continue
            if step.op is Op.ADDPTR and step.operands[0] is arg:
                spread = inside.get(step.operands[1]) or self.def_of(step.operands[1])
                if spread is not None and spread.op is Op.SPLAT:
                    picks[j] = (step, spread.operands[0])
        return self._rewrite(op, picks) if picks else None

    def _rewrite(self, op: Operation, picks: dict) -> Rewrite:
        body, inits = op.regions[0], list(op.operands[3:])
        zero = _op(op, Op.CONST, declared=i64, value=0)
        args, yields = list(body.args), list(body.ops[-1].operands)
        head: list[Operation] = []
        subst: dict[Value, Value] = {}
        steps: dict[Operation, list[Operation]] = {}
        for j, (step, scalar) in picks.items():
            base, offset = inits[j], Value(i64)
            args[1 + j], inits[j] = offset, zero.result
            head += _at(op, base, offset)
            subst[body.args[1 + j]] = head[-1].result
            widen = [] if scalar.type == i64 else [_op(step, Op.CAST, scalar, declared=i64)]
            total = _op(step, Op.ADD, offset, widen[-1].result if widen else scalar)
            steps[step] = [*widen, total, *_at(step, base, total.result)]
            subst[step.result] = steps[step][-1].result
            yields[j] = total.result
        ops = [new for o in body.ops[:-1] for new in steps.get(o, [o])]
        term = replace(body.ops[-1], operands=tuple(yields))
        new_body = Block(tuple(args), (*head, *substitute([*ops, term], subst)))
        results, values, after = list(op.results), list(op.results), []
        for j in picks:
            results[j] = Value(i64)
            after += _at(op, op.operands[3 + j], results[j])
            values[j] = after[-1].result
        loop = replace(
            op, results=tuple(results), operands=(*op.operands[:3], *inits), regions=(new_body,)
        )
        return rewrite_as(zero, loop, *after, values=tuple(values))
