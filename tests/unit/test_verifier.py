"""The verifier: every rule has a module that passes and one that fails."""

from __future__ import annotations

import numpy as np
import pytest

from pypto_jit.errors import SourceLoc
from pypto_jit.ir import Module, Op, Param, Value, VerifyError, parse_module, verify
from pypto_jit.ir.nodes import Block, Operation
from pypto_jit.ir.types import PtrType, f32, i32

HEAD = """\
kernel @k(
  %x: ptr<f32> tensor(shape=[?,4], strides=[4,1]),
  %n: i32 scalar,
  %a: f32 scalar
) {
  %c0 = const {value=0} : i32
  %c1 = const {value=1} : i32
  %f0 = const {value=0.0} : f32
  %t = lt %c0, %n : i1
"""


def kernel(body: str) -> Module:
    return parse_module(HEAD + body + "}\n")


def check(body: str, problem: str | None) -> None:
    """Verify the kernel; ``problem`` is None where it is valid, else a fragment of the error."""
    m = kernel(body)
    if problem is None:
        verify(m)
    else:
        with pytest.raises(VerifyError, match=problem):
            verify(m)


def while_(result: str = "i32", cond: str = "%t", new: str = "%w") -> str:
    """A while over one i32; the arguments swap in a wrong piece."""
    return (
        f"%r = while %c0 : {result} {{\n^(%v: i32):\n  condition {cond}, %v\n"
        f"}} do {{\n^(%w: i32):\n  yield {new}\n}}\n"
    )


B23 = "%b = splat %a : block<f32,[2,3]>\n"
B32 = "%d = splat %a : block<f32,[3,2]>\n"
B22 = "%e = splat %a : block<f32,[2,2]>\n"
B3 = "%v = splat %a : block<f32,[3]>\n"

# The ops of the Triton core language: type rules and operand counts.
NEW_OP_CASES = [
    ("fma takes floats of one type",
     "%s = fma %a, %f0, %a : f32\n",
     "%s = fma %c0, %c1, %c0 : i32\n", "fma needs float operands, got i32"),
    ("fma takes 3 operands",
     "%s = fma %a, %f0, %a : f32\n",
     "%s = fma %a, %f0 : f32\n", "takes 3 operands, got 2"),
    ("umulhi needs integers",
     "%s = umulhi %c0, %n : i32\n",
     "%s = umulhi %a, %f0 : f32\n", "umulhi needs integer operands, got f32"),
    ("erf and tanh need floats",
     "%s = erf %a : f32\n%u = tanh %s : f32\n",
     "%u = tanh %n : i32\n", "tanh needs a float operand, got i32"),
    ("bitcast keeps the width",
     "%s = bitcast %a : i32\n",
     "%s = bitcast %a : i64\n", "bitcast needs a same-width, same-shape type"),
    ("bitcast keeps the shape",
     B23 + "%s = bitcast %b : block<u32,[2,3]>\n",
     B23 + "%s = bitcast %b : block<u32,[3,2]>\n", "same-width, same-shape"),
    ("permute order is a permutation",
     B23 + "%p = permute %b {order=[1, 0]} : block<f32,[3,2]>\n",
     B23 + "%p = permute %b {order=[0, 0]} : block<f32,[2,2]>\n", "is not a permutation"),
    ("permute moves the dims",
     B23 + "%p = permute %b {order=[1, 0]} : block<f32,[3,2]>\n",
     B23 + "%p = permute %b {order=[1, 0]} : block<f32,[2,3]>\n",
     r"do not match the type rule: block<f32,\[3,2\]>"),
    ("reduce axis is in range",
     B23 + '%r = reduce %b {kind="sum", axis=1} : block<f32,[2]>\n',
     B23 + '%r = reduce %b {kind="sum", axis=2} : block<f32,[2]>\n', "axis 2 is out of range"),
    ("reduce keep_dims keeps the axis as 1",
     B23 + '%r = reduce %b {kind="max", axis=0, keep_dims} : block<f32,[1,3]>\n',
     B23 + '%r = reduce %b {kind="max", axis=0, keep_dims} : block<f32,[3]>\n',
     r"type rule: block<f32,\[1,3\]>"),
    ("a block reduced to no axes is a scalar",
     B3 + '%r = reduce %v {kind="min", axis=0} : f32\n',
     B3 + '%r = reduce %v {kind="min", axis=0} : block<f32,[1]>\n', "type rule: f32"),
    ("argmax gives i32 indices",
     B23 + '%r = reduce %b {kind="argmax", axis=1} : block<i32,[2]>\n',
     B23 + '%r = reduce %b {kind="argmin", axis=1} : block<f32,[2]>\n',
     r"type rule: block<i32,\[2\]>"),
    ("reduce kind is known",
     B23 + '%r = reduce %b {kind="prod", axis=1} : block<f32,[2]>\n',
     B23 + '%r = reduce %b {kind="mean", axis=1} : block<f32,[2]>\n', "unknown reduction 'mean'"),
    ("bitwise reductions need integers",
     "%i = splat %n : block<i32,[4]>\n%r = reduce %i {kind=\"xor\", axis=0} : i32\n",
     B3 + '%r = reduce %v {kind="or", axis=0} : f32\n', "reduction or needs integers"),
    ("reduce takes one block",
     B3 + '%r = reduce %v {kind="sum", axis=0} : f32\n',
     '%r = reduce %a {kind="sum", axis=0} : f32\n', "axis 0 is out of range for f32"),
    ("scan keeps the type and knows its kind",
     B23 + '%r = scan %b {kind="sum", axis=1, reverse} : block<f32,[2,3]>\n',
     B23 + '%r = scan %b {kind="max", axis=1} : block<f32,[2,3]>\n', "unknown scan 'max'"),
    ("scan axis is in range",
     B23 + '%r = scan %b {kind="prod", axis=0} : block<f32,[2,3]>\n',
     B23 + '%r = scan %b {kind="prod", axis=-1} : block<f32,[2,3]>\n', "axis -1 is out of range"),
    ("dot shapes agree",
     B23 + B32 + B22 + "%m = dot %b, %d, %e : block<f32,[2,2]>\n",
     B23 + B22 + "%m = dot %b, %b, %e : block<f32,[2,2]>\n",
     r"dot shapes do not agree: \[2,3\] x \[2,3\] -> \[2, 2\]"),
    ("dot takes 2-D blocks",
     B23 + B32 + B22 + "%m = dot %b, %d, %e : block<f32,[2,2]>\n",
     B3 + "%m = dot %v, %v, %a : f32\n", "dot needs 2-D blocks"),
    ("dot operands have one type",
     B23 + B32 + B22 + "%m = dot %b, %d, %e : block<f32,[2,2]>\n",
     B23 + B22 + "%h = splat %c0 : block<i32,[3,2]>\n%m = dot %b, %h, %e : block<f32,[2,2]>\n",
     "dot operands differ: f32 vs i32"),
    ("dot takes 3 operands",
     B23 + B32 + B22 + "%m = dot %b, %d, %e : block<f32,[2,2]>\n",
     B23 + B32 + "%m = dot %b, %d : block<f32,[2,2]>\n", "takes 3 operands, got 2"),
    ("atomic_rmw value is the pointee type",
     '%o = atomic_rmw %x, %a {kind="add"} : f32\n',
     '%o = atomic_rmw %x, %c0 {kind="add"} : i32\n', "atomic of i32 through ptr<f32>"),
    ("atomic_rmw kind is known",
     '%o = atomic_rmw %x, %a {kind="xchg"} : f32\n',
     '%o = atomic_rmw %x, %a {kind="sub"} : f32\n', "unknown atomic 'sub'"),
    ("atomic_rmw mask is i1",
     '%o = atomic_rmw %x, %a, %t {kind="max"} : f32\n',
     '%o = atomic_rmw %x, %a, %n {kind="max"} : f32\n', "atomic mask must be i1"),
    ("atomic_rmw takes 2 to 3 operands",
     '%o = atomic_rmw %x, %a, %t {kind="min"} : f32\n',
     '%o = atomic_rmw %x, %a, %t, %t {kind="min"} : f32\n', "takes 2 to 3 operands, got 4"),
    ("atomic_rmw returns the old values",
     '%o = atomic_rmw %x, %a {kind="or"} : f32\n',
     'atomic_rmw %x, %a {kind="or"}\n', r"result types \(\) do not match the type rule: f32"),
    ("atomic_cas compares and stores the pointee type",
     "%o = atomic_cas %x, %f0, %a : f32\n",
     "%o = atomic_cas %x, %c0, %a : f32\n", "atomic_cas of f32 through ptr<f32>"),
    ("atomic_cas takes no mask",
     "%o = atomic_cas %x, %f0, %a : f32\n",
     "%o = atomic_cas %x, %f0, %a, %t : f32\n", "takes 3 operands, got 4"),
    ("device_assert needs a boolean",
     '%m = splat %t : block<i1,[4]>\ndevice_assert %m {msg="ok"}\ndevice_assert %t\n',
     'device_assert %n {msg="no"}\n', "device_assert needs a boolean condition, got i32"),
    ("device_assert has no result",
     'device_assert %t {msg="ok"}\n',
     '%q = device_assert %t {msg="ok"} : i1\n', "do not match the type rule: no result"),
    ("print takes any values and has no result",
     B3 + 'print %a, %n, %v, %x {prefix="x: "}\nprint\n',
     '%q = print %a {prefix="x"} : f32\n', "do not match the type rule: no result"),
]  # fmt: skip

# (rule, valid body, invalid body, error fragment)
CASES = [
    ("result type is the rule's",
     "%s = add %c0, %c1 : i32\n",
     "%s = add %c0, %c1 : i64\n", r"result types \(i64\) do not match the type rule: i32"),
    ("operand types follow the rule",
     "%s = add %a, %f0 : f32\n",
     "%s = add %a, %c0 : f32\n", "add needs operands of one type"),
    ("no result where the rule has none",
     "store %x, %a\n",
     "%s = store %x, %a : f32\n", "do not match the type rule: no result"),
    ("load takes 1 to 3 operands",
     "%v = load %x, %t, %a : f32\n",
     "%v = load %x, %t, %a, %a : f32\n", "takes 1 to 3 operands, got 4"),
    ("store takes 2 to 3 operands",
     "store %x, %a, %t\n",
     "store %x\n", "takes 2 to 3 operands, got 1"),
    ("where takes 3 operands",
     "%w = where %t, %a, %f0 : f32\n",
     "%w = where %t, %a : f32\n", "takes 3 operands, got 2"),
    ("unary ops take one operand",
     "%e = exp %a : f32\n",
     "%e = exp : f32\n", "takes 1 operands, got 0"),
    ("for takes 3 or more operands",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n {\n^(%i: i32):\n  yield\n}\n", "takes 3 or more operands, got 2"),
    ("for has one region",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n, %c1\n", "has 0 regions, needs 1"),
    ("non-region ops have no regions",
     "%s = add %c0, %c1 : i32\n",
     "%s = add %c0, %c1 : i32 {\n  yield\n}\n", "has 1 regions, needs 0"),
    ("for bounds are integer scalars of one type",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "%n64 = cast %n : i64\nfor %c0, %n64, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "bounds must be integer scalars of one type"),
    ("for region args are (iv, *carried)",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  yield %acc\n}\n",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i64, %acc: f32):\n  yield %acc\n}\n",
     r"region 0 args are \(i64, f32\), must be \(i32, f32\)"),
    ("for yields the carried types",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  yield %acc\n}\n",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  yield %i\n}\n",
     r"yields \(i32\) but for region 0 must yield \(f32\)"),
    ("for results are the init types",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  yield %acc\n}\n",
     "%r, %q = for %c0, %n, %c1, %a : f32, f32 {\n^(%i: i32, %acc: f32):\n  yield %acc\n}\n",
     r"results are \(f32, f32\), must be \(f32\)"),
    ("for ends with yield",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  %s = add %i, %i : i32\n}\n", "must end with yield"),
    ("for does not end with condition",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  condition %t\n}\n", "must end with yield"),
    ("if condition is an i1 scalar",
     "if %t {\n  yield\n} else {\n  yield\n}\n",
     "if %n {\n  yield\n} else {\n  yield\n}\n", "condition must be an i1 scalar, got i32"),
    ("if has two regions",
     "if %t {\n  yield\n} else {\n  yield\n}\n",
     "if %t {\n  yield\n}\n", "has 1 regions, needs 2"),
    ("if branches yield the result types",
     "%r = if %t : f32 {\n  yield %a\n} else {\n  yield %f0\n}\n",
     "%r = if %t : f32 {\n  yield %a\n} else {\n  yield %c0\n}\n",
     r"yields \(i32\) but if region 1 must yield \(f32\)"),
    ("if regions take no args",
     "%r = if %t : f32 {\n  yield %a\n} else {\n  yield %f0\n}\n",
     "%r = if %t : f32 {\n^(%z: f32):\n  yield %a\n} else {\n  yield %f0\n}\n",
     r"region 0 args are \(f32\), must be \(\)"),
    ("while before region takes the inits and ends with condition",
     "%r = while %c0 : i32 {\n^(%v: i32):\n  %g = lt %v, %n : i1\n  condition %g, %v\n"
     "} do {\n^(%w: i32):\n  %u = add %w, %c1 : i32\n  yield %u\n}\n",
     "%r = while %c0 : i32 {\n^(%v: i32):\n  yield %v\n"
     "} do {\n^(%w: i32):\n  yield %w\n}\n", "region 0 must end with condition"),
    ("while condition is an i1 scalar",
     while_(),
     while_(cond="%v"),
     "condition must be an i1 scalar, got i32"),
    ("while after region takes the forwarded values",
     "%r = while %c0 : f32 {\n^(%v: i32):\n  condition %t, %a\n} do {\n^(%w: f32):\n"
     "  yield %c1\n}\n",
     "%r = while %c0 : f32 {\n^(%v: i32):\n  condition %t, %a\n} do {\n^(%w: i32):\n"
     "  yield %w\n}\n", r"region 1 args are \(i32\), must be \(f32\)"),
    ("while after region yields the carried types",
     while_(),
     while_(new="%a"),
     r"yields \(f32\) but while region 1 must yield \(i32\)"),
    ("while results are the forwarded types",
     while_(),
     while_(result="f32"),
     r"results are \(f32\), must be \(i32\)"),
    ("no terminator in the kernel body",
     "%s = add %c0, %c1 : i32\n",
     "yield %c0\n", "terminator in the kernel body"),
    ("terminators only end regions",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n  %s = add %i, %i : i32\n  yield\n}\n",
     "terminator before the end of its region"),
    ("terminators have no results",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  %y = yield : i32\n}\n", "a terminator has no results"),
    ("operands are defined earlier",
     "%s = add %c0, %c1 : i32\n%u = add %s, %s : i32\n",
     "%u = add %s, %s : i32\n%s = add %c0, %c1 : i32\n", "operand 0 is defined by no earlier op"),
    ("an op does not use its own result",
     "%s = add %c0, %c1 : i32\n",
     "%s = add %s, %c1 : i32\n", "operand 0 is defined by no earlier op"),
    ("values defined in a region stay inside it",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  %in = add %acc, %acc : f32\n"
     "  yield %in\n}\n%o = add %r, %r : f32\n",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  %in = add %acc, %acc : f32\n"
     "  yield %in\n}\n%o = add %in, %in : f32\n",
     "operand 0 is defined by a region that does not enclose it"),
    ("region args are visible only inside their region",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  %s = add %i, %i : i32\n  yield\n}\n",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n%s = add %i, %i : i32\n",
     "operand 0 is defined by a region that does not enclose it"),
    ("a region op's results are not visible inside it",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  yield %acc\n}\n",
     "%r = for %c0, %n, %c1, %a : f32 {\n^(%i: i32, %acc: f32):\n  yield %r\n}\n",
     "operand 0 is defined by no earlier op"),
    ("outer values are visible in nested regions",
     "if %t {\n  for %c0, %n, %c1 {\n  ^(%i: i32):\n    %s = add %i, %c1 : i32\n    yield\n  }\n"
     "  yield\n} else {\n  yield\n}\n",
     "if %t {\n  for %c0, %n, %c1 {\n  ^(%i: i32):\n    %s = add %i, %late : i32\n    yield\n  }\n"
     "  yield\n} else {\n  yield\n}\n%late = const {value=1} : i32\n",
     "operand 1 is defined by no earlier op"),
    ("no value is defined twice",
     "%s = add %c0, %c1 : i32\n",
     "%s = add %c0, %c1 : i32\n%s = add %c0, %c1 : i32\n", "defines a value that is already"),
    ("region args are fresh values",
     "for %c0, %n, %c1 {\n^(%i: i32):\n  yield\n}\n",
     "for %c0, %n, %c1 {\n^(%c0: i32):\n  yield\n}\n", "defines a value that is already"),
    ("dim reads a tensor parameter",
     "%d = dim %x {axis=1} : i64\n",
     "%d = dim %n {axis=0} : i64\n", "dim/stride need a tensor"),
    ("dim axis is within the tensor's rank",
     "%d = stride %x {axis=1} : i64\n",
     "%d = stride %x {axis=2} : i64\n", "axis 2 out of range for x of rank 2"),
    ("dim operand is a parameter, not a derived pointer",
     "%d = dim %x {axis=0} : i64\n",
     "%p = addptr %x, %c1 : ptr<f32>\n%d = dim %p {axis=0} : i64\n",
     "operand must be a tensor parameter"),
    ("const value fits the type's kind",
     "%k = const {value=2} : f32\n",
     "%k = const {value=2.5} : i32\n", "const i32 with a float value"),
    ("const needs a value",
     "%k = const {value=2} : f32\n",
     "%k = const {other=2} : f32\n", "const needs a value"),
    *[(f"{name} (new ops)", good, bad, problem) for name, good, bad, problem in NEW_OP_CASES],
]  # fmt: skip


@pytest.mark.parametrize("rule, good, bad, problem", CASES, ids=[c[0] for c in CASES])
def test_rule(rule, good, bad, problem):
    check(good, None)
    check(bad, problem)


def test_error_names_the_op_and_its_location():
    m = kernel('%s = add %c0, %a : i32 loc("kern.py":12:4)\n')
    with pytest.raises(VerifyError) as info:
        verify(m)
    message = str(info.value)
    assert message.startswith("add at kern.py:12:5: ")
    assert message.splitlines()[1].strip() == '%4 = add %0, %a : i32 loc("kern.py":12:4)'
    assert info.value.op is m.body.ops[4] and info.value.loc == SourceLoc("kern.py", 12, 4)


# -- parameters (built in Python: the textual form ties args to params) -----------------

X = Param("x", "tensor", PtrType(f32), (None, 4), (4, 1))
N = Param("n", "scalar", i32)


def params_module(params: tuple[Param, ...], arg_types) -> Module:
    return Module("k", params, Block(tuple(Value(t) for t in arg_types)))


@pytest.mark.parametrize(
    "params, arg_types, problem",
    [
        ((X, N), (PtrType(f32), i32, i32), "2 params but the body has 3 args"),
        ((X, N), (PtrType(f32), f32), "param n is i32 but its body arg is f32"),
        ((Param("x", "tensor", f32, (4,), (1,)), N), (f32, i32), "must have a ptr type"),
        ((Param("x", "tensor", PtrType(f32), (4, 4), (1,)),), (PtrType(f32),), "2 dims but 1"),
        ((Param("n", "scalar", PtrType(i32)),), (PtrType(i32),), "must have a scalar type"),
        ((Param("n", "scalar", i32, (4,), (1,)),), (i32,), "scalar param n has a shape"),
        ((Param("n", "thing", i32),), (i32,), "unknown kind 'thing'"),
        ((N, N), (i32, i32), "two params have the same name"),
    ],
)
def test_params_match_the_body_args(params, arg_types, problem):
    verify(params_module((X, N), (PtrType(f32), i32)))
    with pytest.raises(VerifyError, match=problem):
        verify(params_module(params, arg_types))


def test_undefined_operand_built_in_python():
    ghost = Value(i32)
    ok = Operation(Op.CONST, (Value(i32),), (), (("value", 1),))
    bad = Operation(Op.ADD, (Value(i32),), (ghost, ok.result))
    verify(Module("k", (), Block((), (ok,))))
    with pytest.raises(VerifyError, match="operand 0 is defined by no earlier op"):
        verify(Module("k", (), Block((), (ok, bad))))


def test_attribute_values_are_ones_the_text_holds():
    ok = Operation(Op.CONST, (Value(i32),), (), (("value", 1), ("t", (1, "a", f32, None))))
    verify(Module("k", (), Block((), (ok,))))
    bad = Operation(Op.CONST, (Value(i32),), (), (("value", np.int64(1)),))
    with pytest.raises(VerifyError, match="attribute value=.* of type int64 is not an IR attr"):
        verify(Module("k", (), Block((), (bad,))))
    fact = Param("n", "scalar", i32, facts=(("div", np.int32(16)),))
    with pytest.raises(VerifyError, match="fact div=.* cannot be printed"):
        verify(Module("k", (fact,), Block((Value(i32),))))
