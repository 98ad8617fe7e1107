"""C rules for REDUCE and SCAN: loops over whole blocks (DOT: ``gemm.py``).

A block of shape ``[..., n, ...]`` reduced along ``axis`` is viewed as ``[outer, n,
inner]``. Loops run ``inner`` innermost so that gcc vectorizes across the kept
columns. f16/bf16 accumulate in f32 and round each result once.

Float sums, products, max and min along the last axis (``inner == 1``) cannot be
vectorized in index order without reassociating, so they use a fixed order: 16
interleaved partial results (lane ``w`` takes elements ``w, w + 16, ...``) combined
as a tree. The order is part of the contract: results are the same on every run.
"""

from __future__ import annotations

import math
from math import prod

from ..ir.nodes import Operation, Value
from ..ir.ops import Op
from ..ir.types import SCALARS, BlockType, ScalarType, f32, scalar_of
from . import exprs, gemm  # noqa: F401 - gemm registers the DOT rule
from .ctype import literal, reg
from .emitter import Emitter, Ix, rule

_COMBINE = {
    "sum": Op.ADD, "prod": Op.MUL, "max": Op.MAXIMUM, "min": Op.MINIMUM,
    "and": Op.AND, "or": Op.OR, "xor": Op.XOR,
}  # fmt: skip


def _partial_count(t: ScalarType) -> int:
    """Partial results of a float reduction along a row: two 64-byte vectors' worth."""
    return 2 * 64 // _acc_type(t).itemsize


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


def _index(n: int, inner: int, o: str, m: str, k: str) -> Ix:
    """Lane ``(o, m, k)`` of the ``[outer, n, inner]`` view, with its row for contiguous
    loads: rows run along ``m`` when ``inner == 1``, else along ``k``."""
    flat = f"({o}) * {n * inner} + ({m}) * {inner} + ({k})"
    if inner == 1:
        return Ix(flat, f"({o}) * {n}", f"({m})", n)
    return Ix(flat, f"({o}) * {n * inner} + ({m}) * {inner}", f"({k})", inner)


def _identity(kind: str, t: ScalarType) -> str:
    """The value ``x`` combines with into ``x`` exactly (-0.0 for float sums: -0.0 + -0.0)."""
    if t.is_float:
        value = {"sum": -0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}[kind]
    elif t.is_bool:
        value = {"sum": 0, "xor": 0, "or": 0, "max": 0, "prod": 1, "and": 1, "min": 1}[kind]
    else:
        lo, hi = (-(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1) if t.is_signed else (0, -1)
        value = {"sum": 0, "xor": 0, "or": 0, "prod": 1, "and": -1, "max": lo, "min": hi}[kind]
    return literal(value, t)


@rule(Op.REDUCE)
def _reduce(r: Emitter, op: Operation) -> None:
    src, kind, v = op.operands[0], op.attr("kind"), op.result
    t = scalar_of(src.type)
    outer, n, inner = _view(src, op.attr("axis"))
    name, slot = _result(r, v)

    def x(o: str, m: str, k: str) -> str:
        return r.lane(src, _index(n, inner, o, m, k))

    def out(o: str, k: str) -> str:
        return slot.format(name=name, ix=f"({o}) * {inner} + ({k})")

    r.open(f"for (int32_t o = 0; o < {outer}; ++o) {{")
    if kind in ("argmax", "argmin"):
        _arg_extreme(r, t, kind, n, inner, x, out)
    elif inner == 1 and t.is_float and n >= 2 * _partial_count(t):
        masks = r.prefix_masks(src) if len(src.type.shape) == 1 else []
        _partials(r, t, kind, n, x, out, masks)
    elif inner == 1:  # a scalar accumulator: gcc vectorizes integer reductions itself
        a = _acc_type(t)
        r.emit(f"{reg(a)} acc = {_identity(kind, a)};")
        step = lambda: _combine(kind, a, "acc", x("o", "m", "0"))  # noqa: E731
        r.body(f"for (int32_t m = 0; m < {n}; ++m)", step)
        r.emit(f"{out('o', '0')} = {exprs.rounded('acc', t)};")
    else:  # accumulate whole rows of ``inner`` columns
        a = _acc_type(t)
        acc = r.declare(Value(BlockType(a, (inner,))), "acc")
        r.loop(inner, f"{acc}[k] = {_identity(kind, a)};", var="k")
        r.open(f"for (int32_t m = 0; m < {n}; ++m) {{")
        step = lambda: _combine(kind, a, f"{acc}[k]", x("o", "m", "k"))  # noqa: E731
        r.body(f"for (int32_t k = 0; k < {inner}; ++k)", step)
        r.close()
        r.loop(inner, f"{out('o', 'k')} = {exprs.rounded(f'{acc}[k]', t)};", var="k")
    r.close()


def _combine(kind: str, a: ScalarType, acc: str, x: str) -> str:
    """``acc = acc op x`` with ``x`` read once (NaN-propagating max reads it twice)."""
    return f"{{ const {reg(a)} y_ = {x}; {acc} = {exprs.binary(_COMBINE[kind], a, acc, 'y_')}; }}"


def _partials(r: Emitter, t: ScalarType, kind: str, n: int, x, out, masks=()) -> None:
    """Reduce one row of ``n`` floats in the fixed interleaved-partials order: partial ``w``
    takes elements ``w, w + W, w + 2W, ...`` (``W``: two 64-byte vectors of the accumulator
    type), then the partials combine as a tree, ``w`` with ``w + W/2``, and so on.

    Each chunk of ``W`` lanes is computed by a loop into ``y_`` that gcc vectorizes whatever
    the lanes cost (fused exp, masked loads ...); two vector variables (gcc's vector
    extension) carry the partials across chunks in registers, as two independent chains, and
    the tree works on halves of them. max/min keep the chain to a compare and a blend: a NaN
    counts as +inf (-inf for min), and a result of +inf is checked by a second pass that
    makes it NaN if a lane is NaN. The chunks whose lanes all have the prefix ``masks``
    true come first, in a loop that reads them unmasked (the same chunks, in the same order)."""
    a = _acc_type(t)
    vl = 64 // a.itemsize
    w = 2 * vl
    part = r.declare(Value(BlockType(a, (w,))), "part")
    r.loop(w, f"{part}[w] = {_identity(kind, a)};", var="w")
    extreme = {"max": ">", "min": "<"}.get(kind)
    far = literal(math.inf if kind == "max" else -math.inf, a)

    def lane(m: str) -> str:
        if extreme is None:
            return x("o", m, "0")
        return f"({{ const {reg(a)} v_ = {x('o', m, '0')}; v_ != v_ ? {far} : v_; }})"

    r.open("{")
    vec = f"pypto_v_{a.name}"
    r.emit(f"{vec} p0_, p1_;")
    r.emit(f"memcpy(&p0_, {part}, 64); memcpy(&p1_, {part} + {vl}, 64);")
    chunks = n // w

    def chunk_loop(lo: str, hi: str) -> None:
        r.open(f"for (int32_t c = {lo}; c < {hi}; ++c) {{")
        r.emit(f"_Alignas(64) {reg(a)} y_[{w}];")
        r.body(f"for (int32_t w = 0; w < {w}; ++w)", lambda: f"y_[w] = {lane(f'c * {w} + w')};",
               "PYPTO_LANES")  # fmt: skip
        r.emit(f"{vec} y0_, y1_;")
        r.emit(f"memcpy(&y0_, y_, 64); memcpy(&y1_, y_ + {vl}, 64);")
        r.emit(f"{_vcombine(kind, a, 64, 'p0_', 'y0_')} {_vcombine(kind, a, 64, 'p1_', 'y1_')}")
        r.close()

    if masks and chunks:
        r.emit(f"int32_t cf_ = {chunks};")
        for mk in masks:
            r.emit(f"{{ const int32_t k_ = {r.prefix_count(mk)} / {w}; if (k_ < cf_) cf_ = k_; }}")
        with r.assume_true(masks):
            chunk_loop("0", "cf_")
        chunk_loop("cf_", str(chunks))
    else:
        chunk_loop("0", str(chunks))
    if n % w:  # the tail folds into the first partials
        tail = f"{chunks * w} + w"
        r.emit(f"memcpy({part}, &p0_, 64); memcpy({part} + {vl}, &p1_, 64);")
        step = lambda: _combine(kind, a, f"{part}[w]", lane(tail))  # noqa: E731
        r.body(f"for (int32_t w = 0; w < {n % w}; ++w)", step)
        r.emit(f"memcpy(&p0_, {part}, 64); memcpy(&p1_, {part} + {vl}, 64);")
    _tree(r, kind, a, part)
    r.close()
    if extreme is not None:  # rare: +inf (or a NaN) was seen
        r.open(f"if ({part}[0] == {far}) {{")
        r.emit("int nan_ = 0;")
        nan = lambda: f"{{ const {reg(a)} y_ = {x('o', 'm', '0')}; nan_ |= y_ != y_; }}"  # noqa: E731
        r.body(f"for (int32_t m = 0; m < {n}; ++m)", nan)
        r.emit(f"if (nan_) {part}[0] = {literal(math.nan, a)};")
        r.close()
    r.emit(f"{out('o', '0')} = {exprs.rounded(f'{part}[0]', t)};")


def _vcombine(kind: str, a: ScalarType, size: int, acc: str, y: str) -> str:
    """``acc = acc op y`` on vectors of ``size`` bytes (max/min: no NaN is left in them)."""
    suffix = f"{'' if size == 64 else size}_{a.name}"
    if kind in ("sum", "prod"):
        return f"{acc} = {acc} {'+' if kind == 'sum' else '*'} {y};"
    vec, ivec = f"pypto_v{suffix}", f"pypto_vi{suffix}"
    pick = f"({vec})((m_ & ({ivec}){acc}) | (~m_ & ({ivec}){y}))"
    return f"{{ {ivec} m_ = {acc} {'>' if kind == 'max' else '<'} {y}; {acc} = {pick}; }}"


def _tree(r: Emitter, kind: str, a: ScalarType, part: str) -> None:
    """Combine the partials in ``p0_``/``p1_`` into ``part[0]``: lane ``w`` with ``w + half``
    for halves of 64, 32, 16 ... bytes, on vector halves (no branches, no scalar chain)."""
    r.emit(f"{_vcombine(kind, a, 64, 'p0_', 'p1_')}")
    size, name = 64, "p0_"
    while size // a.itemsize > 2:
        half = size // 2
        vec = f"pypto_v{half}_{a.name}"
        lo, hi = f"l{half}_", f"h{half}_"
        r.emit(f"{vec} {lo}, {hi};")
        r.emit(f"memcpy(&{lo}, &{name}, {half}); memcpy(&{hi}, (char *)&{name} + {half}, {half});")
        r.emit(_vcombine(kind, a, half, lo, hi))
        size, name = half, lo
    last = exprs.binary(_COMBINE[kind], a, f"{name}[0]", f"{name}[1]")
    if kind in ("max", "min"):  # no NaN left: the plain select
        last = f"({name}[0] {'>' if kind == 'max' else '<'} {name}[1] ? {name}[0] : {name}[1])"
    r.emit(f"{part}[0] = {last};")


def _arg_extreme(r: Emitter, t: ScalarType, kind: str, n: int, inner: int, x, out) -> None:
    """Index of the first maximum/minimum along the axis; the first NaN wins."""
    cmp = ">" if kind == "argmax" else "<"
    best = r.declare(Value(BlockType(t, (inner,))), "best")
    at = r.declare(Value(BlockType(SCALARS["i32"], (inner,))), "at")
    first = lambda: f"{{ {best}[k] = {x('o', '0', 'k')}; {at}[k] = 0; }}"  # noqa: E731
    r.body(f"for (int32_t k = 0; k < {inner}; ++k)", first)
    nan = f" | ((y_ != y_) & ({best}[k] == {best}[k]))" if t.is_float else ""

    def step() -> str:
        better = f"(y_ {cmp} {best}[k]){nan}"
        return (
            f"{{ const {reg(t)} y_ = {x('o', 'm', 'k')}; const int b_ = {better}; "
            f"{best}[k] = b_ ? y_ : {best}[k]; {at}[k] = b_ ? (int32_t)m : {at}[k]; }}"
        )

    r.open(f"for (int32_t m = 1; m < {n}; ++m) {{")
    r.body(f"for (int32_t k = 0; k < {inner}; ++k)", step)
    r.close()
    r.loop(inner, f"{out('o', 'k')} = {at}[k];", var="k")


@rule(Op.SCAN)
def _scan(r: Emitter, op: Operation) -> None:
    src, v = op.operands[0], op.result
    t = scalar_of(src.type)
    a = _acc_type(t)
    outer, n, inner = _view(src, op.attr("axis"))
    name = r.declare(v)
    first, m = (f"{n - 1}", f"{n - 1} - mm") if op.attr("reverse") else ("0", "mm")
    kind = op.attr("kind")
    acc = r.declare(Value(BlockType(a, (inner,))), "acc")

    def step(mm: str, init: bool) -> str:
        ix = _index(n, inner, "o", mm, "k")
        x = r.lane(src, ix)
        update = f"{acc}[k] = {x};" if init else _combine(kind, a, f"{acc}[k]", x)
        return f"{{ {update} {name}[{ix}] = {exprs.rounded(f'{acc}[k]', t)}; }}"

    r.open(f"for (int32_t o = 0; o < {outer}; ++o) {{")
    r.body(f"for (int32_t k = 0; k < {inner}; ++k)", lambda: step(first, True))
    r.open(f"for (int32_t mm = 1; mm < {n}; ++mm) {{")
    r.emit(f"const int32_t m = {m};")
    r.body(f"for (int32_t k = 0; k < {inner}; ++k)", lambda: step("m", False))
    r.close()
    r.close()
