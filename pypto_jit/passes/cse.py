"""Common subexpression elimination.

Two PURE ops with the same op, operands, attributes and result types compute
the same value; the later one is replaced by the earlier one's results. The
table is scoped: a value computed in an enclosing block dominates everything
nested after it, so nested regions see the enclosing entries, but entries made
inside a region are forgotten when the region ends. Memory ops (LOAD, STORE)
and control flow are never merged.
"""

from __future__ import annotations

from ..ir.nodes import Block, Module, Operation
from ..ir.ops import PURE, Op
from .rewrite import Rewrite, Rewriter, forward

# Operand order does not matter for these (exactly, floats included).
_COMMUTATIVE = frozenset({Op.ADD, Op.MUL, Op.AND, Op.OR, Op.XOR, Op.EQ, Op.NE})


def cse(m: Module) -> Module:
    return _CSE(m).run()


def _attr_key(v: object) -> object:
    # 0.0 == -0.0 and True == 1 in Python; constants that differ bitwise must not merge.
    if isinstance(v, float):
        return ("float", v.hex())
    if isinstance(v, tuple):
        return tuple(_attr_key(x) for x in v)
    return (type(v).__name__, v)


def _key(op: Operation) -> tuple:
    operands = op.operands
    if op.op in _COMMUTATIVE:
        operands = tuple(sorted(operands, key=id))
    attrs = tuple((k, _attr_key(v)) for k, v in op.attrs)
    return (op.op, operands, attrs, tuple(r.type for r in op.results))


class _CSE(Rewriter):
    def __init__(self, module: Module):
        super().__init__(module)
        self.scopes: list[dict[tuple, Operation]] = []

    def enter_block(self, block: Block, parent: Operation | None) -> None:
        self.scopes.append({})

    def exit_block(self, block: Block, parent: Operation | None) -> None:
        self.scopes.pop()

    def visit(self, op: Operation) -> Rewrite | None:
        if op.op not in PURE or op.regions or not op.results:
            return None
        key = _key(op)
        for scope in reversed(self.scopes):
            found = scope.get(key)
            if found is not None:
                return forward(*found.results)
        self.scopes[-1][key] = op
        return None
