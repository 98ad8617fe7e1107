"""Fusion analysis: which block values are computed inside the loop of the op that reads them.

The C renderer gives every block value one of three forms:

* *virtual* (``cheap(op)``): recomputed wherever a lane is read -- index arithmetic,
  masks, pointer offsets, f32/f64 add/sub/mul, views (reshape, expand_dims, splat);
* *fused* (``fuse="inline"``, this pass): no array; each lane is computed once, as a
  local at the top of the body of the one loop that reads it, its *sink*;
* *stored*: an array, filled by a loop of its own -- or, with ``fuse="first"`` (this
  pass), by the body of its first sink's loop, so that the producer and its first
  consumer are one pass over the block and the later consumers read the array.

The *sinks* of a value are the non-virtual ops that read it, directly or through
virtual ops (a ``first`` op passes on its own first sink: that is where its lanes, and
so its operands' lanes, are computed). A value can be fused (``inline``) when it has
one sink, or fill its array in its first sink (``first``) when it has several, if
that sink is an op whose loops read every lane of the value exactly once, in the same
block (not in a nested region, which would compute the value once per iteration):
stored elementwise ops, REDUCE, SCAN, STORE, LOAD (mask, other) and YIELD.

Candidates are block LOADs and the elementwise ops that are not cheap. A load is read
later than it is written in the IR, so it may only move down to its sink when no op in
between has a side effect, and, when the sink is a STORE, when the store cannot write a
lane that a later lane of the same loop reads: a store through another tensor
parameter (distinct tensor arguments are assumed to be the same tensor accessed at the
same offsets, or not to overlap), or through the very same pointer block with distinct
lanes (contiguous, one row).
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import COMPARE, ELEMENTWISE, SIDE_EFFECTS, Op
from ..ir.types import BlockType, is_ptr, scalar_of

# Sinks whose loops read each lane of an operand once and unconditionally.
_SINKS = frozenset({Op.REDUCE, Op.SCAN, Op.STORE, Op.LOAD, Op.YIELD}) | ELEMENTWISE
_CHEAP_INT = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.AND, Op.OR, Op.XOR})
_CHEAP_FLOAT = frozenset({Op.ADD, Op.SUB, Op.MUL})
_VIEWS = frozenset({Op.ARANGE, Op.SPLAT, Op.RESHAPE, Op.EXPAND_DIMS, Op.ADDPTR})


def cheap(op: Operation) -> bool:
    """The renderer recomputes ``op``'s lanes wherever they are read (a virtual block):
    one or two instructions per lane, or no data movement at all."""
    kind = op.op
    if kind in _VIEWS:
        return True
    if kind is Op.BROADCAST:  # a replicating broadcast is a strided copy
        src = op.operands[0].type
        return not isinstance(src, BlockType) or src.numel == op.result.type.numel
    if kind in COMPARE:
        return True
    if len(op.results) != 1 or not op.operands:
        return False
    st, rt = scalar_of(op.operands[0].type), op.result.type
    if kind in _CHEAP_INT and st.is_int:
        return True
    if kind in _CHEAP_FLOAT and st.name in ("f32", "f64"):
        return True
    if kind is Op.WHERE:
        return is_ptr(rt) or scalar_of(rt).is_int
    if kind in (Op.CAST, Op.BITCAST):
        return is_ptr(rt) or (st.is_int and scalar_of(rt).is_int)
    return False


def loop_ops(values, defs: dict[Value, Operation], limit: int = 256) -> list[Operation] | None:
    """The ops whose lanes the loop that reads ``values`` computes in its body: those reached
    from ``values`` through fused (``fuse`` attr) and virtual (``cheap``) ops, not past a
    stored value, whose array the loop reads. None: more than ``limit``, too many to tell."""
    found: list[Operation] = []
    seen: set[int] = set()
    todo = list(values)
    while todo:
        op = defs.get(todo.pop())
        if op is None or id(op) in seen:
            continue  # an argument, a parameter, or already walked
        seen.add(id(op))
        if op.attr("fuse") is None and not cheap(op):
            continue  # stored: the loop reads its array
        if len(found) == limit:
            return None
        found.append(op)
        todo.extend(op.operands)
    return found


def own_loop_exp(op: Operation) -> bool:
    """An f32 EXP block: rendered as a loop of its own over its array, with the prelude's
    explicit vector exp (``pypto_expf_n``), never fused into the loop of a reader."""
    return (
        op.op is Op.EXP
        and isinstance(op.result.type, BlockType)
        and scalar_of(op.result.type).name == "f32"
    )


def fuse(m: Module) -> Module:
    """``m`` with ``fuse="inline"`` / ``fuse="first"`` attrs on the ops the renderer fuses."""
    return replace(m, body=_Block(m.body).run())


def has_side_effects(op: Operation) -> bool:
    if op.op in SIDE_EFFECTS:
        return True
    return any(has_side_effects(inner) for region in op.regions for inner in region.ops)


class _Block:
    """One block: decisions are made from the last op to the first, so that every user
    of a value has been classified before the value itself."""

    def __init__(self, block: Block):
        self.block = block
        self.pos: dict[int, int] = {id(op): i for i, op in enumerate(block.ops)}
        self.users: dict[Value, list[Operation]] = {}
        for op in block.ops:
            for x in op.operands:
                self.users.setdefault(x, []).append(op)
            for inner in _nested(op):  # a use in a region is a use by the region's op
                for x in inner.operands:
                    self.users.setdefault(x, []).append(op)
        self.mode: dict[int, str] = {}  # id(op) -> "inline" | "first"
        self.sinks_of: dict[Value, list[Operation]] = {}

    def run(self) -> Block:
        ops = list(self.block.ops)
        for i in reversed(range(len(ops))):
            op = ops[i]
            if op.regions:
                op = replace(op, regions=tuple(_Block(r).run() for r in op.regions))
            mode = self.decide(op)
            if mode is not None:
                self.mode[id(self.block.ops[i])] = mode
                op = op.with_attrs(fuse=mode)
            ops[i] = op
        return replace(self.block, ops=tuple(ops))

    def virtual(self, op: Operation) -> bool:
        return cheap(op) or self.mode.get(id(op)) == "inline"

    def sinks(self, v: Value) -> list[Operation]:
        """Non-virtual ops of this block reading ``v``'s lanes, in program order."""
        found = self.sinks_of.get(v)
        if found is not None:
            return found
        out: dict[int, Operation] = {}
        for u in self.users.get(v, ()):
            if self.virtual(u):
                reached = self.sinks(u.result)
            elif self.mode.get(id(u)) == "first":
                reached = self.sinks(u.result)[:1]
            else:
                reached = [u]
            for s in reached:
                out[id(s)] = s
        found = sorted(out.values(), key=lambda s: self.pos[id(s)])
        self.sinks_of[v] = found
        return found

    def decide(self, op: Operation) -> str | None:
        if len(op.results) != 1 or not isinstance(op.result.type, BlockType):
            return None
        if not (op.op is Op.LOAD or (op.op in ELEMENTWISE and not cheap(op))):
            return None
        if own_loop_exp(op):
            return None
        sinks = self.sinks(op.result)
        if not sinks or not self.valid_sink(sinks[0]):
            return None
        if op.op is Op.LOAD and not self.load_may_move(op, sinks[0]):
            return None
        return "inline" if len(sinks) == 1 else "first"

    def valid_sink(self, s: Operation) -> bool:
        return s.op in _SINKS and not s.regions and (s.op is not Op.LOAD or len(s.operands) > 1)

    def load_may_move(self, load: Operation, sink: Operation) -> bool:
        """Reading the load's lanes in the sink's loop reads the same memory as at the load."""
        lo, hi = self.pos[id(load)], self.pos[id(sink)]
        if any(has_side_effects(op) for op in self.block.ops[lo + 1 : hi]):
            return False
        if sink.op is not Op.STORE or sink.attr("param") != load.attr("param"):
            return True
        ptr = load.operands[0]
        one_row = ptr.type.numel == ptr.type.shape[-1]
        return sink.operands[0] is ptr and bool(load.attr("contig")) and one_row


def _nested(op: Operation):
    for region in op.regions:
        yield from region.walk()
