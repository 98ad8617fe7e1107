"""The IR's textual form: printing, parsing, round trips and parse errors."""

from __future__ import annotations

import math
import textwrap

import pytest

from pypto_jit.errors import SourceLoc
from pypto_jit.ir import (
    Builder,
    IRParseError,
    Module,
    Op,
    Param,
    Value,
    parse_module,
    print_module,
    printer,
    verify,
)
from pypto_jit.ir.nodes import Block, Operation
from pypto_jit.ir.ops import BINARY, COMPARE, UNARY
from pypto_jit.ir.types import SCALARS, BlockType, PtrType, f16, f32, f64, i1, i32, i64

# -- modules built in Python ------------------------------------------------------------

ODD_ATTRS = {
    "big": 2**70,
    "neg": -5,
    "flag": False,
    "on": True,
    "ratio": 0.1,
    "tiny": 5e-324,
    "huge": -1.5e300,
    "text": 'quote " backslash \\ newline \n tab \t unicode \u00fc \U0001f600',
    "empty": "",
    "tup": (1, (2.5, "x", ()), True),
    "none": None,
    "t_scalar": f16,
    "t_ptr": PtrType(f32),
    "t_block": BlockType(PtrType(f32), (2, 3)),
    "odd key!": 1,
    "loc": 2,  # keys spelled like keywords
    "true": 4,
    "else": 5,
    "file": 6,
    "i32": 3,
}


def _params() -> tuple[Param, ...]:
    facts = (("aligned16", True), ("div", 16), ("dims", (1, 2)), ("ty", f32), ("r", -0.0))
    return (
        Param("x", "tensor", PtrType(f32), (None, 64), (64, 1), facts),
        Param("y", "tensor", PtrType(f16), (8,), (None,), (("note", 'a"b'), ("nan", math.nan))),
        Param("n", "scalar", i32, (), (), (("div16", True),)),
        Param("alpha", "scalar", f64),
        Param("flag", "scalar", i1),
    )


def _loop(b: Builder, pid: Value, n: Value, acc0: Value) -> Value:
    """for (with an if holding a while inside) carrying a float."""
    one = b.const(1, i32)
    iv, acc = b.open_block((i32, f32))
    b.loc = SourceLoc("other.py", 7, 2)
    cond = b.typed(Op.LT, iv, n)
    b.open_block()
    c0 = b.const(0, i32)
    c, = b.open_block((i32,))  # fmt: skip
    b.emit(Op.CONDITION, (b.typed(Op.LT, c, n), c))
    before = b.close_block()
    c2, = b.open_block((i32,))  # fmt: skip
    b.yield_(b.typed(Op.ADD, c2, one))
    after = b.close_block()
    w = b.emit(Op.WHILE, (c0,), (i32,), regions=(before, after))
    b.yield_(b.typed(Op.ADD, acc, b.cast(w.result, f32)))
    then = b.close_block()
    b.open_block()
    b.yield_(acc)
    else_ = b.close_block()
    r = b.emit(Op.IF, (cond,), (f32,), regions=(then, else_))
    b.loc = None
    b.yield_(r.result)
    body = b.close_block()
    return b.emit(Op.FOR, (pid, n, one, acc0), (f32,), regions=(body,)).result


def _block_ops(b: Builder, pid, ptrs, mask, ints, v1, v2, v3, v4, halves) -> None:
    """The block computations, atomics and debugging ops, on [4, 8] blocks."""
    b.typed(Op.FMA, v3, v2, v1)
    b.typed(Op.BITCAST, v4, declared=BlockType(i32, (4, 8)))
    b.typed(Op.BITCAST, ints, declared=BlockType(f32, (4, 8)))
    halves_t = b.typed(Op.PERMUTE, halves, order=(1, 0))  # [8, 4]
    b.typed(Op.PERMUTE, ptrs, order=(1, 0))
    b.typed(Op.DOT, halves, halves_t, b.splat(b.const(0.0, f32), (4, 4)))
    b.typed(Op.REDUCE, v4, kind="sum", axis=1, keep_dims=False)
    b.typed(Op.REDUCE, ints, kind="argmax", axis=0, keep_dims=True)
    row = b.typed(Op.REDUCE, ints, kind="xor", axis=0)  # [8]
    b.typed(Op.REDUCE, row, kind="min", axis=0)  # a scalar
    b.typed(Op.SCAN, v4, kind="sum", axis=1, reverse=False)
    b.typed(Op.SCAN, ints, kind="prod", axis=0, reverse=True)
    b.typed(Op.ATOMIC_RMW, ptrs, v4, mask, kind="add")
    b.typed(Op.ATOMIC_RMW, ptrs, v4, kind="xchg")
    b.typed(Op.ATOMIC_CAS, ptrs, v1, v4)
    b.typed(Op.DEVICE_ASSERT, mask, msg='n "fits"')
    b.emit(Op.PRINT, (pid, v4, ptrs), (), {"prefix": "values: "})
    b.emit(Op.PRINT, (), (), {"prefix": ""})


def every_op_module() -> Module:
    """A valid kernel that uses every op, every scalar type and every attr value kind."""
    b = Builder()
    x, y, n, alpha, flag = b.open_block(tuple(p.type for p in _params()))
    b.loc = SourceLoc("/src/kernel.py", 3, 4)
    pid = b.typed(Op.PROGRAM_ID, axis=0)
    b.typed(Op.NUM_PROGRAMS, axis=2)
    b.typed(Op.DIM, x, axis=0)
    b.typed(Op.STRIDE, y, axis=0)
    offs = b.typed(Op.ADD, b.splat(pid, (8,)), b.typed(Op.ARANGE, start=0, end=8))
    col = b.typed(Op.EXPAND_DIMS, offs, axis=1)
    wide = b.typed(Op.BROADCAST, col, declared=BlockType(i32, (8, 4)))
    offs2 = b.typed(Op.RESHAPE, wide, declared=BlockType(i32, (4, 8)))
    ptrs = b.typed(Op.ADDPTR, b.splat(x, (4, 8)), offs2)
    mask = b.typed(Op.LT, offs2, b.splat(n, (4, 8)))
    b.loc = None
    zero = b.splat(b.const(0.0, f32), (4, 8))
    v1 = b.typed(Op.LOAD, ptrs)
    v2 = b.typed(Op.LOAD, ptrs, mask)
    v3 = b.emit(Op.LOAD, (ptrs, mask, zero), (v1.type,), {"param": 0, **ODD_ATTRS}).result
    for op in sorted(UNARY - {Op.NOT}, key=lambda o: o.value):
        v3 = b.typed(op, v3)
    b.typed(Op.NOT, mask)
    b.typed(Op.NOT, offs2)
    ints = offs2
    for op in (Op.IDIV, Op.MOD, Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR, Op.ADD, Op.SUB, Op.MUL):
        ints = b.typed(op, ints, offs2)
    ints = b.typed(Op.UMULHI, ints, offs2)
    for op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM):
        v3 = b.typed(op, v3, v2)
    for op in sorted(COMPARE, key=lambda o: o.value):
        b.typed(op, v1, v3)
    v4 = b.typed(Op.WHERE, mask, v1, v3)
    b.typed(Op.STORE, ptrs, v4, mask)
    b.typed(Op.STORE, ptrs, v4)
    halves = b.cast(v4, BlockType(f16, (4, 8)))
    _block_ops(b, pid, ptrs, mask, ints, v1, v2, v3, v4, halves)
    consts = {
        "i1": True, "i8": -128, "i16": 7, "i32": -(2**31), "i64": 2**63 - 1, "u8": 255,
        "u16": 1, "u32": 2**32 - 1, "u64": 2**64 - 1, "f16": -0.0, "bf16": math.inf,
        "f32": math.nan, "f64": -math.inf,
    }  # fmt: skip
    for name, value in consts.items():
        b.const(value, SCALARS[name])
    b.loc = SourceLoc("/src/kernel.py", 9, 0)
    acc = _loop(b, pid, n, b.cast(alpha, f32))
    b.typed(Op.STORE, x, acc, flag)
    return Module("every_op", _params(), b.close_block())


def _ops_in(m: Module) -> set[Op]:
    return {op.op for op in m.walk()}


def _types_in(m: Module) -> set:
    seen = set()
    for op in m.walk():
        for v in op.results + op.operands:
            seen.add(v.type if not isinstance(v.type, BlockType) else v.type.elem)
    return seen


def round_trip(m: Module) -> str:
    text = print_module(m)
    back = parse_module(text)
    assert back == m, text
    assert print_module(back) == text
    return text


# -- round trips ------------------------------------------------------------------------


def test_every_op_round_trips_and_verifies():
    m = every_op_module()
    assert _ops_in(m) == set(Op)
    assert set(SCALARS.values()) <= _types_in(m)
    verify(m)
    text = round_trip(m)
    verify(parse_module(text))


def test_round_trip_notices_differences():
    """The round trip checks compare something: a changed attr or loc is not equal."""
    m = every_op_module()
    text = print_module(m)
    for old, new in [("axis=2", "axis=1"), ("loc(1:7:2)", "loc(1:7:3)"), ("-0.0", "0.0")]:
        assert old in text
        assert parse_module(text.replace(old, new, 1)) != m


def test_printed_text_is_stable():
    assert print_module(every_op_module()) == print_module(every_op_module())


def test_printed_shape():
    text = print_module(every_op_module())
    lines = text.splitlines()
    assert lines[0] == 'file 0 "/src/kernel.py"'
    assert lines[1] == 'file 1 "other.py"'
    assert lines[2] == "kernel @every_op("
    assert lines[3] == (
        "  %x: ptr<f32> tensor(shape=[?,64], strides=[64,1]) "
        "{aligned16, div=16, dims=[1, 2], ty=f32, r=-0.0},"
    )
    assert lines[5] == "  %n: i32 scalar {div16},"
    assert lines[6] == "  %alpha: f64 scalar,"
    assert "  %0 = program_id {axis=0} : i32 loc(0:3:4)" in lines
    assert "  %2 = dim %x {axis=0} : i64 loc(0:3:4)" in lines
    assert any(
        line.startswith("  %") and " = for " in line and line.endswith(" {") for line in lines
    )
    assert "  ^(" in text and "} else {" in text and "} do {" in text
    assert text.count("/src/kernel.py") == 1  # the file table prints a path once
    # ops without a location print none
    assert any(" = load " in line and "loc(" not in line for line in lines)


CANONICAL = """\
file 0 "k.py"
kernel @k(
  %x: ptr<f32> tensor(shape=[?], strides=[1]) {aligned16},
  %n: i32 scalar
) {
  %0 = program_id {axis=0} : i32 loc(0:2:10)
  %1 = const {value=0.0} : f32
  %2 = const {value=1} : i32
  %3, %4 = for %0, %n, %2, %1, %x : f32, ptr<f32> loc(0:4:4) {
  ^(%5: i32, %6: f32, %7: ptr<f32>):
    %8 = load %7 : f32
    %9 = add %6, %8 : f32 loc(0:5:8)
    %10 = addptr %7, %2 : ptr<f32>
    yield %9, %10
  }
  %11 = gt %3, %1 : i1
  %12 = if %11 : f32 {
    yield %3
  } else {
    %13 = neg %3 : f32
    yield %13
  }
  %14, %15 = while %0, %1 : i32, f32 {
  ^(%16: i32, %17: f32):
    %18 = lt %16, %n : i1
    condition %18, %16, %17
  } do {
  ^(%19: i32, %20: f32):
    %21 = add %19, %2 : i32
    yield %21, %20
  }
  store %x, %12
}
"""


def test_text_round_trips():
    m = parse_module(CANONICAL)
    verify(m)
    assert print_module(m) == CANONICAL
    assert parse_module(print_module(m)) == m


def test_the_printer_docstring_example_is_printed_text():
    example = printer.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    example = textwrap.dedent(example) + "\n"
    m = parse_module(example)
    verify(m)
    assert print_module(m) == example


def test_empty_kernel_on_one_line():
    m = parse_module("kernel @k() {}")
    assert m.params == () and m.body.ops == ()
    assert print_module(m) == "kernel @k() {\n}\n"


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 0.1 + 0.2, 1e300, -1.5, 1e16, 2.0**-1074],
)
def test_floats_round_trip_exactly(value):
    b = Builder()
    b.open_block()
    b.const(value, f64)
    m = Module("k", (), b.close_block())
    back = parse_module(round_trip(m))
    got = back.body.ops[0].attr("value")
    assert type(got) is float
    if math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value and math.copysign(1, got) == math.copysign(1, value)


def test_every_attr_kind_round_trips():
    b = Builder()
    b.open_block()
    b.emit(Op.CONST, (), (i32,), {"value": 1, **ODD_ATTRS})
    m = Module("k", (), b.close_block())
    round_trip(m)
    got = parse_module(print_module(m)).body.ops[0].attr_dict
    assert got["tup"] == (1, (2.5, "x", ()), True) and type(got["tup"][2]) is bool
    assert got["text"] == ODD_ATTRS["text"] and got["big"] == 2**70
    assert got["t_block"] == BlockType(PtrType(f32), (2, 3)) and got["none"] is None


def test_unprintable_attr_is_an_error():
    b = Builder()
    b.open_block()
    b.emit(Op.CONST, (), (i32,), {"value": [1, 2]})
    with pytest.raises(TypeError, match="cannot print attribute value"):
        print_module(Module("k", (), b.close_block()))


def test_params_round_trip():
    m = Module("k", _params(), Block(tuple(Value(p.type) for p in _params())))
    text = round_trip(m)
    assert "%y: ptr<f16> tensor(shape=[8], strides=[?]) {note=" in text
    assert Module("k", _params()[:1], Block((Value(PtrType(f32)),))) != m
    rank0 = Param("z", "tensor", PtrType(f32))
    round_trip(Module("k", (rank0,), Block((Value(rank0.type),))))


@pytest.mark.parametrize(
    "params, arg_types",
    [
        ((Param("x y", "tensor", PtrType(f32), (4,), (1,)),), (PtrType(f32),)),  # odd name
        ((Param("a", "scalar", i32), Param("a", "scalar", i32)), (i32, i32)),  # repeated
        ((Param("a", "scalar", i32),), (i64,)),  # arg type differs from the param's
        ((Param("a", "scalar", i32),), ()),  # fewer args than params
        ((), (i32,)),  # more
        ((Param("0", "odd kind", i32),), (i32,)),
    ],
)
def test_params_that_are_not_value_names_round_trip(params, arg_types):
    m = Module("weird name<locals>", params, Block(tuple(Value(t) for t in arg_types)))
    assert " args(" in round_trip(m)


def test_ill_formed_modules_round_trip():
    """Printing must not lose anything even when the verifier would reject the module."""
    ghost, twice = Value(i32), Value(i32)
    ops = (
        Operation(Op.ADD, (Value(i32),), (ghost, twice)),  # ghost: defined nowhere
        Operation(Op.CONST, (twice,), (), (("value", 1),)),
        Operation(Op.CONST, (twice,), (), (("value", 2),)),  # defined twice
        Operation(Op.YIELD, (), (), (), (Block(), Block((Value(f32),)))),  # odd regions
    )
    m = Module("k", (), Block((), ops))
    # structurally_equal needs definitions before uses (m != m here), so compare the parts.
    text = print_module(m)
    back = parse_module(text)
    assert print_module(back) == text and "undef %" in text
    add, one, two, term = back.body.ops
    assert add.operands[1] is one.result is two.result and add.operands[0] is not one.result
    assert [op.attr("value") for op in (one, two)] == [1, 2]
    assert [len(r.args) for r in term.regions] == [0, 1] and term.regions[1].args[0].type == f32


def test_locations():
    b = Builder()
    b.open_block()
    for i, path in enumerate(["b.py", "a.py", "b.py", 'we"ird.py']):
        b.loc = SourceLoc(path, i + 1, i)
        b.const(i, i32)
    b.loc = None
    b.const(9, i32)
    m = Module("k", (), b.close_block())
    text = round_trip(m)
    assert text.startswith('file 0 "b.py"\nfile 1 "a.py"\nfile 2 "we\\"ird.py"\n')
    assert "loc(0:3:2)" in text and text.count("loc(") == 4


# -- hand-written text ------------------------------------------------------------------

HAND_WRITTEN = """
// a comment before anything
kernel @scale(%x: ptr<f32> tensor(shape=[128], strides=[1]) {aligned16},  // trailing comment
              %a: f32 scalar) {
  %pid = program_id {axis=0}          // result types come from the type rule

  %r = arange {start=0, end=128}
  %p = splat %x : block<ptr<f32>,[128]>
  %q = addptr %p, %r loc("scale.py":4:8)
  %v = load %q
  %s = splat %a : block<f32,[128]>
  %w = mul %v, %s
  %one = const {value=1} : i32
  %res = for %pid, %pid, %one, %w {   // for: the result types are the init types
  ^(%i: i32, %acc: block<f32,[128]>):
    yield %acc
  }
  %fin = while %pid {
  ^(%c: i32):
    %go = lt %c, %pid
    condition %go, %c
  } do {
  ^(%d: i32):
    yield %d
  }
  store %q, %res
}"""


def test_hand_written_text():
    m = parse_module(HAND_WRITTEN)
    verify(m)
    assert [p.name for p in m.params] == ["x", "a"]
    ops = m.body.ops
    assert ops[0].result.type == i32 and ops[1].result.type == BlockType(i32, (128,))
    assert ops[3].loc == SourceLoc("scale.py", 4, 8) and ops[0].loc is None
    assert ops[8].results[0].type == BlockType(f32, (128,))
    assert ops[9].results[0].type == i32
    assert ops[10].op is Op.STORE and ops[10].operands[1] is ops[8].results[0]
    assert parse_module(print_module(m)) == m


NEW_OPS_TEXT = """
kernel @k(%x: ptr<f32> tensor(shape=[6], strides=[1])) {
  %r = arange {start=0, end=6}
  %xs = splat %x : block<ptr<f32>,[6]>
  %p = addptr %xs, %r
  %v = load %p
  %m = reshape %v : block<f32,[2,3]>
  %t = permute %m {order=[1, 0]}
  %z = const {value=0.0} : f32
  %zz = splat %z : block<f32,[2,2]>
  %d = dot %m, %t, %zz
  %s = reduce %d {kind="sum", axis=1, keep_dims}
  %i = reduce %v {kind="argmax", axis=0}
  %c = scan %v {kind="prod", axis=0, reverse}
  %o = atomic_rmw %p, %c {kind="max"}
  %w = atomic_cas %p, %v, %o
  %e = erf %w
  %f = fma %e, %e, %w
  %b = bitcast %f : block<i32,[6]>
  %h = umulhi %b, %b
  %g = gt %w, %v
  device_assert %g {msg="grew"}
  print %i, %s {prefix="i, s: "}
}"""


def test_hand_written_new_ops_infer_their_types():
    m = parse_module(NEW_OPS_TEXT)
    verify(m)
    types = {op.op: op.results[0].type for op in m.body.ops if op.results}
    assert types[Op.PERMUTE] == BlockType(f32, (3, 2))
    assert types[Op.DOT] == BlockType(f32, (2, 2))
    assert types[Op.REDUCE] == i32  # the last reduce: argmax of a 1-D block is a scalar
    assert [op.results[0].type for op in m.body.ops if op.op is Op.REDUCE][0] == BlockType(
        f32, (2, 1)
    )
    assert types[Op.SCAN] == types[Op.ATOMIC_RMW] == types[Op.ATOMIC_CAS] == BlockType(f32, (6,))
    assert types[Op.UMULHI] == BlockType(i32, (6,))
    attrs = {op.op: op.attr_dict for op in m.body.ops}
    assert attrs[Op.SCAN] == {"kind": "prod", "axis": 0, "reverse": True}
    assert attrs[Op.DEVICE_ASSERT] == {"msg": "grew"} and attrs[Op.PRINT] == {"prefix": "i, s: "}
    assert parse_module(print_module(m)) == m


def test_windows_line_endings_and_comment_lines():
    text = HAND_WRITTEN.replace("\n", "\r\n").replace("{axis=0}", "{axis=0}\r\n// x\r\n\r\n")
    assert parse_module(text) == parse_module(HAND_WRITTEN)


def test_use_before_definition_with_a_written_type():
    text = "kernel @k() {\n  %b = add %a, %a : i32\n  %a = const {value=1} : i32\n}"
    m = parse_module(text)
    assert m.body.ops[0].operands[0] is m.body.ops[1].result


def test_flags_and_names():
    m = parse_module('kernel "k k"() {\n  %0 = const {value=1, flag, "odd key"=[]} : i32\n}')
    assert m.name == "k k"
    assert m.body.ops[0].attr_dict == {"value": 1, "flag": True, "odd key": ()}


# -- parse errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("kernel @k() {\n  %0 = frobnicate : i32\n}", "2:8", "unknown operation 'frobnicate'"),
        ("kernel @k() {\n  %0 = add %1, %1 : i32\n}", "2:12", "use of undefined value %1"),
        ("kernel @k() {\n  %0 = const {value=1} : i33\n}", "2:26", "unexpected"),
        ("kernel @k() {\n  %0 = const {value=1} : i32 %1\n}", "2:30", "expected"),
        ("kernel @k() {\n  %0 = const {value=1}\n}", "2:8", "cannot infer the result type"),
        ("kernel @k() {\n  %0 = const {value=1} : i32 loc(3:1:1)\n}", "2:34", "no file 3"),
        ("kernel @k() {\n  %0, %1 = const {value=1} : i32\n}", "2:12", "2 results but 1 types"),
        ("kernel @k() {\n  %0 = const {value=1} : block<f32,[0]>\n}", "2:37", "positive"),
        ("kernel @k(\n  %x: i32 scalar,\n  %x: f32 scalar) {\n}", "3:3", "defined again"),
        ("kernel @k() {\n  %0 = const {value=1} : i32", "2:29", "end of text"),
        ("kernel @k() {\n  %0 = const {value=1} : i32 $\n}", "2:30", "unexpected character"),
    ],
)
def test_parse_errors_point_at_the_text(text, where, message):
    with pytest.raises(IRParseError, match=message) as info:
        parse_module(text)
    line, col = map(int, where.split(":"))
    assert (info.value.line, info.value.col) == (line, col)
    assert str(info.value).startswith(where + ": ")
    assert isinstance(info.value, ValueError)


def test_parse_error_shows_the_line_and_a_caret():
    with pytest.raises(IRParseError) as info:
        parse_module("kernel @k() {\n  %0 = frobnicate : i32\n}")
    assert str(info.value).splitlines()[1:] == ["      %0 = frobnicate : i32", "           ^"]


def test_binary_and_compare_ops_all_print_their_names():
    text = print_module(every_op_module())
    for op in BINARY | COMPARE | UNARY:
        assert f" = {op} " in text
