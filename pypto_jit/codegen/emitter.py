"""The renderer's state: C names of SSA values, output lines, stack accounting.

Scalars are C locals; blocks are stack arrays of the register type, one per value,
filled by one flat loop over the block's numel. Ops that do not move data (reshape,
expand_dims) bind their result to the source's array name, so a C name may stand for
several values; parallel assignments (loop-carried values, if results) compare
names to detect clobbering. Pointers are int64 element offsets relative to the base
of the tensor parameter they come from (``p<k>``); a tensor parameter itself is
offset 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import SourceLoc
from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import TERMINATORS, Op
from ..ir.types import BlockType, Type, is_ptr, scalar_of
from .ctype import mem, reg

Rule = Callable[["Emitter", Operation], None]
RULES: dict[Op, Rule] = {}


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
    def __init__(self, module: Module, mode: str):
        self.module = module
        self.mode = mode
        self.lines: list[str] = []
        self.depth = 1
        self.stack_bytes = 0
        self.arrays = 0
        self.consts: dict[Value, int | float | bool] = {}  # CONST results, for loop steps
        self.slots: dict[int, int] = {}  # tensor parameter index -> first iargs slot
        self._names: dict[Value, str] = {}
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

    def line_directive(self, loc: SourceLoc | None) -> None:
        if loc is not None:
            file = loc.file.replace("\\", "\\\\").replace('"', '\\"')
            self.lines.append(f'#line {max(loc.line, 1)} "{file}"')

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

    def name(self, v: Value) -> str:
        name = self._names.get(v)
        if name is not None:
            return name
        if v in self.param_of and is_ptr(v.type):
            return "INT64_C(0)"  # a tensor parameter is its own base
        raise KeyError(f"value {v} used before it is defined (renderer bug or unverified IR)")

    def elem(self, v: Value, i: str = "i") -> str:
        """C expression for lane ``i`` of ``v`` (``v`` itself for scalars)."""
        return f"{self.name(v)}[{i}]" if isinstance(v.type, BlockType) else self.name(v)

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

    def elementwise(self, op: Operation, template: Callable[..., str]) -> None:
        """Define ``op``'s result lane by lane as ``template(*operand lanes)``."""
        v = op.result
        if isinstance(v.type, BlockType):
            name = self.declare(v)
            lanes = [self.elem(x) for x in op.operands]
            self.loop(v.type.numel, f"{name}[i] = {template(*lanes)};")
        else:
            self.scalar(v, template(*[self.name(x) for x in op.operands]))

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
        self.line_directive(op.loc)
        fn(self, op)

    def assign(self, dsts: Sequence[Value], srcs: Sequence[Value]) -> None:
        """Parallel assignment ``dsts := srcs`` (every ``src`` is read before any write).

        Only a source that another pair overwrites (a swap) goes through a temporary.
        """
        pairs = [(d, s) for d, s in zip(dsts, srcs, strict=True) if self.name(d) != self.name(s)]
        written = {self.name(d) for d, _ in pairs}
        staged = []
        for d, s in pairs:
            if self.name(s) in written:
                tmp = Value(s.type)
                self.declare(tmp, "t")
                self._copy(tmp, s)
                s = tmp
            staged.append((d, s))
        for d, s in staged:
            self._copy(d, s)

    def _copy(self, d: Value, s: Value) -> None:
        if isinstance(d.type, BlockType):
            self.emit(f"memcpy({self.name(d)}, {self.name(s)}, sizeof({self.name(d)}));")
        else:
            self.emit(f"{self.name(d)} = {self.name(s)};")


_SIZES = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "uint32_t": 4, "int32_t": 4}
_SIZES |= {"float": 4, "uint64_t": 8, "int64_t": 8, "double": 8}


def _size(t: BlockType) -> int:
    """Bytes per element of a block's C array."""
    return _SIZES[c_type(t)]


def mem_type(t: Type) -> str:
    """Memory C type of the elements a pointer (block) ``t`` points to."""
    return mem(scalar_of(t))
