"""C rules for REDUCE, SCAN and DOT: loops over whole blocks.

A block of shape ``[..., n, ...]`` reduced along ``axis`` is viewed as ``[outer, n,
inner]``. Loops run ``inner`` innermost so that gcc vectorizes across the kept
columns. f16/bf16 accumulate in f32 and round each result once.

Float sums, products, max and min along the last axis (``inner == 1``) cannot be
vectorized in index order without reassociating, so they use a fixed order: 16
interleaved partial results (lane ``w`` takes elements ``w, w + 16, ...``) combined
as a tree. The order is part of the contract: results are the same on every run.
"""

from __future__ import annotations

from math import prod

from ..ir.nodes import Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, ScalarType, f32, scalar_of
from . import exprs
from .ctype import reg
from .emitter import Emitter, rule

_COMBINE = {
    "sum": Op.ADD, "prod": Op.MUL, "max": Op.MAXIMUM, "min": Op.MINIMUM,
    "and": Op.AND, "or": Op.OR, "xor": Op.XOR,
}  # fmt: skip
_PARTIALS = 16


def _acc_type(t: ScalarType) -> ScalarType:
    """Accumulate f16/bf16 in f32 (their register type) without rounding each step."""
    return f32 if t.name in ("f16", "bf16") else t


def _view(src: Value, axis: int) -> tuple[int, int, int]:
    shp = src.type.shape
    return prod(shp[:axis]), shp[axis], prod(shp[axis + 1 :])


def _result(r: Emitter, v: Value) -> tuple[str, str]:
    """Storage for a reduction result and the lane expression of element ``o*inner + k``."""
    if isinstance(v.type, BlockType):
        return r.declare(v), "{name}[{ix}]"
    return r.declare(v), "{name}"


@rule(Op.REDUCE)
def _reduce(r: Emitter, op: Operation) -> None:
    src, kind, v = op.operands[0], op.attr("kind"), op.result
    t = scalar_of(src.type)
    outer, n, inner = _view(src, op.attr("axis"))
    name, slot = _result(r, v)

    def x(o: str, m: str, k: str) -> str:
        return r.lane(src, f"({o}) * {n * inner} + ({m}) * {inner} + ({k})")

    def out(o: str, k: str) -> str:
        return slot.format(name=name, ix=f"({o}) * {inner} + ({k})")

    r.open(f"for (int64_t o = 0; o < {outer}; ++o) {{")
    if kind in ("argmax", "argmin"):
        _arg_extreme(r, t, kind, n, inner, x, out)
    elif inner == 1 and t.is_float and n >= 2 * _PARTIALS:
        _partials(r, t, kind, n, x, out)
    elif inner == 1:  # a scalar accumulator: gcc vectorizes integer reductions itself
        a = _acc_type(t)
        r.emit(f"{reg(a)} acc = {x('o', '0', '0')};")
        step = exprs.binary(_COMBINE[kind], a, "acc", x("o", "m", "0"))
        r.loop(n - 1, f"{{ int64_t m = mm + 1; acc = {step}; }}", var="mm")
        r.emit(f"{out('o', '0')} = {exprs.rounded('acc', t)};")
    else:  # accumulate whole rows of ``inner`` columns
        a = _acc_type(t)
        acc = r.declare(Value(BlockType(a, (inner,))), "acc")
        r.loop(inner, f"{acc}[k] = {x('o', '0', 'k')};", var="k")
        step = exprs.binary(_COMBINE[kind], a, f"{acc}[k]", x("o", "m", "k"))
        r.open(f"for (int64_t m = 1; m < {n}; ++m) {{")
        r.loop(inner, f"{acc}[k] = {step};", var="k")
        r.close()
        r.loop(inner, f"{out('o', 'k')} = {exprs.rounded(f'{acc}[k]', t)};", var="k")
    r.close()


def _partials(r: Emitter, t: ScalarType, kind: str, n: int, x, out) -> None:
    """Reduce one row of ``n`` floats in the fixed interleaved-partials order."""
    a, w = _acc_type(t), _PARTIALS
    combine = _COMBINE[kind]
    part = r.declare(Value(BlockType(a, (w,))), "part")
    r.loop(w, f"{part}[w] = {x('o', 'w', '0')};", var="w")
    chunks = n // w
    r.open(f"for (int64_t c = 1; c < {chunks}; ++c) {{")
    r.loop(
        w,
        f"{part}[w] = {exprs.binary(combine, a, f'{part}[w]', x('o', f'c * {w} + w', '0'))};",
        var="w",
    )
    r.close()
    if n % w:  # the tail folds into the first partials
        tail = x("o", f"{chunks * w} + w", "0")
        r.loop(n % w, f"{part}[w] = {exprs.binary(combine, a, f'{part}[w]', tail)};", var="w")
    half = w // 2
    while half:
        pair = exprs.binary(combine, a, f"{part}[w]", f"{part}[w + {half}]")
        r.loop(half, f"{part}[w] = {pair};", var="w")
        half //= 2
    r.emit(f"{out('o', '0')} = {exprs.rounded(f'{part}[0]', t)};")


def _arg_extreme(r: Emitter, t: ScalarType, kind: str, n: int, inner: int, x, out) -> None:
    """Index of the first maximum/minimum along the axis; the first NaN wins."""
    cmp = ">" if kind == "argmax" else "<"
    nan = " || (y != y && best == best)" if t.is_float else ""
    r.open(f"for (int64_t k = 0; k < {inner}; ++k) {{")
    r.emit(f"{reg(t)} best = {x('o', '0', 'k')}; int32_t at = 0;")
    r.open(f"for (int64_t m = 1; m < {n}; ++m) {{")
    r.emit(f"{reg(t)} y = {x('o', 'm', 'k')};")
    r.emit(f"if (y {cmp} best{nan}) {{ best = y; at = (int32_t)m; }}")
    r.close()
    r.emit(f"{out('o', 'k')} = at;")
    r.close()


@rule(Op.SCAN)
def _scan(r: Emitter, op: Operation) -> None:
    src, v = op.operands[0], op.result
    t = scalar_of(src.type)
    a = _acc_type(t)
    outer, n, inner = _view(src, op.attr("axis"))
    name = r.declare(v)
    first, m = (f"{n - 1}", f"{n - 1} - mm") if op.attr("reverse") else ("0", "mm")

    def ix(o: str, mm: str, k: str) -> str:
        return f"({o}) * {n * inner} + ({mm}) * {inner} + ({k})"

    acc = r.declare(Value(BlockType(a, (inner,))), "acc")
    step = exprs.binary(_COMBINE[op.attr("kind")], a, f"{acc}[k]", r.lane(src, ix("o", "m", "k")))
    r.open(f"for (int64_t o = 0; o < {outer}; ++o) {{")
    r.loop(inner, f"{acc}[k] = {r.lane(src, ix('o', first, 'k'))};", var="k")
    r.loop(inner, f"{name}[{ix('o', first, 'k')}] = {exprs.rounded(f'{acc}[k]', t)};", var="k")
    r.open(f"for (int64_t mm = 1; mm < {n}; ++mm) {{")
    r.emit(f"const int64_t m = {m};")
    r.loop(inner, f"{acc}[k] = {step};", var="k")
    r.loop(inner, f"{name}[{ix('o', 'm', 'k')}] = {exprs.rounded(f'{acc}[k]', t)};", var="k")
    r.close()
    r.close()


@rule(Op.DOT)
def _dot(r: Emitter, op: Operation) -> None:
    """acc + a @ b: products in the accumulator's type, summed over k in order."""
    a, b, acc = op.operands
    (m, kk), (_, n) = a.type.shape, b.type.shape
    src_t, t = scalar_of(a.type), scalar_of(acc.type)
    name = r.declare(op.result)
    r.loop(m * n, f"{name}[i] = {r.lane(acc)};")

    def widen(x: str) -> str:
        return exprs.cast(src_t, t, x) if src_t != t else x

    product = exprs.binary(Op.MUL, t, "av", widen(r.lane(b, f"k * {n} + j")))
    update = exprs.binary(Op.ADD, t, f"{name}[i * {n} + j]", product)
    r.open(f"for (int64_t i = 0; i < {m}; ++i) {{")
    r.open(f"for (int64_t k = 0; k < {kk}; ++k) {{")
    r.emit(f"const {reg(t)} av = {widen(r.lane(a, f'i * {kk} + k'))};")
    r.loop(n, f"{name}[i * {n} + j] = {update};", var="j")
    r.close()
    r.close()
