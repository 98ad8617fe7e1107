"""Elementwise ops as C expression templates.

Each template turns operand expressions (``a``, ``b``; a scalar local or ``v3[i]``)
into one C expression of the result's register type. The same template serves
scalars and blocks: a block op is a flat loop whose body is the template.

Integer semantics follow the IR (no C undefined behaviour reachable): add/sub/mul/neg
are done in a wide unsigned type and cast back (wraps, also for promoted narrow
types); division by zero gives 0 and INT_MIN / -1 gives INT_MIN; shift counts are
taken modulo the width. Float results of f16/bf16 ops are computed in f32 and rounded
to the type, except for ops whose result is already exact.
"""

from __future__ import annotations

from ..ir.ops import COMPARE, Op
from ..ir.types import ScalarType
from .ctype import reg, wide_unsigned

_CMP = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">=", Op.EQ: "==", Op.NE: "!="}
_ARITH = {Op.ADD: "+", Op.SUB: "-", Op.MUL: "*"}
_BITS = {Op.AND: "&", Op.OR: "|", Op.XOR: "^"}
# i1 wraps modulo 2 like the other unsigned types: + and - are xor, * and / are and.
_BOOL = {
    Op.ADD: "^", Op.SUB: "^", Op.XOR: "^", Op.MUL: "&", Op.IDIV: "&", Op.AND: "&",
    Op.MINIMUM: "&", Op.OR: "|", Op.MAXIMUM: "|",
}  # fmt: skip
_FLOAT_FN = {
    Op.EXP: "exp", Op.EXP2: "exp2", Op.LOG: "log", Op.LOG2: "log2", Op.SQRT: "sqrt",
    Op.SIN: "sin", Op.COS: "cos", Op.FLOOR: "floor", Op.CEIL: "ceil", Op.ABS: "fabs",
    Op.ERF: "erf", Op.TANH: "tanh",
}  # fmt: skip
# f16/bf16 results of these ops are representable already: no rounding needed.
_EXACT = frozenset({Op.NEG, Op.ABS, Op.FLOOR, Op.CEIL, Op.MAXIMUM, Op.MINIMUM})


# f32 (and f16/bf16, computed in f32) functions of the prelude rather than libm's.
_OWN_F32 = {"exp": "pypto_expf", "erf": "pypto_erff"}


def _fn(name: str, t: ScalarType) -> str:
    """The C function for ``t``: ``expf`` for 32-bit-or-narrower floats, ``exp`` for f64 (the
    prelude's own vectorizable version where it has one)."""
    if t.name == "f64":
        return name
    return _OWN_F32.get(name, name + "f")


def rounded(expr: str, t: ScalarType) -> str:
    """``expr`` (computed in float) rounded to ``t`` if ``t`` is narrower than f32."""
    if t.name == "f16":
        return f"pypto_round_f16({expr})"
    if t.name == "bf16":
        return f"pypto_round_bf16({expr})"
    return expr


def _int_unary(op: Op, t: ScalarType, a: str) -> str:
    c, uw = reg(t), wide_unsigned(t)
    if t.is_bool:
        return f"({c})!({a})" if op is Op.NOT else f"({a})"  # -x == |x| == x (mod 2)
    if op is Op.NEG:
        return f"({c})(0u - ({uw})({a}))"
    if op is Op.NOT:
        return f"({c})~({a})"
    if op is Op.ABS:
        return f"(({a}) < 0 ? ({c})(0u - ({uw})({a})) : ({a}))" if t.is_signed else f"({a})"
    raise NotImplementedError(f"C rule for {op} on {t}")


def unary(op: Op, t: ScalarType, a: str) -> str:
    """C expression for the elementwise unary ``op`` on operand ``a`` of type ``t``."""
    if t.is_int:
        return _int_unary(op, t, a)
    if op is Op.NEG:
        expr = f"(-({a}))"
    elif op is Op.RSQRT:
        one = "1.0" if t.name == "f64" else "1.0f"
        expr = f"({one} / {_fn('sqrt', t)}({a}))"
    elif op in _FLOAT_FN:
        expr = f"{_fn(_FLOAT_FN[op], t)}({a})"
    else:
        raise NotImplementedError(f"C rule for {op} on {t}")
    return expr if op in _EXACT else rounded(expr, t)


def _int_binary(op: Op, t: ScalarType, a: str, b: str) -> str:
    c, uw = reg(t), wide_unsigned(t)
    if t.is_bool:
        if op in _BOOL:
            return f"({c})(({a}) {_BOOL[op]} ({b}))"
        if op in (Op.SHL, Op.SHR):
            return f"({a})"  # shift count modulo 1 is 0
        if op in (Op.MOD, Op.UMULHI):
            return f"({c})0"
        raise NotImplementedError(f"C rule for {op} on {t}")
    if op in _ARITH:
        return f"({c})(({uw})({a}) {_ARITH[op]} ({uw})({b}))"
    if op in _BITS:
        return f"({c})(({a}) {_BITS[op]} ({b}))"
    if op is Op.IDIV:
        quotient = f"({c})(({a}) / ({b}))"
        if t.is_signed:  # x / -1 is a negation, which wraps for INT_MIN
            quotient = f"({b}) == -1 ? ({c})(0u - ({uw})({a})) : {quotient}"
        return f"(({b}) == 0 ? ({c})0 : {quotient})"
    if op is Op.MOD:
        zero = f"({b}) == 0 || ({b}) == -1" if t.is_signed else f"({b}) == 0"
        return f"({zero} ? ({c})0 : ({c})(({a}) % ({b})))"
    count = f"(({b}) & {t.bits - 1})"
    if op is Op.SHL:
        return f"({c})(({uw})({a}) << {count})"
    if op is Op.SHR:  # gcc's >> on signed values is arithmetic; narrow unsigned promote >= 0
        return f"({c})(({a}) >> {count})"
    if op is Op.MAXIMUM:
        return f"(({a}) > ({b}) ? ({a}) : ({b}))"
    if op is Op.MINIMUM:
        return f"(({a}) < ({b}) ? ({a}) : ({b}))"
    if op is Op.UMULHI:  # high half of the product of the operands as UNSIGNED (as Triton)
        wide = {8: "uint32_t", 16: "uint32_t", 32: "uint64_t", 64: "unsigned __int128"}[t.bits]
        narrow = f"uint{t.bits}_t"  # the operand's bits, zero-extended (not sign-extended)
        ua, ub = f"({wide})({narrow})({a})", f"({wide})({narrow})({b})"
        return f"({c})(({ua} * {ub}) >> {t.bits})"
    raise NotImplementedError(f"C rule for {op} on {t}")


def binary(op: Op, t: ScalarType, a: str, b: str) -> str:
    """C expression for the elementwise binary ``op`` (operands of type ``t``)."""
    if op in COMPARE:
        return f"(({a}) {_CMP[op]} ({b}))"
    if t.is_int:
        return _int_binary(op, t, a, b)
    if op in _ARITH or op is Op.DIV:
        expr = f"(({a}) {'/' if op is Op.DIV else _ARITH[op]} ({b}))"
    elif op is Op.IDIV:
        expr = f"{_fn('trunc', t)}(({a}) / ({b}))"
    elif op is Op.MOD:
        expr = f"{_fn('fmod', t)}({a}, {b})"
    elif op is Op.MAXIMUM:  # NaN-propagating: a NaN operand wins. `|`, not `||`: no branch
        expr = f"((({a}) > ({b})) | (({a}) != ({a})) ? ({a}) : ({b}))"
    elif op is Op.MINIMUM:
        expr = f"((({a}) < ({b})) | (({a}) != ({a})) ? ({a}) : ({b}))"
    else:
        raise NotImplementedError(f"C rule for {op} on {t}")
    return expr if op in _EXACT else rounded(expr, t)


def where(c: str, a: str, b: str) -> str:
    return f"(({c}) ? ({a}) : ({b}))"


def fma(t: ScalarType, a: str, b: str, c: str) -> str:
    """a * b + c rounded once in f32/f64 (then to f16/bf16: f16 products are exact in f32)."""
    return rounded(f"{_fn('fma', t)}({a}, {b}, {c})", t)


# Bits of a register value of a float type, as an unsigned int of its width, and back.
_TO_BITS = {
    "f16": "pypto_f32_to_f16({})", "bf16": "(uint16_t)(pypto_f2u({}) >> 16)",
    "f32": "pypto_f2u({})", "f64": "pypto_d2u({})",
}  # fmt: skip
_FROM_BITS = {
    "f16": "pypto_f16_to_f32((uint16_t)({}))", "bf16": "pypto_bf16_to_f32((uint16_t)({}))",
    "f32": "pypto_u2f((uint32_t)({}))", "f64": "pypto_u2d((uint64_t)({}))",
}  # fmt: skip


def bitcast(src: ScalarType, dst: ScalarType, a: str) -> str:
    """Reinterpret the bits of ``a`` (same width) as ``dst``."""
    bits = _TO_BITS[src.name].format(a) if src.is_float else f"({a})"
    return _FROM_BITS[dst.name].format(bits) if dst.is_float else f"({reg(dst)})({bits})"


def cast(src: ScalarType, dst: ScalarType, a: str) -> str:
    """C expression converting ``a`` (register type of ``src``) to ``dst``."""
    if src == dst:
        return f"({a})"
    if dst.is_bool:
        return f"(uint8_t)(({a}) != 0)"
    if not dst.is_float or dst.name in ("f32", "f64"):
        return f"({reg(dst)})({a})"  # ints truncate toward zero; f16/bf16 are floats already
    # Through f32 (f64 sources round twice), as torch and the interpreter do.
    return rounded(f"(float)({a})", dst)


def load_convert(t: ScalarType, x: str) -> str:
    """Memory element ``x`` of type ``t`` to its register type."""
    if t.is_bool:
        return f"(uint8_t)({x} != 0)"
    if t.name == "f16":
        return f"pypto_f16_to_f32({x})"
    if t.name == "bf16":
        return f"pypto_bf16_to_f32({x})"
    return x


def store_convert(t: ScalarType, x: str) -> str:
    """Register value ``x`` of type ``t`` to its memory type."""
    if t.name == "f16":
        return f"pypto_f32_to_f16({x})"
    if t.name == "bf16":
        return f"pypto_f32_to_bf16({x})"
    return x
