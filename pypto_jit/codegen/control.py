"""C rules for structured control flow.

Loop-carried values and if-results live in storage declared before the statement
(C locals and arrays); region block arguments and op results are bound to that
storage, and a terminator becomes a parallel assignment into it.

  FOR   -> ``for (iv = lo; iv < hi; iv += step) { body; carried := yielded }`` (preceded by
           a loop over the iterations whose prefix masks are full, see ``full_blocks``:
           ``if (iv < hi && full) do { body; carried := yielded; iv += step } while (...)``)
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
    full = full_blocks(r, op)
    if full:  # iterations whose prefix masks are all full first, as a loop of their own
        r.emit(f"{c_type(iv.type)} {ivn} = {r.name(lo)};")
        test = f"{cond} && {' && '.join(full.values())}"
        r.open(f"if ({test}) do {{")
        with r.assume_true(full):
            r.assign(carried, _terminator(r, op, 0, Op.YIELD).operands)
        r.emit(f"{ivn} += {r.name(step)};")
        r.close(f"}} while ({test});")
        r.open(f"for (; {cond}; {ivn} += {r.name(step)}) {{")
    else:
        r.open(f"for ({c_type(iv.type)} {ivn} = {r.name(lo)}; {cond}; {ivn} += {r.name(step)}) {{")
    r.assign(carried, _terminator(r, op, 0, Op.YIELD).operands)
    r.close()
    for v, name in zip(op.results, names, strict=True):
        r.bind(v, name)


def full_blocks(r: Emitter, op: Operation) -> dict[Value, str]:
    """The prefix masks of a FOR body that are ``(iv + arange) < n`` with ``n`` from outside
    the body or ``iv`` itself (Triton's ``cols = off + pl.arange(0, B); mask = cols < N``),
    each with the C test that it is full at the current iteration, made before the body.

    A loop over the columns of a row has full blocks in every iteration but the last. Those
    run as a loop of their own with the masks known true: no masked remainder is left in it,
    so gcc keeps block accumulators in registers across iterations (a layer-norm row: about
    20% fewer cycles). It stops at the first iteration that is not all full, and the loop
    after it, the usual body, runs the rest. It is a ``do``-``while`` behind the same test:
    its body then runs at least once wherever its exits are, so gcc writes the registers
    back to the accumulators after it unconditionally, instead of keeping a flag per
    accumulator (set on every iteration) of whether the loop ran at all (3-5% fewer cycles).
    """
    body = op.regions[0]
    iv = body.args[0]
    inside = {v for inner in body.walk() for v in inner.results} | set(body.args[1:])
    defs = r.defs
    tests: dict[Value, str] = {}
    for o in body.ops:
        if o.op is not Op.LT or not o.attr("prefix"):
            continue
        a, bound = o.operands
        start = _iv_offset(a, iv, defs, r)
        b = defs.get(bound)
        if start is None or b is None or b.op is not Op.SPLAT or b.operands[0] in inside:
            continue
        n = a.type.shape[0]
        tests[o.result] = f"pypto_prefix({start}, {r.name(b.operands[0])}, {n}) == {n}"
    return tests


def _iv_offset(a: Value, iv: Value, defs: dict, r: Emitter) -> str | None:
    """C for lane 0 of ``a`` if it is ``splat(iv) + arange`` (either order), else None."""
    add = defs.get(a)
    if add is None or add.op is not Op.ADD:
        return None
    x, y = (defs.get(v) for v in add.operands)
    if x is not None and x.op is Op.ARANGE:
        x, y = y, x
    if x is None or y is None or x.op is not Op.SPLAT or y.op is not Op.ARANGE:
        return None
    if x.operands[0] is not iv:
        return None
    return f"(int32_t)((uint32_t)({r.name(iv)}) + (uint32_t)({y.attr('start')}))"


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
