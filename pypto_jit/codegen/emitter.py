"""The renderer's state: C names of SSA values, output lines, stack accounting.

Scalars are C locals. A block is either *stored* -- a stack array of the register
type filled by one flat loop over the block's numel -- or *virtual*: a function from
a lane index to a C expression, for blocks that cost an instruction or two per lane
to recompute (splats, aranges, pointer and index arithmetic, masks, f32/f64 add, sub
and mul). Consumers read lanes
through ``lane(v, ix)`` and never care which; a virtual block is never stored, so a
contiguous load only evaluates its pointer's lane 0 per row.

Ops that do not move data (reshape, expand_dims) give their result the source's
array or lane function. Parallel assignments (loop-carried values, if results)
stage a source through a temporary when another assignment of the group overwrites
storage it reads. Pointers are int64 element offsets from the base of the tensor
parameter they come from (``p<k>``); a tensor parameter itself is offset 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import SourceLoc
from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import TERMINATORS, Op
from ..ir.types import BlockType, Type, is_ptr, scalar_of
from .ctype import reg

Rule = Callable[["Emitter", Operation], None]
RULES: dict[Op, Rule] = {}
# A virtual block whose lane expression grows past this is stored instead (bounds the
# recomputation, and the blow-up of expressions that use a value twice).
_MAX_VIRTUAL_CHARS = 240


@dataclass(frozen=True)
class Lanes:
    """A virtual block: ``at(ix)`` is the C expression of lane ``ix``; ``reads`` names
    the C variables and arrays it reads (all at lane ``ix`` or whole scalars)."""

    at: Callable[[str], str]
    reads: frozenset[str]


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
        self._count = 0
        self.param_of: dict[Value, int] = {v: k for k, v in enumerate(module.body.args)}

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
        """``for (var in [0, n)) stmt`` on one line (``#pragma ivdep`` for memory loops)."""
        if ivdep:
            self.emit("PYPTO_IVDEP")
        self.emit(f"for (int64_t {var} = 0; {var} < {n}; ++{var}) {stmt}")

    # -- names -----------------------------------------------------------------------
    def fresh(self, prefix: str = "v") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def bind(self, v: Value, name: str) -> str:
        self._names[v] = name
        return name

    def bind_lanes(self, v: Value, lanes: Lanes) -> None:
        self._lanes[v] = lanes

    def name(self, v: Value) -> str:
        """C name of a scalar or a stored block."""
        name = self._names.get(v)
        if name is not None:
            return name
        if v in self.param_of and is_ptr(v.type):
            return "INT64_C(0)"  # a tensor parameter is its own base
        if v in self._lanes:
            raise ValueError("a virtual block has no C name (renderer bug)")
        raise KeyError(f"value {v} used before it is defined (renderer bug or unverified IR)")

    def is_virtual(self, v: Value) -> bool:
        return v in self._lanes

    def lane(self, v: Value, ix: str = "i") -> str:
        """C expression for lane ``ix`` of ``v`` (``v`` itself for scalars)."""
        lanes = self._lanes.get(v)
        if lanes is not None:
            return lanes.at(ix)
        return f"{self.name(v)}[{ix}]" if isinstance(v.type, BlockType) else self.name(v)

    def reads(self, v: Value) -> frozenset[str]:
        lanes = self._lanes.get(v)
        if lanes is not None:
            return lanes.reads
        name = self.name(v)
        return frozenset((name,)) if name.isidentifier() else frozenset()

    def lanes_of(self, template: Callable[..., str], operands: Sequence[Value]) -> Lanes:
        """Lanes computing ``template`` of the operands' lanes, recomputed on every read."""
        ops = tuple(operands)
        reads = frozenset().union(*(self.reads(x) for x in ops))
        return Lanes(lambda ix: template(*[self.lane(x, ix) for x in ops]), reads)

    # -- definitions -----------------------------------------------------------------
    def declare(self, v: Value, prefix: str = "v") -> str:
        """Storage for ``v`` without a value: an array for a block, a local for a scalar."""
        name = self.fresh(prefix)
        t = v.type
        if isinstance(t, BlockType):
            self.emit(f"_Alignas(64) {c_type(t)} {name}[{t.numel}];")
            self.stack_bytes += t.numel * _size(t)
            self.arrays += 1
        else:
            self.emit(f"{c_type(t)} {name};")
        return self.bind(v, name)

    def scalar(self, v: Value, expr: str) -> str:
        name = self.bind(v, self.fresh())
        self.emit(f"{c_type(v.type)} {name} = {expr};")
        return name

    def elementwise(self, op: Operation, template: Callable[..., str], cheap: bool = False) -> None:
        """Define ``op``'s result lane by lane as ``template(*operand lanes)``; a block result
        of a ``cheap`` template stays virtual while its expression is short."""
        v = op.result
        if not isinstance(v.type, BlockType):
            self.scalar(v, template(*[self.name(x) for x in op.operands]))
            return
        lanes = self.lanes_of(template, op.operands)
        if cheap and len(lanes.at("i")) <= _MAX_VIRTUAL_CHARS:
            self.bind_lanes(v, lanes)
            return
        name = self.declare(v)
        self.loop(v.type.numel, f"{name}[i] = {lanes.at('i')};")

    def fail(self, op: Operation, kind: str, param: int, index: str, extent: str, msg: str) -> str:
        """C statement returning a run-time error of ``kind`` at ``op``'s source location."""
        line, col = (op.loc.line, op.loc.col) if op.loc is not None else (0, 0)
        where = f"{line}, {col}, {param}, pid0, pid1, pid2"
        return f"return pypto_fail(ctx, {kind}, {where}, {index}, {extent}, {c_string(msg)});"

    # -- regions -----------------------------------------------------------------------
    def block(self, block: Block) -> Operation | None:
        """Render ``block``'s ops; return its terminator (the caller renders that)."""
        for op in block.ops:
            if op.op in TERMINATORS:
                return op
            self.operation(op)
        return None

    def operation(self, op: Operation) -> None:
        fn = RULES.get(op.op)
        if fn is None:
            raise NotImplementedError(f"no C rule for op '{op.op}' ({self.mode} backend)")
        start = len(self.lines)
        fn(self, op)
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

    def _same(self, d: Value, s: Value) -> bool:
        return not self.is_virtual(s) and self.name(d) == self.name(s)

    def _copy(self, d: Value, s: Value) -> None:
        if not isinstance(d.type, BlockType):
            self.emit(f"{self.name(d)} = {self.name(s)};")
        elif self.is_virtual(s):
            self.loop(d.type.numel, f"{self.name(d)}[i] = {self.lane(s)};")
        else:
            self.emit(f"memcpy({self.name(d)}, {self.name(s)}, sizeof({self.name(d)}));")


def c_string(text: str) -> str:
    """A C string literal for ``text`` (UTF-8; escapes quotes, backslashes, controls)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":  # '?' could start a trigraph
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _line_directive(loc: SourceLoc) -> str:
    return f"#line {max(loc.line, 1)} {c_string(loc.file)}"


_SIZES = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "uint32_t": 4, "int32_t": 4}
_SIZES |= {"float": 4, "uint64_t": 8, "int64_t": 8, "double": 8}


def _size(t: BlockType) -> int:
    """Bytes per element of a block's C array."""
    return _SIZES[c_type(t)]
