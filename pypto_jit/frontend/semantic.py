"""Typing rules of the language: promotion, broadcasting and op construction.

Follows Triton's rules. A Python literal (or constexpr) in an op with a tensor
does not take part in promotion when its kind (bool < int < float) is not
higher than the tensor's. Otherwise, for two typed operands: f64 > f32 >
{f16, bf16} (f16 with bf16 gives f32; both half types give f32 for ``/``
and ``%``) > integers; integers of one signedness promote to the wider; mixed
signedness gives the unsigned type when it is at least as wide, else the
signed one.
"""

from __future__ import annotations

import operator

from ..ir import Builder, Op
from ..ir import types as irt
from .values import SemanticError, Tensor, describe

Scalar = int | float | bool
Operand = Tensor | Scalar


def literal_type(value: Scalar) -> irt.ScalarType:
    """The IR type a Python literal takes when it must become a value."""
    if isinstance(value, bool):
        return irt.i1
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return irt.i32
        if -(2**63) <= value < 2**63:
            return irt.i64
        if 0 <= value < 2**64:
            return irt.u64
        raise SemanticError(f"integer literal {value} does not fit in 64 bits")
    if isinstance(value, float):
        return irt.f32
    raise SemanticError(f"expected a number, got {describe(value)}")


def _kind(t: irt.ScalarType) -> int:
    return 0 if t.is_bool else 2 if t.is_float else 1


def _int_promote(a: irt.ScalarType, b: irt.ScalarType) -> irt.ScalarType:
    if a.is_bool:
        return b
    if b.is_bool:
        return a
    if a.is_signed == b.is_signed:
        return a if a.bits >= b.bits else b
    unsigned, signed = (a, b) if a.is_unsigned else (b, a)
    return unsigned if unsigned.bits >= signed.bits else signed


def computation_type(
    a: irt.ScalarType, a_literal: bool, b: irt.ScalarType, b_literal: bool, div_or_mod: bool
) -> irt.ScalarType:
    if a_literal != b_literal:
        lit, ten = (a, b) if a_literal else (b, a)
        if _kind(lit) <= _kind(ten):
            if div_or_mod and ten in (irt.f16, irt.bf16):
                return irt.f32
            return ten
    if irt.f64 in (a, b):
        return irt.f64
    if irt.f32 in (a, b):
        return irt.f32
    if a.is_float or b.is_float:
        if a == b and not div_or_mod:
            return a
        if a.is_float and b.is_float:
            return irt.f32
        half = a if a.is_float else b
        return irt.f32 if div_or_mod else half
    return _int_promote(a, b)


def broadcast_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise SemanticError(f"shapes {list(a)} and {list(b)} cannot be broadcast together")
        out.append(max(x, y))
    return tuple(reversed(out))


class Semantic:
    """Builds typed IR for the language's operations on frontend values."""

    def __init__(self, builder: Builder):
        self.b = builder

    # -- conversion -------------------------------------------------------------
    def to_tensor(self, x: Operand, t: irt.ScalarType | None = None) -> Tensor:
        if isinstance(x, Tensor):
            return x if t is None else self.cast(x, t)
        if not isinstance(x, (bool, int, float)):
            raise SemanticError(f"expected a number or tensor, got {describe(x)}")
        t = t or literal_type(x)
        if t.is_float:
            value = float(x)
        elif t.is_bool:
            value = bool(x)
        else:
            value = _wrap_int(int(x), t)
        return Tensor(self.b.const(value, t))

    def cast(self, x: Operand, t: irt.ScalarType) -> Tensor:
        if not isinstance(x, Tensor):
            return self.to_tensor(x, t)
        if x.is_ptr:
            raise SemanticError(f"cannot cast the pointer {x.type} to {t}")
        return Tensor(self.b.cast(x.value, irt.with_elem(x.type, t)))

    def broadcast_to(self, x: Tensor, shp: tuple[int, ...]) -> Tensor:
        if x.shape == shp:
            return x
        if not x.is_block:
            return Tensor(self.b.splat(x.value, shp), x.param) if shp else x
        if len(x.shape) > len(shp):
            raise SemanticError(f"cannot broadcast {x.type} to shape {list(shp)}")
        v = x.value
        while len(irt.shape(v.type)) < len(shp):
            v = self.b.typed(Op.EXPAND_DIMS, v, axis=0)
        broadcast_shapes(irt.shape(v.type), shp)  # raises on mismatch
        out = self.b.typed(Op.BROADCAST, v, declared=irt.BlockType(irt.elem(v.type), shp))
        return Tensor(out, x.param)

    # -- binary -------------------------------------------------------------------
    def promote_pair(self, a: Operand, b: Operand, div_or_mod: bool = False):
        """Both operands as tensors of one computation type and one shape."""
        ta = a.scalar if isinstance(a, Tensor) else literal_type(a)
        tb = b.scalar if isinstance(b, Tensor) else literal_type(b)
        t = computation_type(
            ta, not isinstance(a, Tensor), tb, not isinstance(b, Tensor), div_or_mod
        )
        a, b = self.cast(a, t), self.cast(b, t)
        shp = broadcast_shapes(a.shape, b.shape)
        return self.broadcast_to(a, shp), self.broadcast_to(b, shp)

    def binary(self, op: Op, a: Operand, b: Operand) -> Tensor:
        if isinstance(a, Tensor) and a.is_ptr or isinstance(b, Tensor) and b.is_ptr:
            return self._pointer_arith(op, a, b)
        if op is Op.DIV:
            a, b = self._true_div_operands(a, b)
        elif op in (Op.IDIV, Op.MOD):
            a, b = self.promote_pair(a, b, div_or_mod=True)
            if op is Op.IDIV and a.scalar.is_float:
                raise SemanticError("'//' is defined on integers only; use '/' and pl.floor")
        else:
            a, b = self.promote_pair(a, b)
        if op in (Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR) and not a.scalar.is_int:
            raise SemanticError(f"bitwise operator on {a.type}: integers and booleans only")
        if op in (Op.SHL, Op.SHR) and a.scalar.is_bool:
            raise SemanticError("shift of a boolean")
        return Tensor(self.b.typed(op, a.value, b.value))

    def _true_div_operands(self, a: Operand, b: Operand):
        ta = a.scalar if isinstance(a, Tensor) else literal_type(a)
        tb = b.scalar if isinstance(b, Tensor) else literal_type(b)
        if ta.is_int and tb.is_int:  # int / int -> f32, as Triton
            a, b = self.cast(a, irt.f32), self.cast(b, irt.f32)
        return self.promote_pair(a, b, div_or_mod=True)

    def _pointer_arith(self, op: Op, a: Operand, b: Operand) -> Tensor:
        if op is Op.ADD and not (isinstance(a, Tensor) and a.is_ptr):
            a, b = b, a
        if op not in (Op.ADD, Op.SUB) or isinstance(b, Tensor) and b.is_ptr:
            raise SemanticError(
                f"operator '{_SYMBOL.get(op, op)}' is not defined on pointers; "
                "only pointer + integer and pointer - integer are"
            )
        off = b if isinstance(b, Tensor) else self.to_tensor(b)
        if not off.scalar.is_int or off.scalar.is_bool:
            raise SemanticError(f"pointer offset must be an integer, got {off.type}")
        if op is Op.SUB:
            off = Tensor(self.b.typed(Op.NEG, off.value))
        shp = broadcast_shapes(a.shape, off.shape)
        p, off = self.broadcast_to(a, shp), self.broadcast_to(off, shp)
        return Tensor(self.b.typed(Op.ADDPTR, p.value, off.value), a.param)

    def compare(self, op: Op, a: Operand, b: Operand) -> Tensor:
        if isinstance(a, Tensor) and a.is_ptr or isinstance(b, Tensor) and b.is_ptr:
            raise SemanticError("comparing pointers is not supported")
        a, b = self.promote_pair(a, b)
        return Tensor(self.b.typed(op, a.value, b.value))

    def minmax(self, op: Op, a: Operand, b: Operand) -> Tensor:
        a, b = self.promote_pair(a, b)
        return Tensor(self.b.typed(op, a.value, b.value))

    # -- unary --------------------------------------------------------------------
    def unary(self, op: Op, x: Operand) -> Tensor:
        x = self.to_tensor(x)
        if x.is_ptr:
            raise SemanticError(f"{op} is not defined on pointers")
        if op is Op.NOT and not x.scalar.is_int:
            raise SemanticError(f"'~' needs an integer or boolean operand, got {x.type}")
        return Tensor(self.b.typed(op, x.value))

    def math(self, op: Op, x: Operand, name: str) -> Tensor:
        x = self.to_tensor(x)
        if not x.scalar.is_float:
            raise SemanticError(f"pl.{name} needs a floating-point operand, got {x.type}")
        return Tensor(self.b.typed(op, x.value))

    def where(self, cond: Operand, x: Operand, y: Operand) -> Tensor:
        c = self.to_tensor(cond)
        if not c.scalar.is_bool:
            c = self.compare(Op.NE, c, 0)
        if isinstance(x, Tensor) and x.is_ptr or isinstance(y, Tensor) and y.is_ptr:
            shp = broadcast_shapes(broadcast_shapes(c.shape, x.shape), y.shape)
            x, y = self.broadcast_to(x, shp), self.broadcast_to(y, shp)
            if x.type != y.type:
                raise SemanticError(f"pl.where between pointers of types {x.type} and {y.type}")
        else:
            x, y = self.promote_pair(x, y)
            shp = broadcast_shapes(c.shape, x.shape)
            x, y = self.broadcast_to(x, shp), self.broadcast_to(y, shp)
        c = self.broadcast_to(c, shp)
        param = x.param if x.param == y.param else None
        return Tensor(self.b.typed(Op.WHERE, c.value, x.value, y.value), param)


def _wrap_int(v: int, t: irt.ScalarType) -> int:
    """``v`` wrapped to the range of ``t`` (two's complement)."""
    bits = t.bits
    v &= (1 << bits) - 1
    if t.is_signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


_SYMBOL = {
    Op.MUL: "*",
    Op.DIV: "/",
    Op.IDIV: "//",
    Op.MOD: "%",
    Op.AND: "&",
    Op.OR: "|",
    Op.XOR: "^",
    Op.SHL: "<<",
    Op.SHR: ">>",
    Op.ADD: "+",
    Op.SUB: "-",
}

# Python semantics for compile-time constants (constexpr arithmetic follows Python).
PY_BINARY = {
    Op.ADD: operator.add, Op.SUB: operator.sub, Op.MUL: operator.mul, Op.DIV: operator.truediv,
    Op.IDIV: operator.floordiv, Op.MOD: operator.mod, Op.AND: operator.and_,
    Op.OR: operator.or_, Op.XOR: operator.xor, Op.SHL: operator.lshift, Op.SHR: operator.rshift,
}  # fmt: skip
PY_COMPARE = {
    Op.LT: operator.lt, Op.LE: operator.le, Op.GT: operator.gt, Op.GE: operator.ge,
    Op.EQ: operator.eq, Op.NE: operator.ne,
}  # fmt: skip
