"""The one rewriting helper every pass uses.

A ``Rewriter`` walks a module's blocks in program order, recursing into
regions, and asks ``visit(op)`` what to do with each operation. Before
``visit`` sees an op its operands are already substituted and its regions
already rewritten, so a pass only ever reasons about the new IR. ``visit``
answers with one of:

* ``None``                  keep the op as it is;
* ``replace(*ops, values)`` emit ``ops`` instead (they are visited in turn, so
                            rules compose) and let the old results stand for
                            ``values`` (by default the last new op's results);
* ``forward(*values)``      emit nothing; the old results become ``values``;
* ``drop()``                emit nothing (the op must have no used results).

A replacement op may reuse the old op's result ``Value`` objects: that is how a
pass says "same value, computed differently" without a substitution. Results
whose meaning is unchanged keep their ``Value`` objects throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as dc_replace

from ..ir.nodes import Block, Module, Operation, Value

# Replacement ops are revisited; a chain of rewrites longer than this is a
# rule that does not terminate, and we stop rewriting rather than recurse forever.
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Rewrite:
    """What replaces one operation: new ops, and what its results become."""

    ops: tuple[Operation, ...]
    values: tuple[Value, ...]


def replace(*ops: Operation, values: tuple[Value, ...] | None = None) -> Rewrite:
    if values is None:
        values = ops[-1].results if ops else ()
    return Rewrite(tuple(ops), tuple(values))


def forward(*values: Value) -> Rewrite:
    return Rewrite((), tuple(values))


def drop() -> Rewrite:
    return Rewrite((), ())


class Rewriter:
    """Subclass and override ``visit`` (and the block hooks if scoping matters)."""

    def __init__(self, module: Module):
        self.module = module
        self.subst: dict[Value, Value] = {}
        # The defining op (in the new IR) of every result emitted so far.
        self.defs: dict[Value, Operation] = {}

    # -- what passes override -----------------------------------------------------
    def visit(self, op: Operation) -> Rewrite | None:
        return None

    def enter_block(self, block: Block, parent: Operation | None) -> None:
        """Called before a block's ops; ``parent`` is the op owning the region."""

    def exit_block(self, block: Block, parent: Operation | None) -> None:
        """Called after a block's ops."""

    # -- helpers for passes ---------------------------------------------------------
    def value(self, v: Value) -> Value:
        """The value ``v`` currently stands for."""
        seen = v
        while seen in self.subst:
            seen = self.subst[seen]
        if seen is not v:
            self.subst[v] = seen  # shorten the chain for the next lookup
        return seen

    def def_of(self, v: Value) -> Operation | None:
        """The op defining ``v`` in the new IR (None for block arguments)."""
        return self.defs.get(self.value(v))

    # -- the walk ---------------------------------------------------------------------
    def run(self) -> Module:
        body = self.rewrite_block(self.module.body, None)
        return Module(self.module.name, self.module.params, body)

    def rewrite_block(self, block: Block, parent: Operation | None) -> Block:
        self.enter_block(block, parent)
        out: list[Operation] = []
        for op in block.ops:
            op = self._substituted(op)
            if op.regions:
                # Regions see the op with its new operands (e.g. a FOR's bounds).
                regions = tuple(self.rewrite_block(r, op) for r in op.regions)
                op = dc_replace(op, regions=regions)
            self._emit(op, out, 0)
        self.exit_block(block, parent)
        return Block(block.args, tuple(out))

    def _substituted(self, op: Operation) -> Operation:
        operands = tuple(self.value(v) for v in op.operands)
        if all(a is b for a, b in zip(operands, op.operands, strict=True)):
            return op
        return dc_replace(op, operands=operands)

    def _emit(self, op: Operation, out: list[Operation], depth: int) -> None:
        action = self.visit(op) if depth < _MAX_DEPTH else None
        if action is None:
            out.append(op)
            for r in op.results:
                self.defs[r] = op
            return
        if action.values and len(action.values) != len(op.results):
            raise ValueError(
                f"{op.op} has {len(op.results)} results, rewrite gave {len(action.values)}"
            )
        for new in action.ops:
            new = self._substituted(new)
            if new is op:
                out.append(new)
                for r in new.results:
                    self.defs[r] = new
            else:
                self._emit(new, out, depth + 1)
        for old, new in zip(op.results, action.values, strict=False):  # drop() gives ()
            new = self.value(new)
            if new is not old:
                self.subst[old] = new
