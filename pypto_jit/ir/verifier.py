"""Checks that a module is well formed: types, operand counts, regions, dominance.

``verify(m)`` returns ``None`` or raises ``VerifyError`` naming the first bad
operation, its source location and the problem, with the operation's text::

    add at kernel.py:12:5: result types (f32) do not match the type rule: i32
        %5 = add %3, %4 : f32 loc("kernel.py":12:4)

Rules: every non-region op's result type is what ``infer`` gives; operand and
region counts fit the op; FOR/IF/WHILE regions have the argument types and
terminators the IR semantics need (see ops.py); terminators end regions and
appear nowhere else; every operand is defined earlier in its block or an
enclosing one, and no value is defined twice; the body's args match the params.
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import SourceLoc
from .infer import IRTypeError, infer
from .nodes import Block, Module, Operation, Param, Value
from .ops import BINARY, COMPARE, TERMINATORS, UNARY, Op
from .printer import Namer, format_op_head
from .types import BlockType, PtrType, ScalarType, Type, i1

# (fewest, most) operands; None = no upper bound.
_ARITY: dict[Op, tuple[int, int | None]] = {
    Op.CONST: (0, 0), Op.PROGRAM_ID: (0, 0), Op.NUM_PROGRAMS: (0, 0), Op.ARANGE: (0, 0),
    Op.DIM: (1, 1), Op.STRIDE: (1, 1), Op.SPLAT: (1, 1), Op.BROADCAST: (1, 1),
    Op.RESHAPE: (1, 1), Op.EXPAND_DIMS: (1, 1), Op.CAST: (1, 1),
    Op.ADDPTR: (2, 2), Op.LOAD: (1, 3), Op.STORE: (2, 3), Op.WHERE: (3, 3),
    Op.FOR: (3, None), Op.IF: (1, 1), Op.WHILE: (0, None),
    Op.YIELD: (0, None), Op.CONDITION: (1, None),
    Op.FMA: (3, 3), Op.BITCAST: (1, 1), Op.PERMUTE: (1, 1), Op.REDUCE: (1, 1), Op.SCAN: (1, 1),
    Op.DOT: (3, 3), Op.ATOMIC_RMW: (2, 3), Op.ATOMIC_CAS: (3, 3), Op.DEVICE_ASSERT: (1, 1),
    Op.PRINT: (0, None),
}  # fmt: skip
_ARITY |= {op: (1, 1) for op in UNARY} | {op: (2, 2) for op in BINARY | COMPARE}
_REGIONS = {Op.FOR: 1, Op.IF: 2, Op.WHILE: 2}


class VerifyError(ValueError):
    """A module breaks an IR rule; ``op`` and ``loc`` say where (``None`` for the params)."""

    def __init__(self, message: str, op: Operation | None = None, loc: SourceLoc | None = None):
        self.op, self.loc = op, loc
        super().__init__(message)


def verify(m: Module) -> None:
    """Raise ``VerifyError`` at the first rule ``m`` breaks."""
    _Verifier(m).run()


def _printable(value: object) -> bool:
    """An attribute value that the textual form holds exactly (numpy scalars are not)."""
    if isinstance(value, tuple):
        return all(_printable(v) for v in value)
    return value is None or type(value) in (bool, int, float, str, ScalarType, PtrType, BlockType)


def _types(values: tuple[Value, ...]) -> str:
    return "(" + ", ".join(str(v.type) for v in values) + ")"


def _type_list(types: list[Type]) -> str:
    return "(" + ", ".join(map(str, types)) + ")"


class _Verifier:
    def __init__(self, m: Module) -> None:
        self.m = m
        self.visible: set[Value] = set()  # defined and in scope at the current point
        self.defined: set[Value] = set()  # defined anywhere so far (catches redefinitions)
        self.tensors: dict[Value, Param] = {}

    # -- reporting --------------------------------------------------------------------
    def fail(self, op: Operation | None, problem: str) -> NoReturn:
        if op is None:
            raise VerifyError(f"kernel {self.m.name}: {problem}")
        where = f" at {op.loc}" if op.loc is not None else ""
        try:
            head = "\n    " + format_op_head(op, Namer(self.m))  # names only once it is needed
        except TypeError:  # an attribute the text cannot hold (reported as the problem)
            head = ""
        raise VerifyError(f"{op.op}{where}: {problem}{head}", op, op.loc)

    # -- the kernel -------------------------------------------------------------------
    def run(self) -> None:
        self.params()
        self.define(None, self.m.body.args)
        for op in self.m.body.ops:
            if op.op in TERMINATORS:
                self.fail(op, "terminator in the kernel body")
            self.operation(op)

    def params(self) -> None:
        params, args = self.m.params, self.m.body.args
        if len(params) != len(args):
            self.fail(None, f"{len(params)} params but the body has {len(args)} args")
        if len({p.name for p in params}) != len(params):
            self.fail(None, "two params have the same name")
        for p, v in zip(params, args, strict=True):
            if v.type != p.type:
                self.fail(None, f"param {p.name} is {p.type} but its body arg is {v.type}")
            if p.kind == "tensor":
                if not isinstance(p.type, PtrType):
                    self.fail(None, f"tensor param {p.name} must have a ptr type, not {p.type}")
                if len(p.shape) != len(p.strides):
                    self.fail(None, f"tensor param {p.name} has {len(p.shape)} dims "
                              f"but {len(p.strides)} strides")  # fmt: skip
                if any(d is not None and type(d) is not int for d in p.shape + p.strides):
                    self.fail(None, f"tensor param {p.name}: dims must be ints or None")
                self.tensors[v] = p
            elif p.kind == "scalar":
                if not isinstance(p.type, ScalarType):
                    self.fail(None, f"scalar param {p.name} must have a scalar type, not {p.type}")
                if p.shape or p.strides:
                    self.fail(None, f"scalar param {p.name} has a shape")
            else:
                self.fail(None, f"param {p.name} has unknown kind {p.kind!r}")
            for name, value in p.facts:
                if not _printable(value):
                    self.fail(None, f"param {p.name} fact {name}={value!r} cannot be printed")

    # -- scopes -----------------------------------------------------------------------
    def define(self, op: Operation | None, values: tuple[Value, ...]) -> None:
        for v in values:
            if v in self.defined:
                self.fail(op, "defines a value that is already defined")
            self.defined.add(v)
            self.visible.add(v)

    def region(
        self, owner: Operation, index: int, arg_types: list[Type], terminator: Op
    ) -> Operation:
        """Check region ``index`` of ``owner``; return its terminator."""
        block: Block = owner.regions[index]
        if [v.type for v in block.args] != arg_types:
            self.fail(owner, f"region {index} args are {_types(block.args)}, "
                      f"must be {_type_list(arg_types)}")  # fmt: skip
        self.define(owner, block.args)
        for i, op in enumerate(block.ops):
            if op.op in TERMINATORS and i + 1 < len(block.ops):
                self.fail(op, "terminator before the end of its region")
            self.operation(op)
        if not block.ops or block.ops[-1].op is not terminator:
            self.fail(owner, f"region {index} must end with {terminator}")
        # Leaving the region: its values go out of scope.
        self.visible.difference_update(block.args)
        for op in block.ops:
            self.visible.difference_update(op.results)
        return block.ops[-1]

    def yields(self, owner: Operation, index: int, arg_types: list[Type], want: list[Type]):
        term = self.region(owner, index, arg_types, Op.YIELD)
        if [v.type for v in term.operands] != want:
            self.fail(term, f"yields {_types(term.operands)} but {owner.op} region {index} "
                      f"must yield {_type_list(want)}")  # fmt: skip

    # -- operations -------------------------------------------------------------------
    def operation(self, op: Operation) -> None:
        lo, hi = _ARITY[op.op]
        n = len(op.operands)
        if n < lo or (hi is not None and n > hi):
            most = "" if hi == lo else (f" to {hi}" if hi is not None else " or more")
            self.fail(op, f"takes {lo}{most} operands, got {n}")
        for i, v in enumerate(op.operands):
            if v not in self.visible:
                where = (
                    "a region that does not enclose it" if v in self.defined else "no earlier op"
                )
                self.fail(op, f"operand {i} is defined by {where}")
        if len(op.regions) != _REGIONS.get(op.op, 0):
            self.fail(op, f"has {len(op.regions)} regions, needs {_REGIONS.get(op.op, 0)}")
        for name, value in op.attrs:
            if not _printable(value):
                self.fail(
                    op,
                    f"attribute {name}={value!r} of type {type(value).__name__} is "
                    "not an IR attribute value (None, bool, int, float, str, tuple, type)",
                )
        check = _CHECKS.get(op.op, _Verifier.typed)
        check(self, op)
        self.define(op, op.results)

    def typed(self, op: Operation) -> None:
        """A non-region op: its result is exactly what the type rule gives."""
        declared = op.results[0].type if op.results else None
        try:
            want = infer(op.op, [v.type for v in op.operands], op.attr_dict, declared)
        except IRTypeError as e:
            self.fail(op, str(e))
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            self.fail(op, f"malformed operands or attributes: {e}")
        got = [v.type for v in op.results]
        if got != ([] if want is None else [want]):
            rule = "no result" if want is None else str(want)
            self.fail(op, f"result types {_type_list(got)} do not match the type rule: {rule}")
        if op.op is Op.CONST:
            self.const_value(op)
        if op.op in (Op.DIM, Op.STRIDE):
            self.layout_query(op)

    def const_value(self, op: Operation) -> None:
        value, t = op.attr("value"), op.results[0].type
        if type(value) not in (bool, int, float):
            self.fail(op, f"const value must be a bool, int or float, got {value!r}")
        if t.is_int and type(value) is float:
            self.fail(op, f"const {t} with a float value {value!r}")

    def layout_query(self, op: Operation) -> None:
        p = self.tensors.get(op.operands[0])
        if p is None:
            self.fail(op, "operand must be a tensor parameter")
        axis = op.attr("axis")
        if type(axis) is not int or not 0 <= axis < len(p.shape):
            self.fail(op, f"axis {axis!r} out of range for {p.name} of rank {len(p.shape)}")

    def terminator(self, op: Operation) -> None:
        # Where a terminator may stand and what it carries is checked by its owner.
        if op.results:
            self.fail(op, "a terminator has no results")

    def for_(self, op: Operation) -> None:
        lower, upper, step = (v.type for v in op.operands[:3])
        if not (isinstance(lower, ScalarType) and lower.is_int and lower == upper == step):
            self.fail(op, f"bounds must be integer scalars of one type, got {lower}, {upper}, "
                      f"{step}")  # fmt: skip
        carried = [v.type for v in op.operands[3:]]
        self.results_are(op, carried)
        self.yields(op, 0, [lower, *carried], carried)

    def if_(self, op: Operation) -> None:
        if op.operands[0].type != i1:
            self.fail(op, f"condition must be an i1 scalar, got {op.operands[0].type}")
        results = [v.type for v in op.results]
        self.yields(op, 0, [], results)
        self.yields(op, 1, [], results)

    def while_(self, op: Operation) -> None:
        carried = [v.type for v in op.operands]
        cond = self.region(op, 0, carried, Op.CONDITION)
        if cond.operands[0].type != i1:
            self.fail(cond, f"condition must be an i1 scalar, got {cond.operands[0].type}")
        forwarded = [v.type for v in cond.operands[1:]]
        self.results_are(op, forwarded)
        self.yields(op, 1, forwarded, carried)

    def results_are(self, op: Operation, want: list[Type]) -> None:
        got = [v.type for v in op.results]
        if got != want:
            self.fail(op, f"results are {_type_list(got)}, must be {_type_list(want)}")


_CHECKS = {
    Op.FOR: _Verifier.for_, Op.IF: _Verifier.if_, Op.WHILE: _Verifier.while_,
    Op.YIELD: _Verifier.terminator, Op.CONDITION: _Verifier.terminator,
}  # fmt: skip
