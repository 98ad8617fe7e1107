"""Mask simplification: drop masks proven all-true, delete accesses proven all-off.

A small interval analysis gives every integer value (scalar or block, i1
included) a range ``[lo, hi]`` that holds for every lane and every program:
CONST, ARANGE, SPLAT/BROADCAST/RESHAPE/EXPAND_DIMS, ADD/SUB/MUL/MIN/MAX,
IDIV/MOD by positive divisors, casts, WHERE, the i1 logic ops, PROGRAM_ID in
``[0, 2^31)``, DIM/STRIDE of specialized layouts, and FOR induction variables
(whose last value is known exactly when lower bound and step are constants).
Ops that might wrap get their type's full range.

With it, an i1 op whose range is a single value (a comparison known for every
lane, an AND of such) becomes that constant; a LOAD/STORE whose mask is all-true
loses the mask (and ``other``); an all-false STORE is deleted and an all-false
LOAD becomes ``other`` (or a SPLAT of 0). Masks that depend on run-time values
(``pid * BLOCK + arange < n``) are left alone.
"""

from __future__ import annotations

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import COMPARE, PURE, Op
from ..ir.types import BlockType, ScalarType, elem, i1, scalar_of
from .canonicalize import const_op
from .fold import int_range, normalize
from .rewrite import Rewrite, Rewriter, drop, forward, replace

Range = tuple[int, int]


def mask_simplify(m: Module) -> Module:
    return _MaskSimplify(m).run()


def full_range(v: Value) -> Range | None:
    t = v.type.elem if isinstance(v.type, BlockType) else v.type
    return int_range(t) if isinstance(t, ScalarType) and t.is_int else None


def _fits(r: Range, v: Value) -> Range | None:
    """``r`` if no lane can wrap in ``v``'s type, else the type's full range."""
    full = full_range(v)
    if full is None:
        return None
    return r if full[0] <= r[0] and r[1] <= full[1] else full


class _MaskSimplify(Rewriter):
    def __init__(self, module: Module):
        super().__init__(module)
        self.ranges: dict[Value, Range] = {}

    def rng(self, v: Value) -> Range | None:
        v = self.value(v)
        return self.ranges.get(v) or full_range(v)

    # -- FOR induction variables ------------------------------------------------------------
    def enter_block(self, block: Block, parent: Operation | None) -> None:
        if parent is None or parent.op is not Op.FOR or block is not parent.regions[0]:
            return
        iv = block.args[0]
        r = _iv_range(*(self.rng(v) for v in parent.operands[:3]), full_range(iv))
        if r is not None:
            self.ranges[iv] = r

    # -- ops ------------------------------------------------------------------------------------
    def visit(self, op: Operation) -> Rewrite | None:
        if op.op is Op.LOAD and len(op.operands) > 1:
            return self._load(op)
        if op.op is Op.STORE and len(op.operands) > 2:
            return self._store(op)
        if len(op.results) != 1 or full_range(op.results[0]) is None:
            return None
        r = _transfer(op, [self.rng(v) for v in op.operands], self.module)
        r = _fits(r, op.results[0]) if r is not None else None
        if r is None:
            return None
        self.ranges[op.results[0]] = r
        res = op.results[0]
        known = r[0] == r[1] and elem(res.type) == i1
        if known and op.op in PURE and op.op not in (Op.CONST, Op.SPLAT):
            return replace(*_constant(res, bool(r[0]), op.loc))
        return None

    def _mask_state(self, mask: Value) -> bool | None:
        r = self.rng(mask)
        return None if r is None or r[0] != r[1] else bool(r[0])

    def _load(self, op: Operation) -> Rewrite | None:
        state = self._mask_state(op.operands[1])
        if state is None:
            return None
        if state:
            return replace(Operation(op.op, op.results, op.operands[:1], op.attrs, (), op.loc))
        if len(op.operands) > 2:
            return forward(op.operands[2])  # no lane is read: every lane is `other`
        zero = normalize(0, scalar_of(op.results[0].type))
        return replace(*_constant(op.results[0], zero, op.loc))

    def _store(self, op: Operation) -> Rewrite | None:
        state = self._mask_state(op.operands[2])
        if state is None:
            return None
        if not state:
            return drop()
        return replace(Operation(op.op, (), op.operands[:2], op.attrs, (), op.loc))


def _constant(res: Value, value, loc) -> tuple[Operation, ...]:
    """Ops computing the constant ``value`` into ``res`` (a CONST, SPLAT'd for blocks)."""
    if not isinstance(res.type, BlockType):
        return (const_op(res, value, loc),)
    scalar = Value(res.type.elem)
    return const_op(scalar, value, loc), Operation(Op.SPLAT, (res,), (scalar,), (), (), loc)


def _iv_range(lower, upper, step, full) -> Range | None:
    """Values the induction variable takes inside the body (None: unknown)."""
    if None in (lower, upper, step, full):
        return None
    if step[0] > 0:
        if upper[1] - 1 + step[1] > full[1]:
            return None  # iv += step could wrap past the bound: no claim
        hi = upper[1] - 1
        if lower[0] == lower[1] and step[0] == step[1]:
            # iv = lower + k*step: the last value taken is the last multiple below upper.
            hi = lower[0] + max(0, (hi - lower[0]) // step[0]) * step[0]
        return lower[0], max(lower[0], hi)
    if step[1] < 0:
        if upper[0] + 1 + step[0] < full[0]:
            return None
        lo = upper[0] + 1
        if lower[0] == lower[1] and step[0] == step[1]:
            lo = lower[0] - max(0, (lower[0] - lo) // -step[0]) * -step[0]
        return min(lo, lower[1]), lower[1]
    return None


def _transfer(op: Operation, args: list[Range | None], module: Module) -> Range | None:
    """The range of ``op``'s result from its operands' ranges (None: unknown)."""
    kind = op.op
    if kind is Op.CONST:
        v = normalize(op.attr("value"), op.results[0].type)
        return int(v), int(v)
    if kind is Op.PROGRAM_ID:
        return 0, 2**31 - 1
    if kind is Op.NUM_PROGRAMS:
        return 1, 2**31 - 1
    if kind in (Op.DIM, Op.STRIDE):
        return _layout(op, module)
    if kind is Op.ARANGE:
        return op.attr("start"), op.attr("end") - 1
    if kind in (Op.SPLAT, Op.BROADCAST, Op.RESHAPE, Op.EXPAND_DIMS):
        return args[0]
    if kind is Op.WHERE:
        return _where(*args)
    if None in args:
        return None
    if kind in COMPARE:
        known = _compare(kind, *args)
        return (0, 1) if known is None else (int(known), int(known))
    if kind is Op.CAST:
        return _cast(args[0], op)
    if elem(op.results[0].type) == i1:
        return _logic(kind, args)
    return _arith(kind, args)


def _layout(op: Operation, module: Module) -> Range | None:
    try:
        index = module.body.args.index(op.operands[0])
    except ValueError:
        return None
    param = module.params[index]
    dims = param.shape if op.op is Op.DIM else param.strides
    axis = op.attr("axis")
    if isinstance(axis, int) and axis < len(dims) and isinstance(dims[axis], int):
        return dims[axis], dims[axis]
    return (0, 2**63 - 1) if op.op is Op.DIM else None


def _where(cond: Range | None, a: Range | None, b: Range | None) -> Range | None:
    if cond is not None and cond[0] == cond[1]:
        return a if cond[0] else b
    if a is None or b is None:
        return None
    return min(a[0], b[0]), max(a[1], b[1])


def _cast(a: Range, op: Operation) -> Range | None:
    src = scalar_of(op.operands[0].type)
    if not src.is_int:
        return None
    if elem(op.results[0].type) == i1:  # x != 0
        if a == (0, 0):
            return 0, 0
        return (1, 1) if a[0] > 0 or a[1] < 0 else (0, 1)
    return a  # _fits widens it to the full range if a lane could wrap


def _compare(kind: Op, a: Range, b: Range) -> bool | None:
    """The comparison's value for every pair of lanes, if it is the same for all."""
    (al, ah), (bl, bh) = a, b
    if kind is Op.LT:
        return True if ah < bl else False if al >= bh else None
    if kind is Op.LE:
        return True if ah <= bl else False if al > bh else None
    if kind is Op.GT:
        return True if al > bh else False if ah <= bl else None
    if kind is Op.GE:
        return True if al >= bh else False if ah < bl else None
    disjoint = ah < bl or bh < al
    same = al == ah == bl == bh
    if kind is Op.EQ:
        return True if same else False if disjoint else None
    return True if disjoint else False if same else None  # NE


def _logic(kind: Op, args: list[Range]) -> Range | None:
    """i1 ops: AND/OR are monotone on {0, 1}, so the bounds combine directly."""
    if kind is Op.AND:
        return args[0][0] & args[1][0], args[0][1] & args[1][1]
    if kind is Op.OR:
        return args[0][0] | args[1][0], args[0][1] | args[1][1]
    if kind is Op.NOT:
        return 1 - args[0][1], 1 - args[0][0]
    if kind is Op.XOR and all(lo == hi for lo, hi in args):
        return (args[0][0] ^ args[1][0],) * 2
    return None


def _arith(kind: Op, args: list[Range]) -> Range | None:
    if kind in (Op.ADD, Op.SUB, Op.MUL, Op.MAXIMUM, Op.MINIMUM):
        (al, ah), (bl, bh) = args
        fn = {
            Op.ADD: lambda x, y: x + y, Op.SUB: lambda x, y: x - y,
            Op.MUL: lambda x, y: x * y, Op.MAXIMUM: max, Op.MINIMUM: min,
        }[kind]  # fmt: skip
        # Each is monotone in each argument (MUL per sign), so the corners bound it.
        if kind is Op.SUB:
            corners = [al - bh, ah - bl]
        else:
            corners = [fn(x, y) for x in (al, ah) for y in (bl, bh)]
        return min(corners), max(corners)
    if kind is Op.IDIV and args[1][0] > 0:
        (al, ah), (bl, bh) = args

        def trunc(x: int, y: int) -> int:
            return abs(x) // y * (1 if x >= 0 else -1)

        corners = [trunc(x, y) for x in (al, ah) for y in (bl, bh)]
        return min(corners), max(corners)
    if kind is Op.MOD and args[1][0] > 0:
        (al, ah), (_, bh) = args
        lo = 0 if al >= 0 else max(al, -(bh - 1))
        hi = 0 if ah <= 0 else min(ah, bh - 1)
        return lo, hi
    if kind is Op.AND and (args[0][0] >= 0 or args[1][0] >= 0):
        his = [hi for lo, hi in args if lo >= 0]
        return 0, min(his)
    return None
