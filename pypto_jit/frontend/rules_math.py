"""Lowering rules for elementwise math builtins.

Most map to one IR op. ``sigmoid`` and ``clamp`` are compositions, written the
way Triton defines them, so they promote types exactly as Triton does.
"""

from __future__ import annotations

from ..ir import Op
from .builtins import const_int, numeric, rule, shape_of
from .semantic import computation_type, literal_type
from .values import SemanticError, Tensor

_FLOAT_UNARY = [
    ("exp", Op.EXP), ("exp2", Op.EXP2), ("log", Op.LOG), ("log2", Op.LOG2), ("sqrt", Op.SQRT),
    ("sqrt_rn", Op.SQRT), ("rsqrt", Op.RSQRT), ("sin", Op.SIN), ("cos", Op.COS),
    ("floor", Op.FLOOR), ("ceil", Op.CEIL), ("erf", Op.ERF), ("tanh", Op.TANH),
]  # fmt: skip


def _math_rule(name: str, op: Op) -> None:
    @rule(name)
    def _math(lw, x):
        return lw.sem.math(op, numeric(lw, x, f"pl.{name}"), name)

    _math.__name__ = f"_{name}"


for _name, _op in _FLOAT_UNARY:
    _math_rule(_name, _op)


@rule("abs")
def _abs(lw, x):
    x = numeric(lw, x, "pl.abs")
    if x.scalar.is_unsigned or x.scalar.is_bool:
        return x
    return lw.sem.unary(Op.ABS, x)


@rule("sigmoid")
def _sigmoid(lw, x):
    x = numeric(lw, x, "pl.sigmoid")
    if not x.scalar.is_float:
        raise SemanticError(f"pl.sigmoid needs a floating-point operand, got {x.type}")
    sem = lw.sem
    denominator = sem.binary(Op.ADD, 1, sem.math(Op.EXP, sem.unary(Op.NEG, x), "exp"))
    return sem.binary(Op.DIV, 1, denominator)  # 1 / (1 + exp(-x)), as Triton


# -- binary and ternary -------------------------------------------------------------------
@rule("maximum")
def _maximum(lw, x, y, propagate_nan=None):
    return lw.sem.minmax(Op.MAXIMUM, x, y)  # always propagates NaN (the IR's definition)


@rule("minimum")
def _minimum(lw, x, y, propagate_nan=None):
    return lw.sem.minmax(Op.MINIMUM, x, y)


@rule("clamp")
def _clamp(lw, x, min, max, propagate_nan=None):  # noqa: A002 - Triton's parameter names
    return lw.sem.minmax(Op.MINIMUM, lw.sem.minmax(Op.MAXIMUM, x, min), max)


@rule("fma")
def _fma(lw, x, y, z):
    a, b, c = promote_all(lw, x, y, z)
    if not a.scalar.is_float:
        raise SemanticError(f"pl.fma needs floating-point operands, got {a.type}")
    return Tensor(lw.b.typed(Op.FMA, a.value, b.value, c.value))


@rule("fdiv")
def _fdiv(lw, x, y, ieee_rounding=False):
    return lw.sem.binary(Op.DIV, x, y)  # IR division is always correctly rounded


@rule("div_rn")
def _div_rn(lw, x, y):
    return lw.sem.binary(Op.DIV, x, y)


@rule("umulhi")
def _umulhi(lw, x, y):
    a, b = lw.sem.promote_pair(x, y)
    if not a.scalar.is_int or a.scalar.is_bool or a.is_ptr:
        raise SemanticError(f"pl.umulhi needs integer operands, got {a.type}")
    return Tensor(lw.b.typed(Op.UMULHI, a.value, b.value))


@rule("cdiv")
def _cdiv(lw, x, div):
    if not isinstance(x, Tensor) and not isinstance(div, Tensor):
        return -(-const_int(x, "cdiv x") // const_int(div, "cdiv div"))
    total = lw.sem.binary(Op.ADD, x, lw.sem.binary(Op.SUB, div, 1))
    return lw.sem.binary(Op.IDIV, total, div)


def promote_all(lw, *xs) -> list[Tensor]:
    """Every operand converted to one computation type and broadcast to one shape."""
    t, literal = None, True
    for x in xs:
        tx = x.scalar if isinstance(x, Tensor) else literal_type(x)
        lx = not isinstance(x, Tensor)
        t, literal = (
            (tx, lx) if t is None else (computation_type(t, literal, tx, lx, False), literal and lx)
        )
    tensors = [
        lw.sem.cast(numeric(lw, x, "this operation"), t)
        if isinstance(x, Tensor)
        else lw.sem.to_tensor(x, t)
        for x in xs
    ]
    shp = shape_of(*tensors)
    return [lw.sem.broadcast_to(x, shp) for x in tensors]
