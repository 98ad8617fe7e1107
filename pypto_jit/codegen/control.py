"""C rules for structured control flow.

Loop-carried values and if-results live in storage declared before the statement
(C locals and arrays); region block arguments and op results are bound to that
storage, and a terminator becomes a parallel assignment into it.

  FOR   -> ``for (iv = lo; iv < hi; iv += step) { body; carried := yielded }``
  IF    -> ``if (c) { then; res := yielded } else { else; res := yielded }``
  WHILE -> ``for (;;) { before; res := forwarded; if (!c) break; after; carried := yielded }``
"""

from __future__ import annotations

from ..ir.nodes import Operation, Value
from ..ir.ops import Op
from .emitter import Emitter, c_type, rule


def _storage(r: Emitter, values: tuple[Value, ...]) -> list[str]:
    return [r.declare(v, "c") for v in values]


def _terminator(r: Emitter, op: Operation, region: int, expect: Op) -> Operation:
    term = r.block(op.regions[region])
    if term is None or term.op is not expect:
        raise ValueError(f"{op.op} region {region} must end with {expect}")
    return term


@rule(Op.FOR)
def _for(r: Emitter, op: Operation) -> None:
    lo, hi, step, *inits = op.operands
    iv, *carried = op.regions[0].args
    names = _storage(r, tuple(carried))
    r.assign(carried, inits)
    ivn = r.bind(iv, r.fresh("iv"))
    known = r.consts.get(step)
    if known is None:
        cond = f"({r.name(step)} > 0 ? {ivn} < {r.name(hi)} : {ivn} > {r.name(hi)})"
    else:
        cond = f"{ivn} {'<' if known > 0 else '>'} {r.name(hi)}"
    r.open(f"for ({c_type(iv.type)} {ivn} = {r.name(lo)}; {cond}; {ivn} += {r.name(step)}) {{")
    term = _terminator(r, op, 0, Op.YIELD)
    r.assign(carried, term.operands)
    r.close()
    for v, name in zip(op.results, names, strict=True):
        r.bind(v, name)


@rule(Op.IF)
def _if(r: Emitter, op: Operation) -> None:
    _storage(r, op.results)
    r.open(f"if ({r.name(op.operands[0])}) {{")
    r.assign(op.results, _terminator(r, op, 0, Op.YIELD).operands)
    if len(op.regions) > 1 and (op.results or len(op.regions[1].ops) > 1):
        r.close("} else {")
        r.depth += 1
        r.assign(op.results, _terminator(r, op, 1, Op.YIELD).operands)
    r.close()


@rule(Op.WHILE)
def _while(r: Emitter, op: Operation) -> None:
    before, after = op.regions
    _storage(r, before.args)
    r.assign(before.args, op.operands)
    _storage(r, op.results)
    for arg, res in zip(after.args, op.results, strict=True):
        r.bind(arg, r.name(res))
    r.open("for (;;) {")
    cond = _terminator(r, op, 0, Op.CONDITION)
    r.assign(op.results, cond.operands[1:])
    r.emit(f"if (!{r.name(cond.operands[0])}) break;")
    r.assign(before.args, _terminator(r, op, 1, Op.YIELD).operands)
    r.close()
