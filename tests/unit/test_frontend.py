"""Frontend: type promotion, broadcasting, lowering, and errors with file:line:col and caret."""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.frontend import ArgSpec, lower
from pypto_jit.frontend.semantic import broadcast_shapes, computation_type
from pypto_jit.frontend.values import SemanticError
from pypto_jit.ir import Op
from pypto_jit.ir import types as irt

T = irt.SCALARS


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("i8", "i32", "i32"), ("i32", "u32", "u32"), ("u8", "i32", "i32"), ("u32", "i64", "i64"),
        ("u64", "i64", "u64"), ("i1", "i16", "i16"), ("f16", "f16", "f16"),
        ("bf16", "bf16", "bf16"), ("f16", "bf16", "f32"), ("f16", "i64", "f16"),
        ("f32", "f16", "f32"), ("f64", "f32", "f64"), ("i32", "f32", "f32"),
    ],
)  # fmt: skip
def test_promotion_of_typed_operands(a, b, expected):
    assert computation_type(T[a], False, T[b], False, False) == T[expected]
    assert computation_type(T[b], False, T[a], False, False) == T[expected]


def test_promotion_of_literals_follows_the_tensor():
    assert computation_type(T["i32"], True, T["i8"], False, False) == T["i8"]  # x_i8 + 1
    assert computation_type(T["f32"], True, T["f16"], False, False) == T["f16"]  # x_f16 * 2.0
    assert computation_type(T["f32"], True, T["i32"], False, False) == T["f32"]  # x_i32 * 2.0
    assert computation_type(T["f16"], False, T["f16"], False, True) == T["f32"]  # f16 / f16


def test_broadcasting():
    assert broadcast_shapes((4, 1), (1, 8)) == (4, 8)
    assert broadcast_shapes((8,), (4, 8)) == (4, 8)
    assert broadcast_shapes((), (3,)) == (3,)
    with pytest.raises(SemanticError, match="cannot be broadcast"):
        broadcast_shapes((4,), (5,))


def _lower(kernel, specs):
    return lower(kernel.source, kernel.arg_names, specs)


F32_TENSOR = ArgSpec("tensor", irt.f32, (1000,), (1,))


@pypto.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: pl.constexpr):
    pid = pl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + pl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    pl.store(out_ptr + offsets, pl.load(x_ptr + offsets, mask=mask) + 1, mask=mask)


def test_lowering_vector_add():
    m = _lower(
        add_kernel, [F32_TENSOR] * 3 + [ArgSpec("scalar", irt.i32), ArgSpec("constexpr", value=128)]
    )
    assert [p.name for p in m.params] == ["x_ptr", "y_ptr", "out_ptr", "n_elements"]
    ops = [op.op for op in m.walk()]
    assert ops.count(Op.LOAD) == 1 and ops.count(Op.STORE) == 1
    load = next(op for op in m.walk() if op.op is Op.LOAD)
    assert str(load.result.type) == "block<f32,[128]>"
    assert load.loc.line == add_kernel.fn.__code__.co_firstlineno + 5


def _error(kernel, specs):
    with pytest.raises(pypto.CompilationError) as info:
        _lower(kernel, specs)
    return info.value


@pypto.jit
def bad_call_kernel(x_ptr):
    y = sorted(x_ptr)
    pl.store(x_ptr, y)


def test_unsupported_call_location_and_caret():
    err = _error(bad_call_kernel, [F32_TENSOR])
    assert isinstance(err, pypto.UnsupportedConstructError)
    line = bad_call_kernel.fn.__code__.co_firstlineno + 2
    lines = str(err).splitlines()
    assert lines[0] == (
        f"{__file__}:{line}:9: calling 'sorted' is not supported in a kernel; "
        "only pl.* functions and other @pypto.jit functions can be called"
    )
    assert lines[1] == "        y = sorted(x_ptr)"
    assert lines[2] == "            ^"


@pypto.jit
def shape_mismatch_kernel(x_ptr):
    a = pl.arange(0, 16)
    b = pl.arange(0, 8)
    pl.store(x_ptr + a, a + b)


def test_shape_mismatch_is_a_type_check_error():
    err = _error(shape_mismatch_kernel, [F32_TENSOR])
    assert isinstance(err, pypto.TypeCheckError)
    line = shape_mismatch_kernel.fn.__code__.co_firstlineno + 4
    assert str(err).splitlines()[0] == (
        f"{__file__}:{line}:25: shapes [16] and [8] cannot be broadcast together"
    )
    assert str(err).splitlines()[2] == " " * 4 + " " * 24 + "^"


@pypto.jit
def while_else_kernel(x_ptr):
    try:
        pass
    finally:
        pass


def test_try_is_rejected_by_name():
    err = _error(while_else_kernel, [F32_TENSOR])
    assert "'Try' is not supported in a kernel" in str(err)


@pypto.jit
def global_kernel(x_ptr):
    pl.store(x_ptr, NOT_CONSTEXPR)


NOT_CONSTEXPR = 3
SCALE = pl.constexpr(3)


def test_non_constexpr_global_is_rejected():
    err = _error(global_kernel, [F32_TENSOR])
    assert "global 'NOT_CONSTEXPR' is a int, not a constexpr" in str(err)


@pypto.jit
def constexpr_global_kernel(x_ptr):
    pl.store(x_ptr, SCALE * 2)


def test_constexpr_global_is_folded():
    m = _lower(constexpr_global_kernel, [F32_TENSOR])
    consts = [op.attr("value") for op in m.walk() if op.op is Op.CONST]
    assert consts == [6.0]


@pypto.jit
def loop_kernel(x_ptr, n):
    acc = 0
    for i in range(n):
        acc += pl.load(x_ptr + i)
    pl.store(x_ptr, acc)


def test_loop_carried_literal_adopts_body_type():
    m = _lower(loop_kernel, [F32_TENSOR, ArgSpec("scalar", irt.i32)])
    loop = next(op for op in m.walk() if op.op is Op.FOR)
    assert [str(r.type) for r in loop.results] == ["f32"]
    assert [str(a.type) for a in loop.regions[0].args] == ["i32", "f32"]


@pypto.jit
def layout_kernel(x_ptr, out_ptr):
    r = pl.arange(0, 4)
    c = pl.arange(0, 8)
    v = pl.load(x_ptr + r[:, None] * x_ptr.stride(0) + c[None, :] * x_ptr.stride(1))
    pl.store(out_ptr + r[:, None] * 8 + c[None, :], v + x_ptr.shape[0] + x_ptr.numel)


def test_layout_queries_fold_when_specialized_and_read_args_when_not():
    fixed = ArgSpec("tensor", irt.f32, (4, 8), (8, 1))
    m = _lower(layout_kernel, [fixed, fixed])
    assert not any(op.op in (Op.DIM, Op.STRIDE) for op in m.walk())
    dynamic = ArgSpec("tensor", irt.f32, (None, None), (None, None))
    m = _lower(layout_kernel, [dynamic, fixed])
    kinds = [op.op for op in m.walk() if op.op in (Op.DIM, Op.STRIDE)]
    assert Op.DIM in kinds and Op.STRIDE in kinds


def test_kernel_without_source_is_a_clear_error():
    namespace: dict = {}
    exec("def no_source(x):\n    pass\n", namespace)  # like `python -c`: no file to read
    kernel = pypto.jit(namespace["no_source"])
    with pytest.raises(pypto.CompilationError, match="cannot read the source of kernel"):
        kernel[(1,)](torch.zeros(1), backend="interpret")


@pypto.jit
def element_ty_kernel(x_ptr, out_ptr):
    o = pl.arange(0, 4)
    pl.store(out_ptr + o, pl.load(x_ptr + o).to(out_ptr.dtype.element_ty))


def test_dtype_element_ty_as_in_triton():
    x, out = torch.tensor([1.5, 2.5, -3.5, 4.0]), torch.zeros(4, dtype=torch.int32)
    element_ty_kernel[(1,)](x, out, backend="interpret")
    assert out.tolist() == [1, 2, -3, 4]
