"""The Triton core language in the frontend: markers, lowering to IR, errors, and small runs.

Lowering is checked at the IR level (op kinds, types, shapes, attrs, error
locations); a few kernels per group also run on the numpy interpreter against
numpy references.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.frontend import ArgSpec, lower
from pypto_jit.ir import Op, verify
from pypto_jit.ir import types as irt

T = irt.SCALARS


def tensor(dtype: str = "f32", shape=(16, 16), strides=None) -> ArgSpec:
    if strides is None:
        strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    return ArgSpec("tensor", T[dtype], tuple(shape), tuple(strides))


def scalar(dtype: str = "i32") -> ArgSpec:
    return ArgSpec("scalar", T[dtype])


def const(value) -> ArgSpec:
    return ArgSpec("constexpr", value=value)


def lower_ok(kernel, *specs):
    module = lower(kernel.source, kernel.arg_names, list(specs))
    verify(module)
    return module


def ops(module, kind: Op) -> list:
    return [op for op in module.walk() if op.op is kind]


def one(module, kind: Op):
    found = ops(module, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def error(kernel, *specs) -> pypto.CompilationError:
    with pytest.raises(pypto.CompilationError) as info:
        lower(kernel.source, kernel.arg_names, list(specs))
    return info.value


def line(kernel, offset: int) -> int:
    """The file line ``offset`` lines below the kernel's decorator."""
    return kernel.fn.__code__.co_firstlineno + offset


def stored(module):
    """The type of the value of the last STORE."""
    return ops(module, Op.STORE)[-1].operands[1].type


# -- markers and imports --------------------------------------------------------------------
TRITON_NAMES = """sum max min argmax argmin cumsum cumprod dot trans permute reshape expand_dims
broadcast_to zeros_like full_like erf tanh sigmoid fma clamp div_rn umulhi atomic_add atomic_max
atomic_min atomic_and atomic_or atomic_xor atomic_xchg atomic_cas rand randn randint randint4x
range static_range device_print device_assert multiple_of max_contiguous load_tile store_tile
program_id num_programs arange zeros full load store where cast exp log sqrt abs maximum minimum
cdiv static_assert static_print""".split()


@pytest.mark.parametrize("name", TRITON_NAMES)
def test_every_language_name_exists(name):
    assert name in pl.__all__
    fn = getattr(pl, name)
    if getattr(fn, "__pypto_jit__", False):
        return  # rand & co are @pypto.jit helpers
    with pytest.raises(RuntimeError, match=f"pl.{name} can only be called inside"):
        fn()


def test_random_helpers_import_without_a_cycle():
    code = (
        "import pypto_jit.language as pl\n"
        "from pypto_jit.language import randn\n"
        "from pypto_jit.language.random import rand\n"
        "assert pl.rand is rand and randn.__pypto_jit__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute_of_the_language_module():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pl.nope  # noqa: B018


# -- reductions -----------------------------------------------------------------------------
@pypto.jit
def reduce_kernel(x, out, KIND: pl.constexpr, AXIS: pl.constexpr, KEEP: pl.constexpr):
    r = pl.arange(0, 4)[:, None] * 8 + pl.arange(0, 8)[None, :]
    v = pl.load(x + r)
    if KIND == "sum":
        res = pl.sum(v, axis=AXIS, keep_dims=KEEP)
    elif KIND == "max":
        res = pl.max(v, axis=AXIS, keep_dims=KEEP)
    elif KIND == "argmin":
        res = pl.argmin(v, AXIS, keep_dims=KEEP)
    else:
        res = v.sum(AXIS, keep_dims=KEEP)
    pl.store(out + pl.zeros_like(res).to(pl.int32), res)


@pytest.mark.parametrize(
    "kind, axis, keep, shape, result",
    [
        ("sum", 0, False, (8,), "f32"), ("sum", 1, True, (4, 1), "f32"),
        ("sum", -1, False, (4,), "f32"), ("max", None, False, (), "f32"),
        ("max", None, True, (1, 1), "f32"), ("argmin", 1, False, (4,), "i32"),
        ("method", 0, False, (8,), "f32"),
    ],
)  # fmt: skip
def test_reduction_ops(kind, axis, keep, shape, result):
    m = lower_ok(
        reduce_kernel,
        tensor(shape=(32,)),
        tensor(shape=(32,)),
        const(kind),
        const(axis),
        const(keep),
    )
    red = one(m, Op.REDUCE)
    assert red.attr("kind") == {"method": "sum"}.get(kind, kind)
    assert red.attr("axis") == (0 if axis is None else axis % 2)
    assert red.attr("keep_dims") is (keep and axis is not None)
    assert irt.shape(stored(m)) == shape and irt.scalar_of(red.result.type) == T[result]
    if axis is None:  # reduced as one flat axis
        assert str(one(m, Op.RESHAPE).result.type) == "block<f32,[32]>"


@pypto.jit
def sum_kernel(x, out, DTYPE: pl.constexpr):
    v = pl.load(x + pl.arange(0, 16))
    pl.store(out, pl.sum(v, dtype=DTYPE))


@pytest.mark.parametrize(
    "src, dtype, acc",
    [
        ("f16", None, "f32"),
        ("bf16", None, "f32"),
        ("f32", None, "f32"),
        ("f64", None, "f64"),
        ("i8", None, "i32"),
        ("u16", None, "u32"),
        ("i1", None, "u32"),
        ("i64", None, "i64"),
        ("f16", pl.float64, "f64"),
    ],
)
def test_sum_accumulates_like_triton(src, dtype, acc):
    m = lower_ok(sum_kernel, tensor(src, (16,)), tensor("f64", (1,)), const(dtype))
    assert one(m, Op.REDUCE).operands[0].type == irt.BlockType(T[acc], (16,))
    assert one(m, Op.REDUCE).result.type == T[acc]


@pypto.jit
def minmax_indices_kernel(x, out, idx):
    v = pl.load(x + pl.arange(0, 16))
    m, i = pl.max(v, 0, return_indices=True)
    n, j = pl.min(v, 0, return_indices=True)
    pl.store(out, m + n)
    pl.store(idx, i + j)


def test_max_with_indices_returns_values_and_i32_indices():
    m = lower_ok(
        minmax_indices_kernel, tensor("f16", (16,)), tensor("f16", (1,)), tensor("i32", (1,))
    )
    kinds = [(op.attr("kind"), str(op.result.type)) for op in ops(m, Op.REDUCE)]
    assert kinds == [("max", "f16"), ("argmax", "i32"), ("min", "f16"), ("argmin", "i32")]


@pypto.jit
def bad_axis_kernel(x):
    v = pl.load(x + pl.arange(0, 16)[:, None] + pl.arange(0, 4)[None, :])
    pl.store(x, pl.sum(v, axis=2))


def test_reduction_axis_out_of_range_points_at_the_call():
    err = error(bad_axis_kernel, tensor(shape=(64,)))
    assert isinstance(err, pypto.TypeCheckError)
    lines = str(err).splitlines()
    assert lines[0] == (
        f"{__file__}:{line(bad_axis_kernel, 3)}:17: pl.sum: axis 2 is out "
        "of range for a block of rank 2"
    )
    assert lines[1] == "        pl.store(x, pl.sum(v, axis=2))"
    assert lines[2] == "    " + " " * 16 + "^"


@pypto.jit
def scan_kernel(x, out, REVERSE: pl.constexpr, PROD: pl.constexpr):
    r = pl.arange(0, 4)[:, None] * 8 + pl.arange(0, 8)[None, :]
    v = pl.load(x + r)
    s = pl.cumprod(v, axis=1, reverse=REVERSE) if PROD else pl.cumsum(v, 0, reverse=REVERSE)
    pl.store(out + r, s)


@pytest.mark.parametrize("prod", [False, True])
@pytest.mark.parametrize("src", ["f16", "bf16", "i8", "f32"])
def test_scans(src, prod):
    m = lower_ok(scan_kernel, tensor(src, (32,)), tensor("f64", (32,)), const(True), const(prod))
    scan = one(m, Op.SCAN)
    assert scan.attr_dict == {
        "kind": "prod" if prod else "sum",
        "axis": 1 if prod else 0,
        "reverse": True,
    }
    if prod:
        expected = {"bf16": "f32"}.get(src, src)
    else:
        expected = {"f16": "f32", "bf16": "f32", "i8": "i32"}.get(src, src)
    assert scan.result.type == irt.BlockType(T[expected], (4, 8))


# -- dot ------------------------------------------------------------------------------------
@pypto.jit
def dot_kernel(
    a, b, c, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr, ACC: pl.constexpr, OUT: pl.constexpr
):
    x = pl.load(a + pl.arange(0, M)[:, None] * K + pl.arange(0, K)[None, :])
    y = pl.load(b + pl.arange(0, K)[:, None] * N + pl.arange(0, N)[None, :])
    if ACC:
        acc = pl.zeros((M, N), dtype=pl.float32)
        acc = pl.dot(x, y, acc)
    else:
        acc = pl.dot(x, y, out_dtype=OUT)
    pl.store(c + pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :], acc)


@pytest.mark.parametrize(
    "src, acc, out, expected",
    [
        ("f16", False, None, "f32"),
        ("f16", False, pl.float16, "f16"),
        ("bf16", False, None, "f32"),
        ("f32", True, None, "f32"),
        ("i8", False, None, "i32"),
        ("f64", False, None, "f64"),
    ],
)
def test_dot_accumulator_types(src, acc, out, expected):
    m = lower_ok(
        dot_kernel,
        tensor(src, (64,)),
        tensor(src, (64,)),
        tensor("f64", (64,)),
        const(4),
        const(2),
        const(8),
        const(acc),
        const(out),
    )
    dot = one(m, Op.DOT)
    assert [str(v.type) for v in dot.operands] == [
        f"block<{src},[4,8]>",
        f"block<{src},[8,2]>",
        f"block<{expected},[4,2]>",
    ]
    assert dot.result.type == irt.BlockType(T[expected], (4, 2))


@pypto.jit
def dot_mismatch_kernel(a):
    x = pl.load(a + pl.arange(0, 16)[:, None] * 8 + pl.arange(0, 8)[None, :])
    y = pl.load(a + pl.arange(0, 4)[:, None] * 8 + pl.arange(0, 8)[None, :])
    z = pl.dot(x, y)
    pl.store(a + pl.arange(0, 16)[:, None] * 8 + pl.arange(0, 8)[None, :], z)


def test_dot_shape_mismatch_is_a_type_check_error_at_the_users_line():
    err = error(dot_mismatch_kernel, tensor(shape=(128,)))
    assert isinstance(err, pypto.TypeCheckError)
    lines = str(err).splitlines()
    assert lines[0] == (
        f"{__file__}:{line(dot_mismatch_kernel, 4)}:9: pl.dot: the inner "
        "dimensions differ: [16, 8] x [4, 8]"
    )
    assert lines[1:] == ["        z = pl.dot(x, y)", "        " + " " * 4 + "^"]


@pypto.jit
def dot_1d_kernel(a):
    x = pl.load(a + pl.arange(0, 16))
    pl.store(a, pl.sum(pl.dot(x, x)))


def test_dot_of_1d_blocks_is_rejected():
    assert "pl.dot needs 2-D blocks, got block<f32,[16]>" in str(
        error(dot_1d_kernel, tensor(shape=(16,)))
    )


def test_dot_rejects_bfloat16_out_dtype():
    err = error(
        dot_kernel,
        tensor("f16", (64,)),
        tensor("f16", (64,)),
        tensor("f64", (64,)),
        const(4),
        const(2),
        const(8),
        const(False),
        const(pl.bfloat16),
    )
    assert "out_dtype=bfloat16 is not supported" in str(err)


# -- shapes ---------------------------------------------------------------------------------
@pypto.jit
def shape_kernel(x, out, WHAT: pl.constexpr):
    v = pl.load(
        x
        + pl.arange(0, 2)[:, None, None] * 12
        + pl.arange(0, 3)[None, :, None] * 4
        + pl.arange(0, 4)[None, None, :]
    )
    if WHAT == "permute":
        r = pl.permute(v, 2, 0, 1)
    elif WHAT == "trans":
        r = pl.trans(v, (1, 0, 2))
    elif WHAT == "T":
        r = pl.reshape(v, 6, 4).T
    elif WHAT == "reshape":
        r = v.reshape((4, 6))
    elif WHAT == "ravel":
        r = pl.ravel(v)
    elif WHAT == "expand":
        r = pl.expand_dims(v, (0, -1))
    elif WHAT == "broadcast":
        r = pl.broadcast_to(pl.expand_dims(v, 1), 2, 5, 3, 4)
    else:
        r = pl.permute(v, 0, 1, 2)
    pl.store(out + pl.zeros_like(r).to(pl.int32), r)


@pytest.mark.parametrize(
    "what, op, shape, attr",
    [
        ("permute", Op.PERMUTE, (4, 2, 3), (2, 0, 1)),
        ("trans", Op.PERMUTE, (3, 2, 4), (1, 0, 2)),
        ("T", Op.PERMUTE, (4, 6), (1, 0)),
        ("reshape", Op.RESHAPE, (4, 6), None),
        ("ravel", Op.RESHAPE, (24,), None),
        ("expand", Op.EXPAND_DIMS, (1, 2, 3, 4, 1), None),
        ("broadcast", Op.BROADCAST, (2, 5, 3, 4), None),
        ("identity", None, (2, 3, 4), None),
    ],
)
def test_shape_ops(what, op, shape, attr):
    m = lower_ok(shape_kernel, tensor(shape=(24,)), tensor(shape=(24,)), const(what))
    assert irt.shape(stored(m)) == shape
    if op is Op.PERMUTE:
        assert ops(m, Op.PERMUTE)[-1].attr("order") == attr
    elif op is None:
        assert not ops(m, Op.PERMUTE)
    else:
        assert ops(m, op)


@pypto.jit
def bad_reshape_kernel(x):
    v = pl.load(x + pl.arange(0, 16))
    pl.store(x + pl.arange(0, 16), pl.reshape(v, (3, 5)).reshape(16))


def test_reshape_to_another_size_is_rejected():
    assert "cannot reshape block<f32,[16]> (16 elements) to [3, 5] (15 elements)" in str(
        error(bad_reshape_kernel, tensor(shape=(16,)))
    )


@pypto.jit
def bad_trans_kernel(x):
    v = pl.load(x + pl.arange(0, 16))
    pl.store(x + pl.arange(0, 16), pl.trans(v))


def test_trans_of_1d_block_names_the_problem():
    assert "pl.trans without dims needs a 2-D block" in str(
        error(bad_trans_kernel, tensor(shape=(16,)))
    )


@pypto.jit
def like_kernel(x, out):
    v = pl.load(x + pl.arange(0, 8))
    pl.store(out + pl.arange(0, 8), pl.zeros_like(v) + pl.full_like(v, 2, dtype=pl.int16))


def test_zeros_like_and_full_like_types():
    m = lower_ok(like_kernel, tensor("f16", (8,)), tensor("f16", (8,)))
    consts = {(op.attr("value"), str(op.result.type)) for op in ops(m, Op.CONST)}
    assert (0.0, "f16") in consts and (2, "i16") in consts


# -- math -----------------------------------------------------------------------------------
@pypto.jit
def math_kernel(x, out, FN: pl.constexpr):
    v = pl.load(x + pl.arange(0, 8))
    if FN == "erf":
        r = pl.erf(v)
    elif FN == "tanh":
        r = v.tanh()
    elif FN == "sigmoid":
        r = pl.sigmoid(v)
    elif FN == "fma":
        r = pl.fma(v, 2, v)
    elif FN == "clamp":
        r = pl.clamp(v, -1.0, 1.0)
    elif FN == "div_rn":
        r = pl.div_rn(v, v)
    elif FN == "umulhi":
        r = pl.umulhi(v, 7)
    else:
        r = v.to(pl.int32, bitcast=True)
    pl.store(out + pl.arange(0, 8), r)


@pytest.mark.parametrize(
    "fn, src, expected",
    [
        ("erf", "f32", [Op.ERF]),
        ("tanh", "f64", [Op.TANH]),
        ("sigmoid", "f32", [Op.NEG, Op.EXP, Op.ADD, Op.DIV]),
        ("fma", "f16", [Op.FMA]),
        ("clamp", "f32", [Op.MAXIMUM, Op.MINIMUM]),
        ("div_rn", "f32", [Op.DIV]),
        ("umulhi", "u32", [Op.UMULHI]),
        ("umulhi", "i64", [Op.UMULHI]),
        ("bitcast", "f32", [Op.BITCAST]),
    ],
)
def test_math_ops(fn, src, expected):
    m = lower_ok(math_kernel, tensor(src, (8,)), tensor("f64", (8,)), const(fn))
    compute = [op.op for op in m.walk() if op.op in expected]
    assert compute == expected
    last = next(op for op in reversed(list(m.walk())) if op.op in expected)
    result = {"bitcast": "i32", "sigmoid": src}.get(fn, src)
    assert last.result.type == irt.BlockType(T[result], (8,))


@pytest.mark.parametrize(
    "fn, src, message",
    [
        ("fma", "i32", "pl.fma needs floating-point operands"),
        ("umulhi", "f32", "pl.umulhi needs integer operands"),
        ("erf", "i32", "pl.erf needs a floating-point operand"),
        ("bitcast", "f16", "cannot bitcast f16 to i32: the widths differ"),
    ],
)
def test_math_type_errors(fn, src, message):
    err = error(math_kernel, tensor(src, (8,)), tensor("f64", (8,)), const(fn))
    assert isinstance(err, pypto.TypeCheckError) and message in str(err)


# -- atomics --------------------------------------------------------------------------------
@pypto.jit
def atomic_kernel(x, KIND: pl.constexpr, MASKED: pl.constexpr):
    offs = pl.arange(0, 8)
    mask = offs < 5 if MASKED else None
    if KIND == "add":
        old = pl.atomic_add(x + offs, 1, mask=mask)
    elif KIND == "max":
        old = pl.atomic_max(x + offs, 1, mask=mask, sem="relaxed")
    elif KIND == "min":
        old = pl.atomic_min(x + offs, 1, mask)
    elif KIND == "and":
        old = pl.atomic_and(x + offs, 1, mask=mask)
    elif KIND == "or":
        old = pl.atomic_or(x + offs, 1, mask=mask)
    elif KIND == "xor":
        old = pl.atomic_xor(x + offs, 1, mask=mask)
    else:
        old = pl.atomic_xchg(x + offs, 1, mask=mask, scope="gpu")
    pl.store(x + offs, old)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["add", "max", "min", "and", "or", "xor", "xchg"])
def test_atomic_rmw(kind, masked):
    m = lower_ok(atomic_kernel, tensor("i64", (8,)), const(kind), const(masked))
    rmw = one(m, Op.ATOMIC_RMW)
    assert rmw.attr("kind") == kind
    assert len(rmw.operands) == (3 if masked else 2)
    assert str(rmw.operands[1].type) == "block<i64,[8]>"  # the value takes the pointee type
    assert str(rmw.result.type) == "block<i64,[8]>"


def test_bitwise_atomic_on_floats_is_rejected():
    err = error(atomic_kernel, tensor("f32", (8,)), const("xor"), const(False))
    assert "pl.atomic_xor needs integer elements, got a pointer to f32" in str(err)


@pypto.jit
def atomic_non_pointer_kernel(x):
    v = pl.load(x)
    pl.atomic_add(v, 1)


def test_atomic_on_a_non_pointer_is_a_type_check_error():
    err = error(atomic_non_pointer_kernel, tensor(shape=(1,)))
    assert isinstance(err, pypto.TypeCheckError)
    assert str(err).splitlines()[0] == (
        f"{__file__}:{line(atomic_non_pointer_kernel, 3)}:5: pl.atomic_add expects a pointer "
        "or block of pointers, got f32"
    )


@pypto.jit
def atomic_sem_kernel(x):
    pl.atomic_add(x, 1, sem="sequential")


def test_atomic_rejects_unknown_sem():
    assert "sem must be one of acquire, release, acq_rel, relaxed" in str(
        error(atomic_sem_kernel, tensor(shape=(1,)))
    )


@pypto.jit
def cas_kernel(lock, out):
    while pl.atomic_cas(lock, 0, 1) == 1:
        pass
    pl.atomic_cas(out + pl.arange(0, 4), 0, 7.0)
    pl.atomic_xchg(lock, 0)


def test_atomic_cas_in_a_spin_lock():
    m = lower_ok(cas_kernel, tensor("i32", (1,)), tensor("f32", (4,)))
    cas = ops(m, Op.ATOMIC_CAS)
    assert [str(c.result.type) for c in cas] == ["i32", "block<f32,[4]>"]
    assert ops(m, Op.WHILE) and one(m, Op.ATOMIC_RMW).attr("kind") == "xchg"


# -- debugging and hints --------------------------------------------------------------------
@pypto.jit
def debug_kernel(x, n):
    offs = pl.multiple_of(pl.max_contiguous(pl.arange(0, 8), 8), (8,))
    v = pl.load(x + offs)
    pl.device_print("v = ", v, n)
    print("offs", offs)
    assert n > 0
    assert v.to(pl.int32) < 10, "too big"
    pl.device_assert(v == v, mask=offs < n)


def test_debug_ops():
    m = lower_ok(debug_kernel, tensor(shape=(8,)), scalar())
    prints = ops(m, Op.PRINT)
    assert [(p.attr("prefix"), [str(v.type) for v in p.operands]) for p in prints] == [
        ("v = ", ["block<f32,[8]>", "i32"]),
        ("offs", ["block<i32,[8]>"]),
    ]
    asserts = ops(m, Op.DEVICE_ASSERT)
    assert [a.attr("msg") for a in asserts] == ["n > 0", "too big", ""]
    assert [str(a.operands[0].type) for a in asserts] == ["i1", "block<i1,[8]>", "block<i1,[8]>"]
    assert asserts[0].loc.line == line(debug_kernel, 6)
    assert len(ops(m, Op.ARANGE)) == 1  # the hints are the identity


@pypto.jit
def static_assert_kernel(x, N: pl.constexpr):
    assert N % 2 == 0, "N must be even"
    pl.store(x, N)


def test_compile_time_assert_still_fails_at_compile_time():
    err = error(static_assert_kernel, tensor(shape=(1,)), const(3))
    assert "static assertion failed: N must be even" in str(err)
    assert not ops(lower_ok(static_assert_kernel, tensor(shape=(1,)), const(4)), Op.DEVICE_ASSERT)


# -- loops ----------------------------------------------------------------------------------
@pypto.jit
def loops_kernel(x, n, HINTS: pl.constexpr):
    acc = 0.0
    for i in pl.range(0, n, 2, num_stages=HINTS, loop_unroll_factor=2):
        acc += pl.load(x + i)
    for j in pl.static_range(3):
        acc += pl.load(x + j)
    for k in pl.static_range(1, 7, 3):
        acc += k
    pl.store(x, acc)


def test_pl_range_is_a_runtime_loop_and_static_range_unrolls():
    m = lower_ok(loops_kernel, tensor(shape=(8,)), scalar(), const(3))
    loop = one(m, Op.FOR)
    assert str(loop.operands[2].type) == "i32" and loop.operands[2] in [
        op.result for op in ops(m, Op.CONST) if op.attr("value") == 2
    ]
    assert len(ops(m, Op.LOAD)) == 4  # one in the loop body, three unrolled
    consts = [op.attr("value") for op in ops(m, Op.CONST)]
    assert 1.0 in consts and 4.0 in consts


@pypto.jit
def break_kernel(x, n):
    for i in range(n):
        if i > 3:
            break
        pl.store(x + i, 1.0)


@pypto.jit
def continue_kernel(x, n):
    i = 0
    while i < n:
        i += 1
        continue


@pytest.mark.parametrize(
    "kernel, word, offset", [(break_kernel, "break", 4), (continue_kernel, "continue", 5)]
)
def test_break_and_continue_are_rejected_by_name(kernel, word, offset):
    err = error(kernel, tensor(shape=(8,)), scalar())
    assert isinstance(err, pypto.UnsupportedConstructError)
    first = str(err).splitlines()[0]
    assert first.startswith(f"{__file__}:{line(kernel, offset)}:")
    assert f"'{word}' is not supported in a kernel" in first


@pypto.jit
def static_range_runtime_kernel(x, n):
    for i in pl.static_range(n):
        pl.store(x + i, 1.0)


def test_static_range_needs_compile_time_bounds():
    err = error(static_range_runtime_kernel, tensor(shape=(8,)), scalar())
    assert "pl.static_range bounds must be compile-time integers, got i32" in str(err)


@pypto.jit
def range_outside_for_kernel(x):
    pl.range(4)
    pl.store(x, 1.0)


def test_pl_range_outside_a_for_loop():
    assert "pl.range(...) can only be used as the iterable of a 'for' loop" in str(
        error(range_outside_for_kernel, tensor(shape=(8,)))
    )


# -- tiles ----------------------------------------------------------------------------------
@pypto.jit
def tile_kernel(x, out, BM: pl.constexpr, BN: pl.constexpr):
    r0 = pl.program_id(0) * BM
    t = pl.load_tile(x, (r0, 5), (BM, BN), padding=-1.0)
    pl.store_tile(out, (0, 0), t)


def test_tile_lowering_with_static_layout():
    m = lower_ok(
        tile_kernel,
        tensor(shape=(10, 12), strides=(12, 1)),
        tensor(shape=(8, 8), strides=(1, 8)),
        const(8),
        const(8),
    )
    load, store = one(m, Op.LOAD), one(m, Op.STORE)
    assert str(load.result.type) == "block<f32,[8,8]>" and len(load.operands) == 3
    assert [op.attr("value") for op in ops(m, Op.CONST) if op.result.type == T["f32"]] == [-1.0]
    assert len(store.operands) == 2  # (0, 0) + [8, 8] fits the [8, 8] output: no mask
    assert not ops(m, Op.DIM) and not ops(m, Op.STRIDE)
    # rows: runtime offset -> both bounds checked; columns: 5 + 8 > 12 -> upper bound only
    assert len(ops(m, Op.GE)) == 1 and len(ops(m, Op.LT)) == 2


def test_tile_lowering_with_dynamic_layout_uses_i64_and_reads_the_layout():
    dyn = ArgSpec("tensor", T["f32"], (None, None), (None, None))
    m = lower_ok(tile_kernel, dyn, dyn, const(4), const(4))
    assert {op.attr("axis") for op in ops(m, Op.DIM)} == {0, 1}
    assert {op.attr("axis") for op in ops(m, Op.STRIDE)} == {0, 1}
    assert all(str(op.operands[1].type) == "block<i64,[4,4]>" for op in ops(m, Op.ADDPTR))


@pypto.jit
def tile_ptr_kernel(x):
    pl.store_tile(x + 1, (0,), pl.zeros((4,), dtype=pl.float32))


def test_tile_needs_a_tensor_parameter():
    assert "pl.store_tile needs a tensor parameter" in str(
        error(tile_ptr_kernel, tensor(shape=(8,)))
    )


def test_tile_rank_must_match_the_tensor():
    err = error(tile_kernel, tensor(shape=(64,)), tensor(shape=(8, 8)), const(8), const(8))
    assert "pl.load_tile: the tensor has 1 dimensions but the tile has 2 offsets" in str(err)


# -- helpers --------------------------------------------------------------------------------
@pypto.jit
def scale_helper(v, factor=2.0, shift: pl.constexpr = 0):
    return v * factor + shift, v.dtype.is_floating()


@pypto.jit
def helper_kernel(x):
    v = pl.load(x + pl.arange(0, 4))
    a, is_float = scale_helper(v, shift=1)
    b, _ = scale_helper(v=v, factor=3.0)
    pl.static_assert(is_float)
    pl.store(x + pl.arange(0, 4), a + b)


def test_helpers_take_keywords_and_defaults():
    m = lower_ok(helper_kernel, tensor(shape=(4,)))
    assert {op.attr("value") for op in ops(m, Op.CONST)} >= {2.0, 1.0, 3.0}


@pypto.jit
def helper_constexpr_kernel(x, n):
    a, _ = scale_helper(pl.load(x), shift=n)
    pl.store(x, a)


def test_helper_constexpr_parameter_rejects_runtime_values():
    err = error(helper_constexpr_kernel, tensor(shape=(4,)), scalar())
    assert "scale_helper() parameter 'shift' is a constexpr, but got the run-time value i32" in (
        str(err)
    )


# -- running on the interpreter -------------------------------------------------------------
def run(kernel, *args, grid=(1,), **kwargs):
    kernel[grid](*args, backend="interpret", **kwargs)


@pypto.jit
def rows_kernel(x, s, mx, amx, mn, cs, cp, M: pl.constexpr, N: pl.constexpr):
    r = pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :]
    v = pl.load(x + r)
    pl.store(s + pl.arange(0, M), pl.sum(v, axis=1))
    pl.store(mx + pl.arange(0, N), pl.max(v, axis=0))
    pl.store(amx + pl.arange(0, M)[:, None], pl.argmax(v, axis=1, keep_dims=True))
    pl.store(mn, pl.min(v))
    pl.store(cs + r, pl.cumsum(v, axis=1))
    pl.store(cp + r, pl.cumprod(v, axis=0, reverse=True))


def test_reductions_and_scans_run(rng=np.random.default_rng(0)):
    m, n = 3, 5
    x = rng.uniform(0.5, 1.5, (m, n)).astype(np.float32)
    x[1, 2] = np.nan
    s, mx, amx = np.zeros(m, np.float32), np.zeros(n, np.float32), np.zeros(m, np.int32)
    mn, cs, cp = np.zeros(1, np.float32), np.zeros_like(x), np.zeros_like(x)
    run(rows_kernel, x, s, mx, amx, mn, cs, cp, M=m, N=n)
    np.testing.assert_allclose(s, x.sum(1), rtol=1e-6)
    np.testing.assert_array_equal(mx, x.max(0))  # NaN propagates
    np.testing.assert_array_equal(amx, [int(np.argmax(x[0])), 2, int(np.argmax(x[2]))])
    assert np.isnan(mn[0])
    np.testing.assert_allclose(cs, np.cumsum(x, 1), rtol=1e-6)
    np.testing.assert_allclose(cp, np.flip(np.cumprod(np.flip(x, 0), 0), 0), rtol=1e-6)


@pypto.jit
def matmul_tile_kernel(a, b, c, BM: pl.constexpr, BN: pl.constexpr, BK: pl.constexpr):
    pm, pn = pl.program_id(0) * BM, pl.program_id(1) * BN
    acc = pl.zeros((BM, BN), dtype=pl.float32)
    for k in range(0, pl.cdiv(a.shape[1], BK)):
        x = pl.load_tile(a, (pm, k * BK), (BM, BK))
        y = pl.load_tile(b, (pn, k * BK), (BN, BK))  # b is given as [N, K]
        acc = pl.dot(x, y.T, acc)
    pl.store_tile(c, (pm, pn), acc.to(pl.float16))


def test_tiled_matmul_with_ragged_edges_runs(rng=np.random.default_rng(1)):
    m, n, k = 13, 7, 10
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((n, k)).astype(np.float16)
    c = np.full((m, n), 99, np.float16)
    run(matmul_tile_kernel, a, b, c, BM=8, BN=4, BK=4, grid=(2, 2))
    ref = a.astype(np.float32) @ b.astype(np.float32).T
    np.testing.assert_allclose(c.astype(np.float32), ref, rtol=1e-2, atol=1e-2)


@pypto.jit
def tile_padding_kernel(x, out, R0: pl.constexpr, C0: pl.constexpr):
    t = pl.load_tile(x, (R0, C0), (3, 5), padding=-1)
    pl.store_tile(out, (0, 0, 0), pl.permute(pl.reshape(t, 1, 3, 5), 0, 2, 1))


def test_tile_padding_and_partial_store_run():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = np.zeros((1, 5, 3), np.int32)
    run(tile_padding_kernel, x, out, R0=-1, C0=1)
    padded = np.full((5, 7), -1, np.int32)
    padded[1:4, 1:5] = x
    np.testing.assert_array_equal(out[0], padded[0:3, 2:7].T)


@pypto.jit
def math_run_kernel(x, y, out, N: pl.constexpr):
    o = pl.arange(0, N)
    v, w = pl.load(x + o), pl.load(y + o)
    pl.store(out + o, pl.erf(v))
    pl.store(out + N + o, pl.tanh(v))
    pl.store(out + 2 * N + o, pl.sigmoid(v))
    pl.store(out + 3 * N + o, pl.fma(v, w, 1.0))
    pl.store(out + 4 * N + o, pl.clamp(v, -0.5, 0.5))


def test_math_runs(rng=np.random.default_rng(2)):
    import math

    x = rng.standard_normal(9).astype(np.float32)
    y = rng.standard_normal(9).astype(np.float32)
    out = np.zeros(45, np.float32)
    run(math_run_kernel, x, y, out, N=9)
    erf = np.array([math.erf(v) for v in x.astype(np.float64)])
    refs = [erf, np.tanh(x), 1 / (1 + np.exp(-x)), x * y + 1, np.clip(x, -0.5, 0.5)]
    np.testing.assert_allclose(out.reshape(5, 9), np.stack(refs), rtol=1e-5, atol=1e-6)


@pypto.jit
def umulhi_kernel(a, b, out, N: pl.constexpr):
    o = pl.arange(0, N)
    pl.store(out + o, pl.umulhi(pl.load(a + o), pl.load(b + o)))


@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_umulhi_runs(dtype, rng=np.random.default_rng(3)):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, 16, dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, 16, dtype=dtype, endpoint=True)
    a[:3] = np.array([-1, -1, -2], np.int64).astype(dtype)  # wraps for uint32
    b[:3] = np.array([1, -1, 3], np.int64).astype(dtype)
    out = np.zeros(16, dtype)
    run(umulhi_kernel, a, b, out, N=16)
    # The operands' bits multiplied as UNSIGNED (as Triton), wrapped back to the dtype.
    m = 0xFFFFFFFF
    ref = [((int(p) & m) * (int(q) & m)) >> 32 for p, q in zip(a, b, strict=True)]
    np.testing.assert_array_equal(out, np.array(ref, np.uint64).astype(dtype))


@pypto.jit
def histogram_kernel(x, bins, n, BLOCK: pl.constexpr):
    o = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    v = pl.load(x + o, mask=o < n, other=0)
    pl.atomic_add(bins + v, 1, mask=o < n)


def test_atomic_histogram_runs(rng=np.random.default_rng(4)):
    x = rng.integers(0, 10, 1000).astype(np.int32)
    bins = np.zeros(10, np.int32)
    run(histogram_kernel, x, bins, 1000, BLOCK=128, grid=(8,))
    np.testing.assert_array_equal(bins, np.bincount(x, minlength=10))


@pypto.jit
def atomic_old_kernel(x, old):
    o = pl.arange(0, 4)
    pl.store(old + o, pl.atomic_max(x + o, 5, mask=o != 2))
    pl.store(old + 4 + o, pl.atomic_cas(x + o, 5, 9))


def test_atomics_return_old_values():
    x = np.array([1, 7, 3, 5], np.int32)
    old = np.full(8, -1, np.int32)
    run(atomic_old_kernel, x, old)
    np.testing.assert_array_equal(old, [1, 7, 0, 5, 5, 7, 3, 5])
    np.testing.assert_array_equal(x, [9, 7, 3, 9])


def _philox_reference(seed: int, offsets: np.ndarray) -> np.ndarray:
    """Philox 4x32-10 in plain Python integers: counter (offset, 0, 0, 0), key = seed."""
    out = []
    for c in offsets.astype(np.int64):
        c0, c1, c2, c3 = int(c) & 0xFFFFFFFF, (int(c) >> 32) & 0xFFFFFFFF, 0, 0
        k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
        for _ in range(10):
            pa, pb = 0xD2511F53 * c0, 0xCD9E8D57 * c2
            c0, c1, c2, c3 = (
                (pb >> 32) ^ c1 ^ k0,
                pb & 0xFFFFFFFF,
                (pa >> 32) ^ c3 ^ k1,
                pa & 0xFFFFFFFF,
            )
            k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
        out.append((c0, c1, c2, c3))
    return np.array(out, np.uint64).astype(np.uint32)


@pypto.jit
def random_kernel(ints, floats, normals, seed, base, N: pl.constexpr):
    o = pl.arange(0, N)
    offs = base + o
    i0, i1, i2, i3 = pl.randint4x(seed, offs)
    pl.store(ints + o, i0)
    pl.store(ints + N + o, i3)
    pl.store(floats + o, pl.rand(seed, offs))
    pl.store(normals + o, pl.randn(seed, offs))


@pytest.mark.parametrize("seed, base", [(1234, 0), (2**40 + 17, 2**33 - 5)])
def test_random_matches_a_numpy_philox(seed, base):
    n = 20
    ints, floats, normals = (
        np.zeros(2 * n, np.uint32),
        np.zeros(n, np.float32),
        np.zeros(n, np.float32),
    )
    run(random_kernel, ints, floats, normals, seed, base, N=n)
    ref = _philox_reference(seed, base + np.arange(n, dtype=np.int64))
    np.testing.assert_array_equal(ints, np.concatenate([ref[:, 0], ref[:, 3]]))
    signed = ref.view(np.int32)
    folded = np.where(signed < 0, -signed - 1, signed)
    uniform = folded.astype(np.float32) * np.float32(4.6566127342e-10)
    np.testing.assert_array_equal(floats, uniform[:, 0])
    assert (floats >= 0).all() and (floats < 1).all()
    u1 = np.maximum(np.float32(1e-7), uniform[:, 0]).astype(np.float64)
    u2 = uniform[:, 1].astype(np.float64)
    np.testing.assert_allclose(
        normals, np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2), rtol=1e-4, atol=1e-5
    )


@pypto.jit
def device_assert_kernel(x, n):
    v = pl.load(x + pl.arange(0, 4))
    assert v < n, "value out of range"


def test_device_assert_raises_on_the_interpreter():
    run(device_assert_kernel, np.arange(4, dtype=np.int32), 4)
    with pytest.raises(pypto.DeviceAssertError) as info:
        run(device_assert_kernel, np.arange(4, dtype=np.int32), 3)
    assert "value out of range" in str(info.value)
    assert info.value.loc.line == line(device_assert_kernel, 3)
