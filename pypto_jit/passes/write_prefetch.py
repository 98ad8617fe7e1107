"""Write prefetch: which STOREs fetch their lines for writing before their loop runs.

A store to a line that is not in the cache has to read the line first; a loop of stores
seems to start those reads only a few at a time, as the stores drain from the store queue.
A write prefetch (PREFETCHW) of the whole row just before the store loop starts all of
them at once. Measured on an AVX-512 machine with the layer-norm forward kernel (three
passes over each 4 KB row, the last one storing it): 1.1-1.5x faster on one and on two
threads. It does not pay everywhere: in a loop that also streams its inputs from memory
(bias + GELU, a vector add), the burst of prefetches delays the loads the loop waits on
(6-27% slower), and a loop with a division per element (softmax) hides the line reads
behind its arithmetic anyway (3-27% slower). So a STORE gets ``prefetch=True`` when

* it is contiguous (``contig``), not streamed (``passes.streaming``), and its rows span
  at least ``MIN_ROW_BYTES``; it has no mask, or a prefix mask (``passes.prefix_mask``):
  only lines that are written are prefetched, never a neighbour's;
* its loop is light: loads and cheap arithmetic (``streaming.light``);
* every LOAD whose lanes its loop computes (fused into it: ``fuse="inline"``/``"first"``,
  reached through virtual ops) reads a tensor that is already warm: one an earlier LOAD
  of the program read (a row read again, as in a multi-pass row kernel), or one no larger
  than ``SMALL_TENSOR_BYTES`` (weights every program reads).

The renderer (cpu mode only) then prefetches each row's lines before storing it: the
whole row, or the lanes a prefix mask surely keeps.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, scalar_of
from .fusion import loop_ops
from .streaming import light, tensor_bytes

MIN_ROW_BYTES = 256
SMALL_TENSOR_BYTES = 256 << 10


def prefetch_stores(m: Module) -> Module:
    """``m`` with ``prefetch=True`` on the STOREs whose rows are prefetched for writing."""
    small = {k for k, p in enumerate(m.params) if 0 < tensor_bytes(p) <= SMALL_TENSOR_BYTES}
    return replace(m, body=_Walk(small).block(m.body))


class _Walk:
    """Walks the program in order, remembering which LOADs it has passed."""

    def __init__(self, small: set[int]):
        self.small = small
        self.loads: dict[int, list[Operation]] = {}  # param -> LOADs so far

    def block(self, block: Block) -> Block:
        defs = {v: op for op in block.ops for v in op.results}
        ops = []
        for op in block.ops:
            if op.regions:
                op = replace(op, regions=tuple(self.block(r) for r in op.regions))
            elif op.op is Op.STORE and self.warm(op, defs):
                op = op.with_attrs(prefetch=True)
            if op.op is Op.LOAD:
                self.loads.setdefault(op.attr("param"), []).append(op)
            ops.append(op)
        return replace(block, ops=tuple(ops))

    def warm(self, store: Operation, defs: dict[Value, Operation]) -> bool:
        t = store.operands[0].type
        if store.attr("stream") or not store.attr("contig") or not isinstance(t, BlockType):
            return False
        if len(store.operands) > 2 and not store.attr("prefix"):
            return False  # any mask but a prefix: its lanes' lines are not known up front
        if t.shape[-1] * scalar_of(t).itemsize < MIN_ROW_BYTES:
            return False
        ops = loop_ops(store.operands[1:], defs)
        if not light(ops):
            return False
        in_loop = [op for op in ops if op.op is Op.LOAD]
        ids = {id(op) for op in in_loop}
        return all(self.read_before(op.attr("param"), ids) for op in in_loop)

    def read_before(self, k: int, in_loop: set[int]) -> bool:
        return k in self.small or any(id(op) not in in_loop for op in self.loads.get(k, ()))
