"""Dead code elimination.

An op goes when none of its results is used and it has no side effect: STORE
(``ops.SIDE_EFFECTS``) is the side effect, and a FOR/IF/WHILE has one when its
regions contain one. Ops this pass does not know stay (conservative for ops
added to the enum later). Loop-carried values that nobody reads stay: removing
them would change the loop's signature for little gain.

One backward sweep per block suffices: in SSA every use of a value comes after
its definition (or inside a region of a later op), so by the time the sweep
reaches a definition all its live uses have been seen.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import PURE, SIDE_EFFECTS, TERMINATORS, Op

_REMOVABLE = PURE | {Op.LOAD, Op.FOR, Op.IF, Op.WHILE}


def dce(m: Module) -> Module:
    return Module(m.name, m.params, _sweep(m.body, set()))


def has_side_effects(op: Operation) -> bool:
    if op.op in SIDE_EFFECTS:
        return True
    return any(has_side_effects(inner) for region in op.regions for inner in region.ops)


def _dead(op: Operation, used: set[Value]) -> bool:
    if op.op in TERMINATORS or op.op not in _REMOVABLE or has_side_effects(op):
        return False
    return not any(r in used for r in op.results)


def _sweep(block: Block, used: set[Value]) -> Block:
    kept: list[Operation] = []
    for op in reversed(block.ops):
        if _dead(op, used):
            continue
        if op.regions:
            op = replace(op, regions=tuple(_sweep(r, used) for r in op.regions))
        used.update(op.operands)
        kept.append(op)
    kept.reverse()
    if len(kept) == len(block.ops) and all(a is b for a, b in zip(kept, block.ops, strict=True)):
        return block
    return Block(block.args, tuple(kept))
