"""IR nodes: values, operations, blocks, parameters and the kernel module.

One node type, ``Operation``, holds an op, its operands (SSA ``Value``s), its
result values, constant attributes, nested regions (for structured control
flow) and the user's source location. Nodes are immutable: passes build new
operations and blocks rather than editing old ones. ``Value`` objects are SSA
names compared by identity; a pass that keeps a value's meaning keeps the
object.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import SourceLoc
from .ops import Op
from .types import Type


class Value:
    """An SSA value: an operation result, a block argument or a parameter."""

    __slots__ = ("type",)

    def __init__(self, type: Type):  # noqa: A002 - "type" is the IR's word for it
        self.type = type

    def __repr__(self) -> str:
        return f"Value({self.type}, id={id(self):#x})"


AttrValue = Any  # int | float | bool | str | tuple | Type


@dataclass(frozen=True, eq=False)
class Operation:
    op: Op
    results: tuple[Value, ...]
    operands: tuple[Value, ...] = ()
    attrs: tuple[tuple[str, AttrValue], ...] = ()  # sorted by name
    regions: tuple[Block, ...] = ()
    loc: SourceLoc | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", tuple(sorted(self.attrs)))

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"{self.op} has {len(self.results)} results, not one")
        return self.results[0]

    def attr(self, name: str, default: AttrValue = None) -> AttrValue:
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def attr_dict(self) -> dict[str, AttrValue]:
        return dict(self.attrs)

    def with_attrs(self, **updates: AttrValue) -> Operation:
        """A copy with attributes added or replaced (``None`` removes one)."""
        merged = {**self.attr_dict, **updates}
        return replace(self, attrs=tuple((k, v) for k, v in merged.items() if v is not None))

    def __repr__(self) -> str:
        return f"Operation({self.op}, {len(self.operands)} operands, {len(self.results)} results)"


@dataclass(frozen=True, eq=False)
class Block:
    """A region body: arguments and a straight-line list of operations.

    Blocks nested in FOR/IF/WHILE end with a terminator (YIELD or CONDITION);
    the kernel body does not.
    """

    args: tuple[Value, ...] = ()
    ops: tuple[Operation, ...] = ()

    def walk(self) -> Iterator[Operation]:
        """Every operation, nested ones included, in program order (pre-order)."""
        for op in self.ops:
            yield op
            for region in op.regions:
                yield from region.walk()


@dataclass(frozen=True)
class Param:
    """A kernel parameter as the IR sees it.

    ``kind`` is ``"tensor"`` (``type`` is ``ptr<T>``; ``shape``/``strides`` give
    the layout, ``None`` for a dimension that is not specialized) or
    ``"scalar"`` (``type`` is a scalar type). ``facts`` are specialization facts,
    e.g. ``("aligned16", True)`` for a tensor, ``("div16", True)`` for an int.
    """

    name: str
    kind: str
    type: Type
    shape: tuple[int | None, ...] = ()
    strides: tuple[int | None, ...] = ()
    facts: tuple[tuple[str, AttrValue], ...] = field(default=())

    def fact(self, name: str, default: AttrValue = None) -> AttrValue:
        return dict(self.facts).get(name, default)


@dataclass(frozen=True, eq=False)
class Module:
    """One kernel: its name, parameters and body (whose args are the params)."""

    name: str
    params: tuple[Param, ...]
    body: Block

    def walk(self) -> Iterator[Operation]:
        return self.body.walk()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Module) and structurally_equal(self, other)

    __hash__ = object.__hash__


def _attr_equal(a: AttrValue, b: AttrValue) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_attr_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _param_fields(m: Module) -> tuple:
    # Compared like attrs (not with Param.__eq__) so that nan and -0.0 facts compare by value.
    return tuple((p.name, p.kind, p.type, p.shape, p.strides, p.facts) for p in m.params)


def structurally_equal(a: Module, b: Module) -> bool:
    """Equal up to the identity of values: same ops, types, attrs, locations, nesting."""
    if a.name != b.name or not _attr_equal(_param_fields(a), _param_fields(b)):
        return False
    names: dict[Value, Value] = {}

    def same_values(xs: tuple[Value, ...], ys: tuple[Value, ...], define: bool) -> bool:
        if len(xs) != len(ys):
            return False
        for x, y in zip(xs, ys, strict=True):
            if x.type != y.type:
                return False
            if define:
                names[x] = y
            elif names.get(x) is not y:
                return False
        return True

    def same_block(x: Block, y: Block) -> bool:
        if not same_values(x.args, y.args, define=True) or len(x.ops) != len(y.ops):
            return False
        return all(same_op(p, q) for p, q in zip(x.ops, y.ops, strict=True))

    def same_op(p: Operation, q: Operation) -> bool:
        if p.op != q.op or p.loc != q.loc or len(p.attrs) != len(q.attrs):
            return False
        pairs = zip(p.attrs, q.attrs, strict=True)
        if any(ka != kb or not _attr_equal(va, vb) for (ka, va), (kb, vb) in pairs):
            return False
        if not same_values(p.operands, q.operands, define=False):
            return False
        if len(p.regions) != len(q.regions):
            return False
        if not all(same_block(r, s) for r, s in zip(p.regions, q.regions, strict=True)):
            return False
        return same_values(p.results, q.results, define=True)

    return same_block(a.body, b.body)
