"""Builds IR: appends operations to the innermost open block.

The frontend drives one ``Builder`` per kernel. ``loc`` is the source location
stamped on every operation emitted while it is set.
"""

from __future__ import annotations

from ..errors import SourceLoc
from .infer import infer
from .nodes import AttrValue, Block, Module, Operation, Param, Value
from .ops import Op
from .types import BlockType, ScalarType, Type


class Builder:
    def __init__(self) -> None:
        self._blocks: list[tuple[tuple[Value, ...], list[Operation]]] = []
        self.loc: SourceLoc | None = None

    # -- blocks ---------------------------------------------------------------
    def open_block(self, arg_types: tuple[Type, ...] = ()) -> tuple[Value, ...]:
        args = tuple(Value(t) for t in arg_types)
        self._blocks.append((args, []))
        return args

    def close_block(self) -> Block:
        args, ops = self._blocks.pop()
        return Block(args, tuple(ops))

    # -- generic emission -------------------------------------------------------
    def emit(
        self,
        op: Op,
        operands: tuple[Value, ...] | list[Value] = (),
        result_types: tuple[Type, ...] = (),
        attrs: dict[str, AttrValue] | None = None,
        regions: tuple[Block, ...] = (),
    ) -> Operation:
        operation = Operation(
            op,
            tuple(Value(t) for t in result_types),
            tuple(operands),
            tuple((attrs or {}).items()),
            regions,
            self.loc,
        )
        self._blocks[-1][1].append(operation)
        return operation

    def typed(
        self, op: Op, *operands: Value, declared: Type | None = None, **attrs: AttrValue
    ) -> Value | None:
        """Emit a non-region op whose result type follows from its rule."""
        t = infer(op, [v.type for v in operands], attrs, declared)
        operation = self.emit(op, operands, (t,) if t is not None else (), attrs)
        return operation.results[0] if t is not None else None

    # -- conveniences -------------------------------------------------------------
    def const(self, value: int | float | bool, t: ScalarType) -> Value:
        return self.typed(Op.CONST, declared=t, value=value)

    def splat(self, v: Value, shp: tuple[int, ...]) -> Value:
        return self.typed(Op.SPLAT, v, declared=BlockType(v.type, shp))

    def cast(self, v: Value, t: Type) -> Value:
        return v if v.type == t else self.typed(Op.CAST, v, declared=t)

    def yield_(self, *values: Value) -> None:
        self.emit(Op.YIELD, values)


def new_module(name: str, params: tuple[Param, ...], body: Block) -> Module:
    return Module(name, params, body)
