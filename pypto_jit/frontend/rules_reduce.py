"""Lowering rules for reductions, scans and ``dot``.

Accumulation types follow Triton: ``sum``/``cumsum`` of f16/bf16 accumulate in
f32 and of narrow integers in (u)int32; ``dot`` of half types accumulates in
f32 and of integers in int32. ``max``/``min`` keep the element type (they are
exact); booleans are reduced as int32. ``axis=None`` reduces every axis by
reshaping the block to 1-D first.
"""

from __future__ import annotations

from ..ir import Op
from ..ir import types as irt
from .builtins import as_dtype, const_bool, numel, rule
from .rules_shape import normalize_axis, reshape
from .semantic import computation_type
from .values import SemanticError, Tensor


def _input(lw, x, what: str) -> Tensor:
    t = x if isinstance(x, Tensor) else lw.sem.to_tensor(x)
    if t.is_ptr:
        raise SemanticError(f"{what} of pointers is not supported, got {t.type}")
    if not t.is_block:  # a scalar reduces like a block of one element
        t = lw.sem.broadcast_to(t, (1,))
    return t


def reduce(lw, x: Tensor, kind: str, axis, keep_dims, what: str) -> Tensor:
    keep = const_bool(keep_dims, "keep_dims")
    if axis is None:
        flat = reshape(lw, x, (numel(x.shape),))
        out = Tensor(lw.b.typed(Op.REDUCE, flat.value, kind=kind, axis=0, keep_dims=False))
        return lw.sem.broadcast_to(out, (1,) * len(x.shape)) if keep else out
    a = normalize_axis(axis, len(x.shape), what)
    return Tensor(lw.b.typed(Op.REDUCE, x.value, kind=kind, axis=a, keep_dims=keep))


def _sum_type(t: irt.ScalarType, dtype) -> irt.ScalarType:
    if dtype is not None:
        return as_dtype(dtype)
    if t.is_float:
        return irt.f32 if t.bits < 32 else t
    if t.bits < 32:  # Triton counts int1 among the unsigned types
        return irt.u32 if t.is_unsigned or t.is_bool else irt.i32
    return t


def _no_bool(lw, x: Tensor) -> Tensor:
    return lw.sem.cast(x, irt.i32) if x.scalar.is_bool else x


def _tie_break(left, what: str) -> None:
    if not const_bool(left, "tie_break_left"):
        raise SemanticError(
            f"{what}: only tie_break_left=True (the first extreme index) is supported"
        )


@rule("sum")
def _sum(lw, input, axis=None, keep_dims=False, dtype=None):  # noqa: A002
    x = _input(lw, input, "pl.sum")
    x = lw.sem.cast(x, _sum_type(x.scalar, dtype))
    return reduce(lw, x, "sum", axis, keep_dims, "pl.sum")


@rule("xor_sum")
def _xor_sum(lw, input, axis=None, keep_dims=False):  # noqa: A002
    x = _input(lw, input, "pl.xor_sum")
    if not x.scalar.is_int:
        raise SemanticError(f"pl.xor_sum needs integers, got {x.type}")
    return reduce(lw, x, "xor", axis, keep_dims, "pl.xor_sum")


def _extreme_rule(name: str) -> None:
    @rule(name)
    def _extreme(lw, input, axis=None, return_indices=False,  # noqa: A002
                 return_indices_tie_break_left=True, keep_dims=False):  # fmt: skip
        x = _no_bool(lw, _input(lw, input, f"pl.{name}"))
        values = reduce(lw, x, name, axis, keep_dims, f"pl.{name}")
        if not const_bool(return_indices, "return_indices"):
            return values
        _tie_break(return_indices_tie_break_left, f"pl.{name}")
        return values, reduce(lw, x, f"arg{name}", axis, keep_dims, f"pl.{name}")

    _extreme.__name__ = f"_{name}"

    @rule(f"arg{name}")
    def _arg(lw, input, axis=None, tie_break_left=True, keep_dims=False):  # noqa: A002
        _tie_break(tie_break_left, f"pl.arg{name}")
        x = _no_bool(lw, _input(lw, input, f"pl.arg{name}"))
        return reduce(lw, x, f"arg{name}", axis, keep_dims, f"pl.arg{name}")

    _arg.__name__ = f"_arg{name}"


_extreme_rule("max")
_extreme_rule("min")


# -- scans ----------------------------------------------------------------------------------
def scan(lw, x: Tensor, kind: str, axis, reverse, what: str) -> Tensor:
    rev = const_bool(reverse, "reverse")
    if axis is None:  # numpy's convention: scan the flattened block
        x, axis = reshape(lw, x, (numel(x.shape),)), 0
    a = normalize_axis(axis, len(x.shape), what)
    return Tensor(lw.b.typed(Op.SCAN, x.value, kind=kind, axis=a, reverse=rev))


@rule("cumsum")
def _cumsum(lw, input, axis=0, reverse=False, dtype=None):  # noqa: A002
    x = _input(lw, input, "pl.cumsum")
    x = lw.sem.cast(x, _sum_type(x.scalar, dtype))
    return scan(lw, x, "sum", axis, reverse, "pl.cumsum")


@rule("cumprod")
def _cumprod(lw, input, axis=0, reverse=False):  # noqa: A002
    x = _no_bool(lw, _input(lw, input, "pl.cumprod"))
    if x.scalar == irt.bf16:  # as Triton
        x = lw.sem.cast(x, irt.f32)
    return scan(lw, x, "prod", axis, reverse, "pl.cumprod")


# -- dot --------------------------------------------------------------------------------------
@rule("dot")
def _dot(lw, input, other, acc=None, input_precision=None, allow_tf32=None,  # noqa: A002
         max_num_imprecise_acc=None, out_dtype=None):  # fmt: skip
    a, b = (_matrix(lw, x, which) for x, which in ((input, "first"), (other, "second")))
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise SemanticError(f"pl.dot: the inner dimensions differ: [{m}, {k}] x [{k2}, {n}]")
    if a.scalar != b.scalar:
        t = computation_type(a.scalar, False, b.scalar, False, False)
        a, b = lw.sem.cast(a, t), lw.sem.cast(b, t)
    c = _accumulator(lw, acc, _accumulator_type(a.scalar, out_dtype), out_dtype, (m, n))
    return Tensor(lw.b.typed(Op.DOT, a.value, b.value, c.value))


def _accumulator(lw, acc, acc_t: irt.ScalarType, out_dtype, shp: tuple[int, int]) -> Tensor:
    """The [M, N] block the product is added to; a given ``acc`` keeps its own type."""
    if acc is None:
        return lw.sem.broadcast_to(lw.sem.to_tensor(0, acc_t), shp)
    c = acc if isinstance(acc, Tensor) else lw.sem.to_tensor(acc, acc_t)
    if c.is_ptr or c.scalar.is_float != acc_t.is_float:
        raise SemanticError(f"pl.dot: acc must be a {acc_t} block, got {c.type}")
    if out_dtype is not None and c.scalar != acc_t:
        raise SemanticError(f"pl.dot: acc is {c.scalar} but out_dtype is {acc_t}")
    fits = len(c.shape) <= 2 and all(
        d in (1, e) for d, e in zip(c.shape[::-1], shp[::-1], strict=False)
    )
    if not fits:
        raise SemanticError(f"pl.dot: acc has shape {list(c.shape)}, the product has {list(shp)}")
    return lw.sem.broadcast_to(c, shp)


def _matrix(lw, x, which: str) -> Tensor:
    t = x if isinstance(x, Tensor) else lw.sem.to_tensor(x)
    if t.is_ptr or len(t.shape) != 2:
        raise SemanticError(f"pl.dot needs 2-D blocks, got {t.type} as the {which} operand")
    if t.scalar.is_bool:
        raise SemanticError("pl.dot of booleans is not supported")
    return t


def _accumulator_type(t: irt.ScalarType, out_dtype) -> irt.ScalarType:
    """Triton's choice: integers in int32 (int64 for 64-bit), f64 in f64, others in f32."""
    if t.is_int:
        return irt.i64 if t.bits == 64 else irt.i32
    if t == irt.f64:
        return irt.f64
    if out_dtype is None:
        return irt.f32
    out = as_dtype(out_dtype, "out_dtype")
    if out == irt.bf16:
        raise SemanticError(
            "pl.dot out_dtype=bfloat16 is not supported; use float32 and "
            "cast the result with .to(pl.bfloat16)"
        )
    if not out.is_float:
        raise SemanticError(f"pl.dot out_dtype must be a float type for {t} inputs, got {out}")
    return out if t == irt.f16 else irt.f32
