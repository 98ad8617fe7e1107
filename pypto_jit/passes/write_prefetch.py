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

A row stored at the end of a program that works on arrays after its last memory access
(softmax: the loads and the max, then exp, the sum and a division, then the store) gets
``prefetch="early"`` instead: its row is prefetched right after that last access, so that
its lines arrive while the program computes (its store loop reads no memory to compete
with). The pure ops its address and prefix mask depend on move up to that point. Measured
on the softmax of tutorial 02 (4096 x 1024): 17-29% faster in a process's median, 2-3%
slower in its best case, where the output is still in cache from the call before.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import BLOCK_COMPUTE, PURE, SIDE_EFFECTS, Op
from ..ir.types import BlockType, scalar_of
from .fusion import cheap, loop_ops
from .streaming import light, tensor_bytes

MIN_ROW_BYTES = 256
SMALL_TENSOR_BYTES = 256 << 10


def prefetch_stores(m: Module) -> Module:
    """``m`` with ``prefetch=True`` on the STOREs whose rows are prefetched for writing."""
    small = {k for k, p in enumerate(m.params) if 0 < tensor_bytes(p) <= SMALL_TENSOR_BYTES}
    return replace(m, body=_early(_Walk(small).block(m.body)))


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
        if not _row_store(store):
            return False
        ops = loop_ops(store.operands[1:], defs)
        if not light(ops):
            return False
        in_loop = [op for op in ops if op.op is Op.LOAD]
        ids = {id(op) for op in in_loop}
        return all(self.read_before(op.attr("param"), ids) for op in in_loop)

    def read_before(self, k: int, in_loop: set[int]) -> bool:
        return k in self.small or any(id(op) not in in_loop for op in self.loads.get(k, ()))


def _row_store(store: Operation) -> bool:
    """A contiguous, not streamed STORE of rows of at least ``MIN_ROW_BYTES``, unmasked or
    prefix-masked (any other mask: its lanes' lines are not known up front)."""
    t = store.operands[0].type
    if store.attr("stream") or not store.attr("contig") or not isinstance(t, BlockType):
        return False
    if len(store.operands) > 2 and not store.attr("prefix"):
        return False
    return t.shape[-1] * scalar_of(t).itemsize >= MIN_ROW_BYTES


def _row_values(store: Operation) -> tuple[Value, ...]:
    """What the address and extent of a STORE's row are computed from: pointer, mask."""
    return (store.operands[0], *store.operands[2:3])


def last_access(ops: tuple[Operation, ...] | list[Operation], s: int) -> int:
    """Index of the last op before ``ops[s]`` that reads or writes memory, or -1: a store,
    an atomic, a region (which may), a LOAD the renderer runs where it stands, or the op
    whose loop reads a fused LOAD's lanes first (later readers of a ``fuse="first"`` LOAD
    read its array)."""
    defs = {v: op for op in ops[:s] for v in op.results}
    read: set[int] = set()  # fused LOADs whose lanes a loop before has read
    last = -1
    for i, op in enumerate(ops[:s]):
        if op.op in SIDE_EFFECTS or op.regions or (op.op is Op.LOAD and not op.attr("fuse")):
            last = i
            continue
        loads = [x for x in loop_ops(op.operands, defs) or () if x.op is Op.LOAD]
        if op.op is not Op.LOAD and any(id(x) not in read for x in loads):
            last = i
        read.update(id(x) for x in loads)
    return last


def early_points(block: Block) -> dict[int, list[Operation]]:
    """The renderer's schedule of ``prefetch="early"`` STOREs: index of the op after which
    each one's row is prefetched (-1: before the first op) -> the STOREs."""
    index = {v: i for i, op in enumerate(block.ops) for v in op.results}
    points: dict[int, list[Operation]] = {}
    for s, op in enumerate(block.ops):
        if op.op is Op.STORE and op.attr("prefetch") == "early":
            at = max([last_access(block.ops, s), *(index.get(v, -1) for v in _row_values(op))])
            points.setdefault(at, []).append(op)
    return points


def _early(block: Block) -> Block:
    """``prefetch="early"`` on the program's top-level row STOREs that qualify, with the
    pure ops their rows' addresses depend on moved up to right after the last access."""
    ops = list(block.ops)
    for s in range(len(ops)):
        store = ops[s]
        if store.op is not Op.STORE or store.attr("prefetch") or not _row_store(store):
            continue
        if store.operands[0].type.numel != store.operands[0].type.shape[-1]:
            continue  # several rows: their lines are not one span
        j = last_access(ops, s)
        defs = {v: op for op in ops for v in op.results}
        in_loop = loop_ops(store.operands[1:], defs)
        if in_loop is None or any(op.op is Op.LOAD for op in in_loop):
            continue  # its loop reads memory itself: the prefetch would compete with it
        fused = {id(op) for op in in_loop}
        if not any(_heavy(op) and id(op) not in fused for op in ops[j + 1 : s]):
            continue  # no work of its own to overlap the line reads with
        moved = _address_ops(ops, j, s, _row_values(store))
        if moved is None:
            continue
        rest = [op for i, op in enumerate(ops) if i not in moved]
        ops = rest[: j + 1] + [ops[i] for i in sorted(moved)] + rest[j + 1 :]
        ops[s] = store.with_attrs(prefetch="early")  # only ops between j and s moved
    return replace(block, ops=tuple(ops))


def _heavy(op: Operation) -> bool:
    """Work on a block: a reduction, a dot, or elementwise math that is not cheap."""
    blocks = [v for v in (*op.operands, *op.results) if isinstance(v.type, BlockType)]
    return op.op in BLOCK_COMPUTE or (bool(blocks) and op.op in PURE and not cheap(op))


def _address_ops(ops: list[Operation], j: int, s: int, values) -> set[int] | None:
    """Indices, between ``j`` and ``s``, of the ops ``values`` are computed from; None if
    one of them may not move up (not pure, a region, or block work)."""
    where = {v: i for i, op in enumerate(ops[:s]) for v in op.results}
    found: set[int] = set()
    todo = list(values)
    while todo:
        i = where.get(todo.pop())
        if i is None or i <= j or i in found:
            continue  # defined outside, before the last access, or already taken
        op = ops[i]
        block_work = isinstance(op.result.type, BlockType) and not cheap(op)
        if op.op not in PURE or op.regions or op.op in BLOCK_COMPUTE or block_work:
            return None
        found.add(i)
        todo.extend(op.operands)
    return found
