"""Versioning on "the block does not wrap" for ``x % d``.

``offs = (pid * B + arange(B)) % N`` is Triton's idiom for keeping a ragged edge in
bounds. The remainder of a row of consecutive ``x`` is consecutive as long as the row
does not cross a multiple of ``d``; the address analysis cannot know that at compile
time (Triton assumes it from divisibility, which is wrong for negative ``x``), so an
access through such offsets would be a gather.

This pass checks it at run time instead. For a MOD whose ``x`` is unit-stride along
its whole last axis and whose ``d`` is uniform along it, and which would make some
access contiguous, the rest of the MOD's block is split into

    if (every row of x has one quotient x / d, and d != 0) { rest with x - q * d }
    else { rest with x % d }

Truncating division is monotone in ``x``, so equal quotients at a row's first and last
lanes mean one quotient ``q`` for the whole row and ``x % d == x - q * d`` there, which
is unit-stride like ``x``. The else branch is the original code (the gather path). The
then branch keeps the original ops (so a later MOD in it is versioned too); the else
branch is a fresh copy.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.infer import infer
from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import TERMINATORS, Op
from ..ir.types import BlockType, i32, scalar_of
from .address import Info, analyze, contiguous_accesses

# Each versioned MOD copies the rest of its block once: bound the code growth.
_MAX_VERSIONS = 2


def version_nowrap(m: Module) -> Module:
    """``m`` with the rest of the block after each wrap-sensitive MOD versioned."""
    for r in _candidates(m)[:_MAX_VERSIONS]:
        m = replace(m, body=_split(m.body, r))
    return m


def _candidates(m: Module) -> list[Value]:
    """Results of MODs whose not wrapping would make more accesses contiguous."""
    info = analyze(m)
    base = contiguous_accesses(m)
    out = []
    for op in m.walk():
        if op.op is not Op.MOD or not isinstance(op.result.type, BlockType):
            continue
        if not scalar_of(op.result.type).is_int:
            continue
        x, d = (info.get(v, Info()) for v in op.operands)
        last = op.result.type.shape[-1]
        if last < 2 or x.contig != last or d.const != last:
            continue
        assumed = Info(last, 1, min(x.div, d.div))  # x - q * d: runs of x, shifted
        if contiguous_accesses(m, {op.result: assumed}) > base:
            out.append(op.result)
    return out


def _split(block: Block, r: Value) -> Block:
    """``block`` (or the block nested in it that defines ``r``) split after ``r``'s MOD."""
    for i, op in enumerate(block.ops):
        if r in op.results:
            return _version(block, i)
        if op.regions:
            regions = tuple(_split(b, r) for b in op.regions)
            if any(a is not b for a, b in zip(regions, op.regions, strict=True)):
                ops = (*block.ops[:i], replace(op, regions=regions), *block.ops[i + 1 :])
                return Block(block.args, ops)
    return block


def _version(block: Block, i: int) -> Block:
    """``block`` with the ops after its MOD ``ops[i]`` in an IF on the no-wrap check; the
    values they hand to the block's terminator become the IF's results."""
    mod = block.ops[i]
    x, d = mod.operands
    guard, ok, q, dd = _guard(mod, x, d)
    rest = list(block.ops[i + 1 :])
    term = rest.pop() if rest and rest[-1].op in TERMINATORS else None
    defined = {v for op in rest for v in op.results}
    outs = list(dict.fromkeys(v for v in (term.operands if term else ()) if v in defined))
    shift = _shifted(mod, x, q, dd)
    then_ops = substitute(rest, {mod.result: shift[-1].result})
    then_block = Block((), (*shift, *then_ops, _op(mod, Op.YIELD, *outs)))
    fresh: dict[Value, Value] = {}
    else_ops = _clone(rest, fresh)
    else_block = Block((), (*else_ops, _op(mod, Op.YIELD, *(fresh[v] for v in outs))))
    results = tuple(Value(v.type) for v in outs)
    branch = Operation(Op.IF, results, (ok,), regions=(then_block, else_block), loc=mod.loc)
    tail = []
    if term is not None:
        after = dict(zip(outs, results, strict=True))
        tail = [replace(term, operands=tuple(after.get(v, v) for v in term.operands))]
    return Block(block.args, (*block.ops[: i + 1], *guard, branch, *tail))


def _op(at: Operation, code: Op, *operands: Value, declared=None, **attrs) -> Operation:
    """A new op at ``at``'s source location, typed by the IR's type rules."""
    t = None if code is Op.YIELD else infer(code, [v.type for v in operands], attrs, declared)
    results = (Value(t),) if t is not None else ()
    return Operation(code, results, operands, tuple(attrs.items()), loc=at.loc)


def _guard(mod: Operation, x: Value, d: Value) -> tuple[list[Operation], Value, Value, Value]:
    """Ops computing ``ok`` (every row of ``x`` has one quotient by ``d``, and ``d != 0``),
    ``q``, the quotient of each row's first lane, and ``d`` of each row (scalars, or
    ``[..., 1]`` blocks for a block of rows)."""
    t = x.type
    axis, keep = len(t.shape) - 1, len(t.shape) > 1
    ops = [
        _op(mod, Op.REDUCE, x, kind="min", axis=axis, keep_dims=keep),
        _op(mod, Op.REDUCE, x, kind="max", axis=axis, keep_dims=keep),
        _op(mod, Op.REDUCE, d, kind="min", axis=axis, keep_dims=keep),  # d is uniform
    ]
    lo, hi, dd = (o.result for o in ops)
    zero = _op(mod, Op.CONST, declared=scalar_of(dd.type), value=0)
    ops += [_op(mod, Op.IDIV, lo, dd), _op(mod, Op.IDIV, hi, dd), zero]
    q, qhi, z = ops[-3].result, ops[-2].result, zero.result
    if keep:
        ops.append(_op(mod, Op.SPLAT, z, declared=dd.type))
        z = ops[-1].result
    ops.append(_op(mod, Op.EQ, q, qhi))
    ops.append(_op(mod, Op.NE, dd, z))
    ops.append(_op(mod, Op.AND, ops[-2].result, ops[-1].result))
    if keep:  # every row: flatten, widen to i32 and take the min
        ok = ops[-1].result
        ops.append(_op(mod, Op.CAST, ok, declared=BlockType(i32, ok.type.shape)))
        ops.append(_op(mod, Op.RESHAPE, ops[-1].result, declared=BlockType(i32, (ok.type.numel,))))
        ops.append(_op(mod, Op.REDUCE, ops[-1].result, kind="min", axis=0, keep_dims=False))
        zero32 = _op(mod, Op.CONST, declared=i32, value=0)
        ops += [zero32, _op(mod, Op.NE, ops[-1].result, zero32.result)]
    return ops, ops[-1].result, q, dd


def _shifted(mod: Operation, x: Value, q: Value, dd: Value) -> list[Operation]:
    """Ops computing ``x - q * d`` (``x % d`` where no row wraps); the last is the result."""
    prod = _op(mod, Op.MUL, q, dd)
    kind = Op.BROADCAST if isinstance(q.type, BlockType) else Op.SPLAT
    spread = _op(mod, kind, prod.result, declared=x.type)
    return [prod, spread, _op(mod, Op.SUB, x, spread.result)]


def substitute(ops: list[Operation], subst: dict[Value, Value]) -> list[Operation]:
    """``ops`` reading ``subst[v]`` for ``v`` (nested regions too); results are kept."""
    out = []
    for op in ops:
        operands = tuple(subst.get(v, v) for v in op.operands)
        regions = tuple(Block(b.args, tuple(substitute(list(b.ops), subst))) for b in op.regions)
        out.append(replace(op, operands=operands, regions=regions))
    return out


def _clone(ops: list[Operation], fresh: dict[Value, Value]) -> list[Operation]:
    """A copy of ``ops`` with new result and block-argument values (recorded in ``fresh``)."""
    out = []
    for op in ops:
        operands = tuple(fresh.get(v, v) for v in op.operands)
        regions = []
        for b in op.regions:
            args = tuple(Value(a.type) for a in b.args)
            fresh.update(zip(b.args, args, strict=True))
            regions.append(Block(args, tuple(_clone(list(b.ops), fresh))))
        results = tuple(Value(v.type) for v in op.results)
        fresh.update(zip(op.results, results, strict=True))
        out.append(replace(op, results=results, operands=operands, regions=tuple(regions)))
    return out
