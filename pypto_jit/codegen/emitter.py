"""The renderer's state: C names of SSA values, output lines, stack accounting.

Scalars are C locals. A block value takes one of these forms (``passes.fusion`` says
which through the ``fuse`` attr; without it, every block that is not cheap is stored):

* *stored*: a stack array of the register type, filled by one loop over its lanes;
* *virtual*: a function from a lane index to a C expression, recomputed wherever a lane
  is read -- for blocks that cost an instruction or two per lane (splats, aranges,
  pointer and index arithmetic, masks, f32/f64 add, sub and mul), so a contiguous load
  only evaluates its pointer's lane 0 per row;
* *fused* (``fuse="inline"``): virtual, but read only inside the loop of one consumer
  (its sink): the loop body computes it once per lane into a local;
* *pending* (``fuse="first"``): stored, but its array is filled by the body of the first
  loop that reads its lanes (its first sink), so producer and consumer are one pass.

Consumers read lanes through ``lane(v, ix)`` and never care which form a value has.
Loops that read lanes are built with ``body``: the lanes of fused and pending values it
reads become ``const`` locals at the top of the loop body (``lets``), each computed
once. A pending value read anywhere else (outside such a loop, or by name) is filled
by a loop of its own first; values are never pending across a nested region.

Lane indices are C expressions; an ``Ix`` also says where its row starts, so that a
contiguous access (``contig`` attr) reads ``base(row) + col`` with ``base`` hoisted out
of the loop over columns.

Ops that do not move data (reshape, expand_dims) give their result the source's
array or lane function. Parallel assignments (loop-carried values, if results)
stage a source through a temporary when another assignment of the group overwrites
storage it reads. Pointers are int64 element offsets from the base of the tensor
parameter they come from (``p<k>``); a tensor parameter itself is offset 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import SourceLoc
from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import ELEMENTWISE, TERMINATORS, Op
from ..ir.types import BlockType, Type, is_ptr, scalar_of
from ..passes.address import access_param
from ..passes.write_prefetch import early_points
from .ctype import C_SIZES, c_string, reg

Rule = Callable[["Emitter", Operation], None]
LaneFn = Callable[[str], str]  # C text from a C expression (a lane index, a loop's end ...)
RULES: dict[Op, Rule] = {}
# A virtual block whose lane expression grows past this is stored instead (bounds the
# recomputation, and the blow-up of expressions that use a value twice).
_MAX_VIRTUAL_CHARS = 240
# Ops whose lane j reads lane j of their block operands (``prefix_masks`` looks through them).
_LANEWISE = ELEMENTWISE | {Op.LOAD}


class Ix(str):
    """A lane index (the C expression itself) that knows its row: lanes ``row + c`` for
    ``c`` in ``[0, cols)`` are read by one loop over ``col``."""

    row: str
    col: str
    cols: int

    def __new__(cls, flat: str, row: str, col: str, cols: int) -> Ix:
        ix = super().__new__(cls, flat)
        ix.row, ix.col, ix.cols = row, col, cols
        return ix


@dataclass(frozen=True)
class Lanes:
    """Lane ``ix`` is the C expression ``at(ix)``. ``reads`` names the C variables and
    arrays it reads (all at lane ``ix`` or whole scalars); ``cols`` holds the row lengths
    at which it reads memory contiguously (a loop over rows of that length pays)."""

    at: Callable[[str], str]
    reads: frozenset[str]
    cols: frozenset[int] = frozenset()


def rule(*ops: Op) -> Callable[[Rule], Rule]:
    """Register the C rule for ``ops``."""

    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn

    return register


def c_type(t: Type) -> str:
    """Register C type of the elements of ``t`` (int64 offsets for pointers)."""
    return "int64_t" if is_ptr(t) else reg(scalar_of(t))


class Emitter:
    def __init__(self, module: Module, mode: str, debug: bool = False):
        self.module = module
        self.mode = mode
        self.debug = debug  # device_assert live outside sim mode
        self.lines: list[str] = []
        self.depth = 1
        self.stack_bytes = 0
        self.arrays = 0
        self.consts: dict[Value, int | float | bool] = {}  # CONST results, for loop steps
        self.slots: dict[int, int] = {}  # tensor parameter index -> first iargs slot
        self._names: dict[Value, str] = {}
        self._lanes: dict[Value, Lanes] = {}
        self._fused: set[Value] = set()  # virtual values computed once per loop body
        self._pending: dict[Value, Lanes] = {}  # stored values whose array is not filled yet
        self._taken: set[Value] = set()  # pending values being filled by the current op
        self._lets: list[str] | None = None  # the loop body being built, if any
        self._memo: dict[tuple[Value, str], str] = {}
        self._measuring = False
        self._true: set[Value] = set()  # masks known to be true in the loop being built
        self._count = 0
        self.param_of: dict[Value, int] = {v: k for k, v in enumerate(module.body.args)}
        self.defs: dict[Value, Operation] = {v: op for op in module.walk() for v in op.results}

    # -- output ------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)

    def open(self, line: str) -> None:
        self.emit(line)
        self.depth += 1

    def close(self, line: str = "}") -> None:
        self.depth -= 1
        self.emit(line)

    def loop(self, n: int, stmt: str, ivdep: bool = False, var: str = "i") -> None:
        """``for (var in [0, n)) stmt`` on one line (``#pragma ivdep`` for memory loops).
        Lane loops count in int32 (blocks are far smaller than 2^31 lanes): index arithmetic
        on lanes, such as a mask ``offs < n``, then vectorizes without int64 conversions."""
        if ivdep:
            self.emit("PYPTO_IVDEP")
        self.emit(f"for (int32_t {var} = 0; {var} < {n}; ++{var}) {stmt}")

    def body(self, head: str, build: Callable[[], str], pragma: str = "PYPTO_IVDEP") -> None:
        """The loop ``head`` (``for (...)``) around ``build()``, a C statement built from
        lane reads: the fused and pending lanes it reads become locals at its top."""
        saved = self._lets, self._memo
        self._lets, self._memo = [], {}
        try:
            stmt = build()
            lets = self._lets
        finally:
            self._lets, self._memo = saved
        if pragma:
            self.emit(pragma)
        if not lets:
            self.emit(f"{head} {stmt}")
            return
        self.open(f"{head} {{")
        for line in [*lets, stmt]:
            self.emit(line)
        self.close()

    def for_lanes(self, t: BlockType, build: Callable[[str], str], cols=frozenset()) -> None:
        """A loop over every lane of a block of type ``t``; ``build(ix)`` gives the body's
        statement for lane ``ix``. Rows of a length in ``cols`` get a loop of their own."""
        c, n = t.shape[-1], t.numel
        if n == c:
            ix = Ix("i", "0", "i", c)
            self.body(f"for (int32_t i = 0; i < {n}; ++i)", lambda: build(ix))
        elif c in cols:
            self.open(f"for (int32_t rw = 0; rw < {n // c}; ++rw) {{")
            ix = Ix(f"rw * {c} + j", f"rw * {c}", "j", c)
            self.body(f"for (int32_t j = 0; j < {c}; ++j)", lambda: build(ix))
            self.close()
        else:
            self.body(f"for (int32_t i = 0; i < {n}; ++i)", lambda: build("i"))

    def for_lanes_split(
        self, t: BlockType, build: Callable[[str], str], masks: list[Value], cols=frozenset()
    ) -> None:
        """``for_lanes`` for a loop whose lanes read the prefix ``masks`` (``prefix_masks``),
        split by ``prefix_loops``."""
        if not masks or len(t.shape) != 1:
            self.for_lanes(t, build, cols)
            return
        self.open("{")
        self.prefix_loops("i", t.numel, masks, build)
        self.close()

    def prefix_loops(
        self, var: str, n: int, masks: list[Value], build: LaneFn, chunks: LaneFn | None = None
    ) -> None:
        """The lanes ``var`` in ``[0, n)`` of a row whose lanes read the prefix ``masks``: the
        surely active ones first, by a loop that reads the masks as true (plain vector loads
        instead of masked ones; ``chunks(end)`` may emit a loop over the first of them and
        say where it stops), then the rest as usual (none, unless a mask's offsets wrap
        around int32)."""
        ix = Ix(var, "0", var, n)
        counts = [self.prefix_count(mk) for mk in masks]
        self.emit(f"int32_t m_ = {counts[0]};")
        for count in counts[1:]:
            self.emit(f"{{ const int32_t k_ = {count}; if (k_ < m_) m_ = k_; }}")
        with self.assume_true(masks):
            start = chunks("m_") if chunks is not None else "0"
            self.body(f"for (int32_t {var} = {start}; {var} < m_; ++{var})", lambda: build(ix))
        self.body(f"for (int32_t {var} = m_; {var} < {n}; ++{var})", lambda: build(ix))

    # -- names -----------------------------------------------------------------------
    def fresh(self, prefix: str = "v") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def bind(self, v: Value, name: str) -> str:
        self._names[v] = name
        return name

    def bind_lanes(self, v: Value, lanes: Lanes) -> None:
        self._lanes[v] = lanes

    def bind_fused(self, v: Value, lanes: Lanes) -> None:
        """``v`` is computed where it is read, once per loop body (``fuse="inline"``)."""
        self._lanes[v] = lanes
        self._fused.add(v)

    def bind_pending(self, v: Value, lanes: Lanes) -> str:
        """``v`` is stored, filled by the first loop that reads it (``fuse="first"``)."""
        name = self.declare(v)
        self._pending[v] = lanes
        return name

    def name(self, v: Value) -> str:
        """C name of a scalar or a stored block (a pending block is filled first)."""
        name = self._names.get(v)
        if name is not None:
            if v in self._pending:
                self.fill(v)
            return name
        if v in self.param_of and is_ptr(v.type):
            return "INT64_C(0)"  # a tensor parameter is its own base
        if v in self._lanes:
            raise ValueError("a virtual block has no C name (renderer bug)")
        raise KeyError(f"value {v} used before it is defined (renderer bug or unverified IR)")

    def is_virtual(self, v: Value) -> bool:
        return v in self._lanes

    def is_pending(self, v: Value) -> bool:
        return v in self._pending

    def lane(self, v: Value, ix: str = "i") -> str:
        """C expression for lane ``ix`` of ``v`` (``v`` itself for scalars)."""
        if v in self._true:
            return "1"
        lanes = self._lanes.get(v)
        if lanes is not None:
            if v in self._fused:
                return self._let(v, ix, lanes)
            return lanes.at(ix)
        pending = self._pending.get(v)
        if pending is not None:
            if self._lets is not None or self._measuring:
                return self._let(v, ix, pending)
            self.fill(v)
        return f"{self.name(v)}[{ix}]" if isinstance(v.type, BlockType) else self.name(v)

    def _let(self, v: Value, ix: str, lanes: Lanes) -> str:
        """Lane ``ix`` of a fused or pending ``v`` as a local of the loop body being built
        (the plain expression outside one); a pending array gets the lane too."""
        if self._measuring:
            return "t_"
        if self._lets is None:
            return lanes.at(ix)
        key = (v, str(ix))
        local = self._memo.get(key)
        if local is None:
            expr = lanes.at(ix)  # may add the lets it depends on first
            local = self._memo[key] = self.fresh("t")
            self._lets.append(f"const {c_type(v.type)} {local} = {expr};")
            if v in self._pending:
                self._lets.append(f"{self._names[v]}[{ix}] = {local};")
                self._taken.add(v)
        return local

    @property
    def known_true(self) -> set[Value]:
        """Masks whose lanes read as ``1`` where code is being built (``assume_true``)."""
        return self._true

    @contextmanager
    def assume_true(self, masks: Iterable[Value]) -> Iterator[None]:
        """Inside: lanes of ``masks`` read as ``1`` (a loop cut to the active lanes of prefix
        masks, ``passes.prefix_mask``), so the loads they guard read unmasked."""
        added = set(masks) - self._true
        self._true |= added
        try:
            yield
        finally:
            self._true -= added

    def prefix_masks(self, v: Value) -> list[Value]:
        """The prefix masks (``prefix`` LT ops) that lane ``j`` of the 1-D block ``v`` reads
        at their own lane ``j``: through elementwise ops and loads of the same shape."""
        shape, seen, out, todo = v.type.shape, set(), [], [v]
        while todo:
            x = todo.pop()
            op = self.defs.get(x)
            if x in seen or op is None or not isinstance(x.type, BlockType):
                continue
            seen.add(x)
            stored = x in self._names and x not in self._pending
            if x.type.shape != shape or op.op not in _LANEWISE or stored:
                continue  # another lane mapping, or a stored array: no mask is read here
            if op.op is Op.LT and op.attr("prefix") and x not in self._true:
                out.append(x)  # (one known true, in a loop's full blocks, needs no split)
            todo.extend(op.operands)
        return out

    def prefix_count(self, mask: Value) -> str:
        """C expression: how many leading lanes of prefix ``mask`` are surely true (the
        lanes after them are for a masked loop)."""
        a, bound = self.defs[mask].operands
        n = mask.type.shape[0]
        zero = Ix("0", "0", "0", n)
        a0, b = self.lane(a, zero), self.lane(bound, zero)
        return f"pypto_prefix({a0}, {b}, {n})"

    def fill(self, v: Value) -> None:
        """Fill the array of pending ``v`` with a loop of its own, here."""
        lanes = self._pending.pop(v)
        name = self._names[v]
        saved, self._lets = self._lets, None  # a loop of its own, not part of a body
        try:
            self.for_lanes(v.type, lambda ix: f"{name}[{ix}] = {lanes.at(ix)};", lanes.cols)
        finally:
            self._lets = saved

    def reads(self, v: Value) -> frozenset[str]:
        lanes = self._lanes.get(v)
        if lanes is not None:
            return lanes.reads
        name = self._names.get(v) or self.name(v)
        return frozenset((name,)) if name.isidentifier() else frozenset()

    def cols(self, *values: Value) -> frozenset[int]:
        """Row lengths at which reading the lanes of ``values`` reads memory contiguously."""
        out: frozenset[int] = frozenset()
        for v in values:
            lanes = self._lanes.get(v) or self._pending.get(v)
            if lanes is not None:
                out |= lanes.cols
        return out

    def lanes_of(self, template: Callable[..., str], operands: Sequence[Value]) -> Lanes:
        """Lanes computing ``template`` of the operands' lanes, recomputed on every read."""
        ops = tuple(operands)
        reads = frozenset().union(*(self.reads(x) for x in ops))
        return Lanes(lambda ix: template(*[self.lane(x, ix) for x in ops]), reads, self.cols(*ops))

    def short(self, lanes: Lanes) -> bool:
        """The lane expression is short enough to recompute wherever it is read (fused
        and pending lanes count as the local they become)."""
        self._measuring = True
        try:
            return len(lanes.at("i")) <= _MAX_VIRTUAL_CHARS
        finally:
            self._measuring = False

    # -- definitions -----------------------------------------------------------------
    def declare(self, v: Value, prefix: str = "v") -> str:
        """Storage for ``v`` without a value: an array for a block, a local for a scalar."""
        name = self.fresh(prefix)
        t = v.type
        if isinstance(t, BlockType):
            self.emit(f"_Alignas(64) {c_type(t)} {name}[{t.numel}];")
            self.stack_bytes += t.numel * C_SIZES[c_type(t)]
            self.arrays += 1
        else:
            self.emit(f"{c_type(t)} {name};")
        return self.bind(v, name)

    def scalar(self, v: Value, expr: str) -> str:
        name = self.bind(v, self.fresh())
        self.emit(f"{c_type(v.type)} {name} = {expr};")
        return name

    def elementwise(self, op: Operation, template: Callable[..., str], cheap: bool = False) -> None:
        """Define ``op``'s result lane by lane as ``template(*operand lanes)``: fused or
        pending as the ``fuse`` attr says; a ``cheap`` one stays virtual while its
        expression is short; otherwise stored by a loop of its own."""
        v = op.result
        if not isinstance(v.type, BlockType):
            self.scalar(v, template(*[self.name(x) for x in op.operands]))
            return
        lanes = self.lanes_of(template, op.operands)
        fuse = op.attr("fuse")
        if fuse == "inline":
            self.bind_fused(v, lanes)
        elif fuse == "first":
            self.bind_pending(v, lanes)
        elif cheap and self.short(lanes):
            self.bind_lanes(v, lanes)
        else:
            masks = self.prefix_masks(v)  # before v has an array, where the search stops
            name = self.declare(v)
            fill = lambda ix: f"{name}[{ix}] = {lanes.at(ix)};"  # noqa: E731
            self.for_lanes_split(v.type, fill, masks, lanes.cols)

    def fail(self, op: Operation, kind: str, param: int, index: str, extent: str, msg: str) -> str:
        """C statement returning a run-time error of ``kind`` at ``op``'s source location."""
        line, col = (op.loc.line, op.loc.col) if op.loc is not None else (0, 0)
        where = f"{line}, {col}, {param}, pid0, pid1, pid2"
        return f"return pypto_fail(ctx, {kind}, {where}, {index}, {extent}, {c_string(msg)});"

    # -- regions -----------------------------------------------------------------------
    def block(self, block: Block) -> Operation | None:
        """Render ``block``'s ops; return its terminator (the caller renders that). Rows of
        ``prefetch="early"`` STOREs are prefetched where ``passes.write_prefetch`` says."""
        early = early_points(block) if self.mode == "cpu" else {}
        for i, op in enumerate(block.ops):
            for store in early.get(i - 1, ()):  # after op i - 1 (-1: before the first)
                self.prefetch_row(store)
            if op.op in TERMINATORS:
                return op
            self.operation(op)
        return None

    def prefetch_row(self, store: Operation) -> None:
        """PREFETCHW of a one-row STORE's row, where its address is first known."""
        ptr, mask = store.operands[0], store.operands[2] if len(store.operands) > 2 else None
        base = self.lane(ptr, Ix("0", "0", "0", ptr.type.numel))
        self.prefetch_lines(f"p{access_param(store)} + {base}", ptr, mask)

    def prefetch_lines(self, row: str, ptr: Value, mask: Value | None) -> None:
        """PREFETCHW of a row's lines from ``row``: all, or the lanes ``mask`` surely keeps."""
        cols, size = ptr.type.shape[-1], scalar_of(ptr.type).itemsize
        count = cols * size if mask is None else f"(int64_t)({self.prefix_count(mask)}) * {size}"
        self.emit(f"pypto_prefetchw({row}, {count});")

    def operation(self, op: Operation) -> None:
        fn = RULES.get(op.op)
        if fn is None:
            raise NotImplementedError(f"no C rule for op '{op.op}' ({self.mode} backend)")
        if op.regions:  # never fill a pending array inside a loop or a branch
            for v in list(self._pending):
                self.fill(v)
        start = len(self.lines)
        fn(self, op)
        for v in self._taken:  # filled by this op's loops
            self._pending.pop(v, None)
        self._taken.clear()
        if op.regions:  # what is still pending was defined inside and never read
            self._pending.clear()
        if op.loc is not None and len(self.lines) > start:  # virtual results emit nothing
            self.lines.insert(start, _line_directive(op.loc))

    def assign(self, dsts: Sequence[Value], srcs: Sequence[Value]) -> None:
        """Parallel assignment ``dsts := srcs`` (every ``src`` is read before any write).

        Storage is written lane by lane, so a source may read its own destination (at the
        same lane); one that reads another destination goes through a temporary first.
        """
        pairs = [(d, s) for d, s in zip(dsts, srcs, strict=True) if not self._same(d, s)]
        written = {self.name(d) for d, _ in pairs}
        staged = []
        for d, s in pairs:
            if self.reads(s) & (written - {self.name(d)}):
                tmp = Value(s.type)
                self.declare(tmp, "t")
                self._copy(tmp, s)
                s = tmp
            staged.append((d, s))
        for d, s in staged:
            self._copy(d, s)
        # Assignments end regions (or start loops, when nothing is pending): what is still
        # pending was defined in the region and is never read.
        self._pending.clear()
        self._taken.clear()

    def _same(self, d: Value, s: Value) -> bool:
        return not self.is_virtual(s) and self.name(d) == self._names.get(s)

    def _copy(self, d: Value, s: Value) -> None:
        if not isinstance(d.type, BlockType):
            self.emit(f"{self.name(d)} = {self.name(s)};")
        elif self.is_virtual(s) or self.is_pending(s):
            dst = self.name(d)
            fill = lambda ix: f"{dst}[{ix}] = {self.lane(s, ix)};"  # noqa: E731
            self.for_lanes_split(d.type, fill, self.prefix_masks(s), self.cols(s))
        else:
            self.emit(f"memcpy({self.name(d)}, {self.name(s)}, sizeof({self.name(d)}));")


def _line_directive(loc: SourceLoc) -> str:
    return f"#line {max(loc.line, 1)} {c_string(loc.file)}"
