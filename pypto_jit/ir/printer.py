"""The IR's textual form: ``print_module`` (the inverse of ``parser.parse_module``).

An example::

    file 0 "/home/me/kernels/add.py"
    kernel @add_kernel(
      %x: ptr<f32> tensor(shape=[1000], strides=[1]) {aligned16},
      %n: i32 scalar {div16}
    ) {
      %0 = program_id {axis=0} : i32 loc(0:6:10)
      %1 = const {value=1} : i32 loc(0:7:11)
      %2 = const {value=0.0} : f32
      %3, %4 = for %0, %n, %1, %2, %x : f32, ptr<f32> loc(0:8:4) {
      ^(%5: i32, %6: f32, %7: ptr<f32>):
        %8 = load %7 : f32 loc(0:9:12)
        %9 = add %6, %8 : f32 loc(0:9:8)
        %10 = addptr %7, %1 : ptr<f32> loc(0:10:8)
        yield %9, %10 loc(0:8:4)
      }
      store %x, %3 loc(0:11:4)
    }

Parameters' values are named after the parameters; every other value is
``%N``, numbered in textual order. Locations point into the ``file`` table so
that a path is printed once. The text is a pure function of the module (same
module, same text) because the cache stores it and hashes may be taken over it.
"""

from __future__ import annotations

import json
import math
import re

from ..errors import SourceLoc
from .nodes import AttrValue, Block, Module, Operation, Param, Value
from .ops import Op
from .types import BlockType, PtrType, ScalarType

# Must agree with the terminals of the same meaning in grammar.lark.
_VALUE_NAME = re.compile(r"[^\W\d][\w]*")
_SYMBOL = re.compile(r"[A-Za-z_][\w.$]*")
_NAME = re.compile(r"[A-Za-z_][\w.]*")
_REGION_WORDS = {Op.IF: "else", Op.WHILE: "do"}
INDENT = "  "


class Namer:
    """SSA names for a module's values, assigned in textual order.

    Parameters' values are ``%<param name>``; when they cannot be (odd or
    repeated names, a body whose args do not match the params) the kernel is
    printed with an explicit ``args(...)`` clause instead (``explicit_args``).
    Values used but never defined are numbered last and listed in
    ``undefined`` (only ill-formed modules have them).
    """

    def __init__(self, m: Module) -> None:
        self.names: dict[Value, str] = {}
        self.undefined: list[Value] = []
        self._count = 0
        self.explicit_args = not _params_are_names(m)
        if not self.explicit_args:
            for p, v in zip(m.params, m.body.args, strict=True):
                self.names[v] = f"%{p.name}"
        else:
            self._define(m.body.args)
        self._number_block(m.body, args=False)
        for op in m.walk():
            for v in op.operands:
                if v not in self.names:
                    self.undefined.append(v)
                    self._define((v,))

    def __getitem__(self, v: Value) -> str:
        return self.names.get(v, "%?")

    def _define(self, values: tuple[Value, ...]) -> None:
        for v in values:
            if v not in self.names:  # a value defined twice keeps its first name
                self.names[v] = f"%{self._count}"
                self._count += 1

    def _number_block(self, block: Block, args: bool = True) -> None:
        if args:
            self._define(block.args)
        for op in block.ops:
            self._define(op.results)  # results print before the regions
            for region in op.regions:
                self._number_block(region)


def _params_are_names(m: Module) -> bool:
    if len(m.params) != len(m.body.args) or len(set(m.body.args)) != len(m.body.args):
        return False
    if len({p.name for p in m.params}) != len(m.params):
        return False
    return all(
        _VALUE_NAME.fullmatch(p.name) and v.type == p.type
        for p, v in zip(m.params, m.body.args, strict=True)
    )


# -- leaves ---------------------------------------------------------------------------


def format_name(name: str, pattern: re.Pattern = _NAME) -> str:
    """A bare identifier when the grammar reads it as one, else a quoted string."""
    return name if pattern.fullmatch(name) else json.dumps(name)


def format_value(v: AttrValue) -> str:
    """An attribute (or parameter fact) value."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return float.__repr__(v)  # shortest text that reads back exactly; also inf, -0.0
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, (ScalarType, PtrType, BlockType)):
        return str(v)
    raise TypeError(f"cannot print attribute value {v!r} of type {type(v).__name__}")


def format_attrs(attrs: tuple[tuple[str, AttrValue], ...], bare_true: bool = False) -> str:
    """``{axis=0, value=1.5}``; with ``bare_true`` a true flag prints as its name alone."""
    items = []
    for k, v in attrs:
        if bare_true and v is True:
            items.append(format_name(k))
        else:
            items.append(f"{format_name(k)}={format_value(v)}")
    return "{" + ", ".join(items) + "}"


def _dims(dims: tuple[int | None, ...]) -> str:
    return "[" + ",".join("?" if d is None else int.__repr__(d) for d in dims) + "]"


def format_param(p: Param, label: str) -> str:
    """``%x: ptr<f32> tensor(shape=[1000,?], strides=[1,1]) {aligned16}``."""
    text = f"{label}: {p.type} {format_name(p.kind)}"
    if p.shape or p.strides or p.kind == "tensor":
        text += f"(shape={_dims(p.shape)}, strides={_dims(p.strides)})"
    if p.facts:
        text += " " + format_attrs(p.facts, bare_true=True)
    return text


# -- operations -----------------------------------------------------------------------


def format_op_head(op: Operation, names: Namer, files: dict[str, int] | None = None) -> str:
    """One operation up to (not including) its regions: ``%5 = add %3, %4 : i32 loc(0:1:2)``.

    Without a file table the location prints as ``loc("file.py":1:2)``.
    """
    parts = []
    if op.results:
        parts.append(", ".join(names[v] for v in op.results) + " =")
    parts.append(str(op.op))
    if op.operands:
        parts.append(", ".join(names[v] for v in op.operands))
    if op.attrs:
        parts.append(format_attrs(op.attrs))
    if op.results:
        parts.append(": " + ", ".join(str(v.type) for v in op.results))
    if op.loc is not None:
        parts.append(format_loc(op.loc, files))
    return " ".join(parts)


def format_loc(loc: SourceLoc, files: dict[str, int] | None = None) -> str:
    where = json.dumps(loc.file) if files is None else str(files[loc.file])
    return f"loc({where}:{loc.line}:{loc.col})"


class _Printer:
    def __init__(self, m: Module) -> None:
        self.m = m
        self.names = Namer(m)
        self.files: dict[str, int] = {}
        for op in m.walk():
            if op.loc is not None:
                self.files.setdefault(op.loc.file, len(self.files))
        self.lines: list[str] = []

    def run(self) -> str:
        for path, index in self.files.items():
            self.lines.append(f"file {index} {json.dumps(path)}")
        for v in self.names.undefined:
            self.lines.append(f"undef {self.names[v]}: {v.type}")
        self._kernel_head()
        self._ops(self.m.body.ops, INDENT)
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"

    def _kernel_head(self) -> None:
        m, names = self.m, self.names
        self.lines.append(f"kernel {self._symbol(m.name)}(")
        for i, p in enumerate(m.params):
            label = json.dumps(p.name) if names.explicit_args else names[m.body.args[i]]
            comma = "," if i + 1 < len(m.params) else ""
            self.lines.append(INDENT + format_param(p, label) + comma)
        close = ")"
        if names.explicit_args:
            close += " args(" + self._args(m.body.args) + ")"
        if not m.params:
            self.lines[-1] += close + " {"
        else:
            self.lines.append(close + " {")

    @staticmethod
    def _symbol(name: str) -> str:
        return "@" + name if _SYMBOL.fullmatch(name) else json.dumps(name)

    def _args(self, args: tuple[Value, ...]) -> str:
        return ", ".join(f"{self.names[v]}: {v.type}" for v in args)

    def _ops(self, ops: tuple[Operation, ...], indent: str) -> None:
        for op in ops:
            head = indent + format_op_head(op, self.names, self.files)
            if not op.regions:
                self.lines.append(head)
                continue
            word = _REGION_WORDS.get(op.op, "and")
            self.lines.append(head + " {")
            for i, region in enumerate(op.regions):
                if i:
                    self.lines.append(f"{indent}}} {word} {{")
                if region.args:
                    self.lines.append(f"{indent}^({self._args(region.args)}):")
                self._ops(region.ops, indent + INDENT)
            self.lines.append(indent + "}")


def print_module(m: Module) -> str:
    """The module as text; ``parser.parse_module`` reads it back to an equal module."""
    return _Printer(m).run()
