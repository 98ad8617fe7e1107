"""Reads the IR's textual form (grammar.lark) back into a ``Module``.

``parse_module(print_module(m)) == m`` for every module (``==`` being
``structurally_equal``, which needs values defined before use; ill-formed
modules still keep every value, type and name), and printed text reprints
unchanged. Text written by hand may leave things out:

* ``// comments`` anywhere a line may end;
* ``loc(...)`` on any operation (``loc("file.py":3:4)`` needs no file table);
* result types, where the op's type rule gives them (``%2 = add %0, %1``), and
  for ``for`` (the init types) and ``while`` (the types its ``condition``
  forwards).

Value names are global to the module (SSA): a name defined twice is one value
(the verifier then reports it). A value may be used before its definition only
if its type is written there.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from ..errors import SourceLoc
from .infer import IRTypeError, infer
from .nodes import Block, Module, Operation, Param, Value
from .ops import OPS_BY_NAME, Op
from .types import SCALARS, BlockType, PtrType, Type


class IRParseError(ValueError):
    """The text is not valid IR; the message starts with ``line:col``."""

    def __init__(self, message: str, line: int, col: int, text: str | None = None) -> None:
        self.line, self.col, self.raw_message = line, col, message
        rendered = f"{line}:{col}: {message}"
        lines = text.splitlines() if text else []
        if 0 < line <= len(lines):  # show the line with a caret under the column
            rendered += f"\n    {lines[line - 1]}\n    {' ' * (col - 1)}^"
        super().__init__(rendered)


# -- parse tree -> raw statements (names still unresolved) -----------------------------


@dataclass
class _RawBlock:
    args: list[tuple[Token, Type]] = field(default_factory=list)
    ops: list[_RawOp] = field(default_factory=list)


@dataclass
class _RawOp:
    results: list[Token]
    name: Token
    operands: list[Token]
    attrs: list[tuple[str, Any]]
    types: list[Type] | None
    loc: tuple[Token, Token, Token] | None
    regions: list[_RawBlock]


@dataclass
class _RawParam:
    label: Token
    type: Type
    kind: str
    shape: tuple[int | None, ...]
    strides: tuple[int | None, ...]
    facts: tuple[tuple[str, Any], ...]


def _error_at(tok: Token, message: str) -> IRParseError:
    return IRParseError(message, tok.line or 0, tok.column or 0)


def _string(tok: Token) -> str:
    try:
        return json.loads(tok)
    except ValueError as e:
        raise _error_at(tok, f"bad string {tok}: {e}") from None


@v_args(inline=True)
class _ToRaw(Transformer):
    """Bottom-up: tokens and subtrees to plain Python values and raw statements."""

    # values and types
    def int_value(self, tok):
        return int(tok)

    def float_value(self, tok):
        return float(tok)

    def str_value(self, tok):
        return _string(tok)

    def true_value(self):
        return True

    def false_value(self):
        return False

    def none_value(self):
        return None

    def tuple_value(self, *items):
        return tuple(items)

    def scalar_type(self, tok):
        return SCALARS[str(tok)]

    def ptr_type(self, t):
        return PtrType(t)

    def block_type(self, t, *dims):
        try:
            return BlockType(t, tuple(int(d) for d in dims))
        except ValueError as e:
            raise _error_at(dims[0], str(e)) from None

    # attributes
    def attr_name(self, tok):
        return _string(tok) if tok.type == "STRING" else str(tok)

    def attr(self, name, value):
        return (name, value)

    def flag(self, name):
        return (name, True)

    def attr_dict(self, *attrs):
        return list(attrs)

    # statements
    def results(self, *toks):
        return list(toks)

    def operands(self, *toks):
        return list(toks)

    def result_types(self, *types):
        return list(types)

    def loc(self, file, line, col):
        return (file, line, col)

    def stmt(self, results, name, operands, attrs, types, loc, regions):
        return _RawOp(results or [], name, operands, attrs or [], types, loc, regions or [])

    def regions(self, *blocks):
        return list(blocks)

    def block_arg(self, tok, t):
        return (tok, t)

    def block_head(self, *args):
        return list(args)

    def region(self, head, *stmts):
        return _RawBlock(head or [], list(stmts))

    def body(self, *stmts):
        return _RawBlock([], list(stmts))

    # the kernel
    def dim(self, tok=None):
        return None if tok is None else int(tok)

    def dims(self, *ds):
        return tuple(ds)

    def layout(self, shape, strides):
        return (shape, strides)

    def param_kind(self, tok):
        return _string(tok) if tok.type == "STRING" else str(tok)

    def param(self, label, t, kind, layout, facts):
        shape, strides = layout or ((), ())
        return _RawParam(label, t, kind, shape, strides, tuple(facts or ()))

    def param_list(self, *params):
        return list(params)

    def arg_clause(self, *args):
        return list(args)

    def kernel_name(self, tok):
        return _string(tok) if tok.type == "STRING" else str(tok)[1:]

    def kernel(self, name, params, args, body):
        return (name, params, args, body)

    def file_decl(self, index, path):
        return ("file", index, _string(path))

    def undef_decl(self, tok, t):
        return ("undef", tok, t)

    def start(self, *items):
        return list(items)


@functools.cache
def _lark() -> Lark:
    # The transformer runs inside the LALR parser (no parse tree is built): ~40% faster.
    return Lark.open(
        str(Path(__file__).with_name("grammar.lark")),
        parser="lalr",
        maybe_placeholders=True,
        transformer=_ToRaw(),
    )


# -- raw statements -> Module ---------------------------------------------------------


class _Resolver:
    """Turns names into Values in two passes, so that uses may precede definitions.

    Pass one creates every value whose type is written (parameters, block args,
    typed results); pass two builds the operations in textual order, inferring
    the types left out.
    """

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.files: dict[int, str] = {}

    def define(self, tok: Token, t: Type) -> Value:
        v = self.values.get(str(tok))
        if v is None:
            v = self.values[str(tok)] = Value(t)
        elif v.type != t:
            raise _error_at(tok, f"{tok} is defined again with type {t}, was {v.type}")
        return v

    def lookup(self, tok: Token) -> Value:
        v = self.values.get(str(tok))
        if v is None:
            raise _error_at(tok, f"use of undefined value {tok}")
        return v

    def predefine(self, block: _RawBlock) -> None:
        for tok, t in block.args:
            self.define(tok, t)
        for raw in block.ops:
            if raw.types is not None:
                if len(raw.types) != len(raw.results):
                    raise _error_at(
                        raw.name, f"{len(raw.results)} results but {len(raw.types)} types"
                    )
                for tok, t in zip(raw.results, raw.types, strict=True):
                    self.define(tok, t)
            for region in raw.regions:
                self.predefine(region)

    def block(self, raw: _RawBlock, args: tuple[Value, ...] | None = None) -> Block:
        if args is None:
            args = tuple(self.values[str(tok)] for tok, _ in raw.args)
        return Block(args, tuple(self.operation(o) for o in raw.ops))

    def operation(self, raw: _RawOp) -> Operation:
        op = OPS_BY_NAME.get(str(raw.name))
        if op is None:
            raise _error_at(raw.name, f"unknown operation {str(raw.name)!r}")
        operands = tuple(self.lookup(tok) for tok in raw.operands)
        regions = tuple(self.block(r) for r in raw.regions)
        types = raw.types
        if types is None:
            types = self.infer_types(raw, op, operands, regions)
        results = tuple(self.define(tok, t) for tok, t in zip(raw.results, types, strict=True))
        attrs = tuple(raw.attrs)
        try:
            return Operation(op, results, operands, attrs, regions, self.loc(raw.loc))
        except TypeError as e:  # attrs that cannot be sorted (a repeated name, mixed values)
            raise _error_at(raw.name, f"bad attributes: {e}") from None

    def infer_types(
        self, raw: _RawOp, op: Op, operands: tuple[Value, ...], regions: tuple[Block, ...]
    ) -> list[Type]:
        """Result types left out of the text: from the type rule, or the region op's shape."""
        if not raw.results:
            return []
        if op is Op.FOR:
            types = [v.type for v in operands[3:]]
        elif (
            op is Op.WHILE
            and regions
            and regions[0].ops[-1:]
            and (regions[0].ops[-1].op is Op.CONDITION)
        ):
            types = [v.type for v in regions[0].ops[-1].operands[1:]]
        elif op in (Op.IF, Op.WHILE):
            raise _error_at(raw.name, f"{op} needs its result types written after ':'")
        else:
            try:
                t = infer(op, [v.type for v in operands], dict(raw.attrs))
            except (IRTypeError, IndexError, ValueError) as e:
                raise _error_at(
                    raw.name, f"cannot infer the result type of {op} ({e}); write it after ':'"
                ) from None
            types = [] if t is None else [t]
        if len(types) != len(raw.results):
            raise _error_at(raw.name, f"{op} gives {len(types)} results, not {len(raw.results)}")
        return types

    def loc(self, raw: tuple[Token, Token, Token] | None) -> SourceLoc | None:
        if raw is None:
            return None
        file, line, col = raw
        if file.type == "STRING":
            path = _string(file)
        elif int(file) in self.files:
            path = self.files[int(file)]
        else:
            raise _error_at(file, f"no file {file} in the file table")
        return SourceLoc(path, int(line), int(col))

    def module(self, items: list) -> Module:
        name, raw_params, arg_clause, body = items[-1]
        for item in items[:-1]:
            if item[0] == "file":
                self.files[int(item[1])] = item[2]
            else:
                self.define(item[1], item[2])
        params = tuple(self.param(p, define=arg_clause is None) for p in raw_params)
        if arg_clause is None:
            args = tuple(self.values[str(p.label)] for p in raw_params)
        else:
            args = tuple(self.define(tok, t) for tok, t in arg_clause)
        self.predefine(body)
        return Module(name, params, self.block(body, args))

    def param(self, raw: _RawParam, define: bool) -> Param:
        if raw.label.type == "STRING":
            if define:
                raise _error_at(
                    raw.label, "a parameter named by a string needs an args(...) clause"
                )
            name = _string(raw.label)
        else:
            name = str(raw.label)[1:]
            if define:
                self.define(raw.label, raw.type)
        return Param(name, raw.kind, raw.type, raw.shape, raw.strides, raw.facts)


def _describe_expected(expected: set[str]) -> str:
    """Terminal names as a reader knows them: ``'{'`` rather than ``LBRACE``."""
    friendly = {"_NL": "newline", "VALUE": "%value", "NAME": "name", "STRING": "string"}
    friendly |= {"INT": "integer", "FLOAT": "float", "SCALAR": "scalar type"}
    friendly |= {"SYMBOL": "@name", "$END": "end of text"}
    words = set()
    for name in expected:
        if name in friendly:
            words.add(friendly[name])
            continue
        try:
            words.add(repr(_lark().get_terminal(name).pattern.value))
        except KeyError:
            words.add(name)
    return ", ".join(sorted(words))


def _syntax_error(e: UnexpectedInput, text: str) -> IRParseError:
    if isinstance(e, UnexpectedToken):
        got = "end of text" if e.token.type == "$END" else repr(str(e.token))
        got = "newline" if e.token.type == "_NL" else got
        try:  # what can really follow here (e.expected also lists tokens LALR merged in)
            expected = e.interactive_parser.accepts()
        except Exception:  # noqa: BLE001 - only a nicer message is at stake
            expected = e.expected
        message = f"unexpected {got}; expected {_describe_expected(expected)}"
    elif isinstance(e, UnexpectedCharacters):
        message = f"unexpected character {text[e.pos_in_stream]!r}"
    elif isinstance(e, UnexpectedEOF):
        message = f"unexpected end of text; expected {_describe_expected(set(e.expected))}"
    else:
        message = str(e)
    return IRParseError(message, e.line, e.column, text)


def parse_module(text: str) -> Module:
    """The module written in ``text`` (see printer.py); ``IRParseError`` if it is not IR."""
    source = text if text.endswith("\n") else text + "\n"  # every statement ends a line
    try:
        items = _lark().parse(source)
        return _Resolver().module(items)
    except UnexpectedInput as e:
        raise _syntax_error(e, source) from None
    except VisitError as e:
        if isinstance(e.orig_exc, IRParseError):
            raise _with_source(e.orig_exc, source) from None
        raise
    except IRParseError as e:
        raise _with_source(e, source) from None


def _with_source(e: IRParseError, text: str) -> IRParseError:
    return IRParseError(e.raw_message, e.line, e.col, text)
