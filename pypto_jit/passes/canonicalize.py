"""Canonicalization: constant folding, algebraic identities, trivial control flow.

* Scalar CONST arithmetic, comparisons and casts fold with the IR's exact
  semantics (``fold.py``); what cannot be folded exactly stays.
* An elementwise op whose operands are all SPLATs becomes the scalar op and one
  SPLAT of its result, so scalar work stays scalar (and then folds).
* Identities that hold bit for bit: x+0, x-0, x*1, x*0 (ints only), x|0, x^0,
  x&~0, x&0, shifts by 0, x/1; for floats only x+(-0.0), x-(+0.0), x*1.0, x/1.0.
  where(const, a, b), where(c, a, a), cast to the same type, BROADCAST/RESHAPE
  to the same type, and BROADCAST/RESHAPE/EXPAND_DIMS of a SPLAT (a SPLAT).
* FOR with a constant zero trip count becomes its inits; IF with a constant
  condition is replaced by the ops of the region taken.
"""

from __future__ import annotations

import math

from ..ir.nodes import Module, Operation, Value
from ..ir.ops import BINARY, COMPARE, ELEMENTWISE, UNARY, Op
from ..ir.types import BlockType, ScalarType, elem
from . import fold
from .rewrite import Rewrite, Rewriter, forward, replace


def canonicalize(m: Module) -> Module:
    return _Canonicalize(m).run()


def const_op(result: Value, value: fold.Number, loc) -> Operation:
    return Operation(Op.CONST, (result,), (), (("value", value),), (), loc)


class _Canonicalize(Rewriter):
    def visit(self, op: Operation) -> Rewrite | None:
        if op.op in ELEMENTWISE:
            return self._fold(op) or self._scalarize(op) or self._identity(op)
        if op.op in (Op.BROADCAST, Op.RESHAPE, Op.EXPAND_DIMS):
            return self._structure(op)
        if op.op is Op.FOR:
            return self._for(op)
        if op.op is Op.IF:
            return self._if(op)
        return None

    # -- what a value is known to be ------------------------------------------------------
    def scalar_const(self, v: Value) -> fold.Number | None:
        """The value of a scalar CONST, else None."""
        d = self.def_of(v)
        if d is None or d.op is not Op.CONST or not isinstance(v.type, ScalarType):
            return None
        return fold.normalize(d.attr("value"), v.type)

    def uniform_const(self, v: Value) -> fold.Number | None:
        """The value every lane of ``v`` holds when it is a CONST or a SPLAT of one."""
        d = self.def_of(v)
        if d is not None and d.op is Op.SPLAT:
            return self.scalar_const(d.operands[0])
        return self.scalar_const(v)

    # -- elementwise --------------------------------------------------------------------------
    def _fold(self, op: Operation) -> Rewrite | None:
        if not isinstance(op.results[0].type, ScalarType) or op.op is Op.WHERE:
            return None
        args = [self.scalar_const(v) for v in op.operands]
        if any(a is None for a in args):
            return None
        t = op.operands[0].type
        if op.op in UNARY:
            r = fold.fold_unary(op.op, t, args[0])
        elif op.op in BINARY:
            r = fold.fold_binary(op.op, t, *args)
        elif op.op in COMPARE:
            r = fold.fold_compare(op.op, t, *args)
        else:  # CAST
            r = fold.fold_cast(t, op.results[0].type, args[0])
        return None if r is None else replace(const_op(op.results[0], r, op.loc))

    def _scalarize(self, op: Operation) -> Rewrite | None:
        res = op.results[0]
        if not isinstance(res.type, BlockType):
            return None
        defs = [self.def_of(v) for v in op.operands]
        if not all(d is not None and d.op is Op.SPLAT for d in defs):
            return None
        scalar = Value(elem(res.type))
        scalar_op = Operation(
            op.op, (scalar,), tuple(d.operands[0] for d in defs), op.attrs, (), op.loc
        )
        return replace(scalar_op, Operation(Op.SPLAT, (res,), (scalar,), (), (), op.loc))

    def _identity(self, op: Operation) -> Rewrite | None:
        if op.op is Op.CAST:
            x = op.operands[0]
            return forward(x) if x.type == op.results[0].type else None
        if op.op is Op.WHERE:
            c, a, b = op.operands
            if a is b:
                return forward(a)
            taken = self.uniform_const(c)
            return None if taken is None else forward(a if taken else b)
        if op.op not in BINARY:
            return None
        a, b = op.operands
        t = elem(a.type)
        ca, cb = self.uniform_const(a), self.uniform_const(b)
        kept = (
            _int_identity(op.op, t, a, b, ca, cb)
            if t.is_int
            else _float_identity(op.op, a, b, ca, cb)
        )
        return None if kept is None else forward(kept)

    # -- block structure ------------------------------------------------------------------------
    def _structure(self, op: Operation) -> Rewrite | None:
        x, res = op.operands[0], op.results[0]
        if x.type == res.type and op.op is not Op.EXPAND_DIMS:
            return forward(x)
        d = self.def_of(x)
        if d is not None and d.op is Op.SPLAT:
            return replace(Operation(Op.SPLAT, (res,), d.operands, (), (), op.loc))
        if d is not None and d.op is op.op and op.op is not Op.EXPAND_DIMS:
            # reshape(reshape(y)) and broadcast(broadcast(y)) go straight from y.
            return replace(Operation(op.op, (res,), d.operands, op.attrs, (), op.loc))
        return None

    # -- control flow ---------------------------------------------------------------------------
    def _for(self, op: Operation) -> Rewrite | None:
        lower, upper, step = (self.scalar_const(v) for v in op.operands[:3])
        if lower is None or upper is None or not step:
            return None  # a zero step is the run time's error to report, not ours to hide
        empty = lower >= upper if step > 0 else lower <= upper
        return forward(*op.operands[3:]) if empty else None

    def _if(self, op: Operation) -> Rewrite | None:
        cond = self.scalar_const(op.operands[0])
        if cond is None:
            return None
        region = op.regions[0 if cond else 1]
        if not region.ops or region.ops[-1].op is not Op.YIELD:
            return None
        return Rewrite(region.ops[:-1], region.ops[-1].operands)


def _int_identity(op: Op, t: ScalarType, a: Value, b: Value, ca, cb) -> Value | None:
    """The operand ``op(a, b)`` always equals, for integers (``ca``/``cb``: constants or None)."""
    if t.is_bool and op not in (Op.AND, Op.OR, Op.XOR):
        return None
    ones = fold.wrap(-1, t)
    if op in (Op.ADD, Op.OR, Op.XOR) and (ca == 0 or cb == 0):
        return a if cb == 0 else b
    if op is Op.OR and (ca == ones or cb == ones):
        return a if ca == ones else b  # x | ~0 is the all-ones operand
    if op is Op.SUB:
        return a if cb == 0 else None
    if op is Op.MUL:
        # x*0 is the zero operand itself: a value of the right type, no new op needed.
        return a if cb == 1 or ca == 0 else b if ca == 1 or cb == 0 else None
    if op is Op.IDIV:
        return a if cb == 1 else None
    if op is Op.AND:
        return a if cb == ones or ca == 0 else b if ca == ones or cb == 0 else None
    if op in (Op.SHL, Op.SHR):
        return a if cb is not None and cb % t.bits == 0 else None
    return None


def _float_identity(op: Op, a: Value, b: Value, ca, cb) -> Value | None:
    """Float identities exact for every input, signed zeros and NaN included."""

    def is_zero(c, negative: bool) -> bool:
        return c is not None and c == 0.0 and (math.copysign(1.0, c) < 0) == negative

    if op is Op.ADD:  # x + (-0.0) is x; x + (+0.0) turns -0.0 into +0.0
        return a if is_zero(cb, True) else b if is_zero(ca, True) else None
    if op is Op.SUB:
        return a if is_zero(cb, False) else None
    if op is Op.MUL:
        return a if cb == 1.0 else b if ca == 1.0 else None
    if op is Op.DIV:
        return a if cb == 1.0 else None
    return None
