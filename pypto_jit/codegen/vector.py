"""Vector form of full chunks of 16 f32 lanes (cpu mode): of a contiguous store's value,
and of an EXP block's argument.

gcc vectorizes the scalar row loops of ``memory.py`` itself, but a lane that calls erf
reaches the table-of-polynomials code only through its SIMD clone (``prelude.py``): a
call per vector that cannot inline, reloads the ten table registers and spills what the
loop keeps live. When the stored value computes such an op, the row's chunks of 16 lanes
whose masks are all true are written here in gcc's vector extension instead, where the
prelude's 16-lane function inlines; the scalar loop then starts where the chunks end.
An f32 EXP block is a loop of its own over its array (``pypto_expf_n``); the chunks of its
argument are computed here and exponentiated in the same pass, instead of being written
to the array by one loop and read back by the next.

Every rule is the lane rule of ``exprs.py`` on 16 lanes at once: the same IEEE operations
in the same order (no contraction: the prelude turns it off), so results are bit for bit
those of the scalar loop -- and of the sim backend, which never takes this path. A value
without a rule here (another type, a masked or strided load, a pending array ...) keeps
the whole store on the scalar loop.
"""

from __future__ import annotations

from ..ir.nodes import Value
from ..ir.ops import Op
from ..ir.types import BlockType, scalar_of
from ..passes.address import access_param
from .emitter import Emitter, Ix, LaneFn

LANES = 16
_VEC = "pypto_v_f32"
# Ops whose scalar lanes reach a SIMD clone: a store computing one pays for the vector form.
_PAYS = frozenset({Op.ERF})
_ARITH = {Op.ADD: "+", Op.SUB: "-", Op.MUL: "*", Op.DIV: "/"}
_UNARY = {Op.NEG: "(-{})", Op.ERF: "pypto_erff_v16({})"}
# Ops whose lane i is lane i of their operand (or a scalar operand, splat).
_SAME_LANES = frozenset({Op.SPLAT, Op.BROADCAST, Op.RESHAPE, Op.EXPAND_DIMS})
# The vector rules need the ISA of the prelude's vector functions.
_GUARD = "#if defined(__AVX512F__)"


def _is_f32(v: Value) -> bool:
    return scalar_of(v.type).name == "f32"


class _Chunk:
    """Lanes ``row + col .. row + col + 15`` of values in vector form: each value becomes a
    ``const`` vector local (``lets``), computed once per chunk."""

    def __init__(self, r: Emitter, row: str, col: str, cols: int):
        self.r, self.row, self.col, self.cols = r, row, col, cols
        self.lets: list[str] = []
        self.memo: dict[Value, str] = {}
        self.pays = False

    def value(self, v: Value) -> str | None:
        """The local holding ``v``'s chunk, or None where ``v`` has no vector form."""
        if v not in self.memo:
            same = self._same_lanes(v)
            expr = self.value(same) if same is not None else self._expr(v)
            if expr is None:
                return None
            if same is None:
                name = f"u{len(self.lets)}"  # locals of the chunk loop's body
                self.lets.append(f"const {_VEC} {name} = {expr};")
                expr = name
            self.memo[v] = expr
        return self.memo[v]

    def _same_lanes(self, v: Value) -> Value | None:
        """The operand whose lanes ``v``'s are (splats, reshapes ...), if any."""
        op = self.r.defs.get(v)
        if op is None or op.op not in _SAME_LANES or not self.r.is_virtual(v):
            return None
        src = op.operands[0]
        if isinstance(src.type, BlockType) and src.type.numel != v.type.numel:
            return None
        return src

    def _expr(self, v: Value) -> str | None:
        r = self.r
        if not _is_f32(v) or r.is_pending(v):
            return None
        if not isinstance(v.type, BlockType):
            return f"pypto_vsplat_f32({r.name(v)})"
        if not r.is_virtual(v):  # a stored array: its lanes in row-major order
            return f"pypto_vload_f32({r.name(v)} + {self.row} + {self.col})"
        op = r.defs.get(v)
        if op is None:
            return None
        args = op.operands
        if op.op is Op.LOAD:
            return self._load(op)
        rule = _ARITH.get(op.op) or _UNARY.get(op.op)
        if rule is None or any(self.value(a) is None for a in args):
            return None
        self.pays |= op.op in _PAYS
        names = [self.memo[a] for a in args]
        return f"({names[0]} {rule} {names[1]})" if op.op in _ARITH else rule.format(*names)

    def _load(self, op) -> str | None:
        """A fused contiguous load whose mask (if any) is known true in these lanes."""
        ptr, mask = (list(op.operands) + [None])[:2]
        if not op.attr("contig") or ptr.type.shape[-1] != self.cols:
            return None
        if mask is not None and mask not in self.r.known_true:
            return None
        base = self.r.lane(ptr, self.row)
        return f"pypto_vload_f32(p{access_param(op)} + {base} + {self.col})"


def full_chunks(r: Emitter, value: Value, row: str, cols: int, end: str) -> str:
    """Emit the loop storing ``value``'s chunks of 16 lanes to ``q[c_ ..]`` for ``c_`` up to
    ``end`` (lanes whose masks are known true), when the vector form pays; return the C
    expression where the scalar loop starts (``c_``, or ``0`` when nothing is emitted)."""
    chunk = _Chunk(r, row, "c_", cols)
    expr = chunk.value(value)
    if expr is None or not chunk.pays:
        return "0"
    _chunk_loop(r, chunk, "0", end, f"pypto_vstore_f32(q + c_, {expr});")
    return "c_"


def stream_chunks(r: Emitter, value: Value, cols: int, start: str) -> str:
    """Emit the loop streaming ``value``'s chunks of 16 lanes (a row of ``cols``, all lanes
    active) to ``q[c_ ..]`` from ``start``, a 64-byte boundary, while whole chunks remain:
    computed in registers and streamed, not staged through memory (``memory._stream``).
    Return where the rest of the row starts (``start`` when nothing is emitted)."""
    if r.mode != "cpu" or not _is_f32(value):
        return start
    chunk = _Chunk(r, "0", "c_", cols)
    expr = chunk.value(value)
    if expr is None:
        return start
    _chunk_loop(r, chunk, start, str(cols), f"pypto_vstream_f32(q + c_, {expr});")
    return "c_"


def _chunk_loop(r: Emitter, chunk: _Chunk, start: str, end: str, stmt: str) -> None:
    """``int32_t c_ = start`` and, on AVX-512 hosts, the loop over every whole chunk before
    ``end``: ``chunk``'s locals, then ``stmt``, which writes its value."""
    r.emit(f"int32_t c_ = {start};")
    r.emit(_GUARD)
    r.open(f"for (; c_ + {LANES} <= {end}; c_ += {LANES}) {{")
    for line in chunk.lets:
        r.emit(line)
    r.emit(stmt)
    r.close()
    r.emit("#endif")


def chunk_emitter(r: Emitter, value: Value, row: str, cols: int) -> LaneFn | None:
    """``full_chunks`` for a store of ``value`` in cpu mode, where it may apply."""
    if r.mode != "cpu" or not _is_f32(value):
        return None
    return lambda end: full_chunks(r, value, row, cols, end)


def exp_rows(r: Emitter, x: Value, name: str) -> bool:
    """Fill ``name`` with exp of the f32 block ``x`` row by row: each row's chunks of 16
    lanes in vector form, ``x``'s lanes and their exp in one pass, then the rest of the row
    through its array and ``pypto_expf_n``. False (nothing emitted) where ``x`` has no
    vector form or rows are shorter than a chunk."""
    t = x.type
    cols = t.shape[-1]
    rows = t.numel // cols
    if r.mode != "cpu" or not _is_f32(x) or cols < LANES:
        return False
    row = "0" if rows == 1 else f"rw * {cols}"
    chunk = _Chunk(r, row, "c_", cols)
    expr = chunk.value(x)
    if expr is None:
        return False
    r.open("{" if rows == 1 else f"for (int32_t rw = 0; rw < {rows}; ++rw) {{")
    stmt = f"pypto_vstore_f32({name} + {row} + c_, pypto_expf_v16({expr}));"
    _chunk_loop(r, chunk, "0", str(cols), stmt)
    ix = Ix(f"{row} + j", row, "j", cols)
    r.body(f"for (int32_t j = c_; j < {cols}; ++j)", lambda: f"{name}[{ix}] = {r.lane(x, ix)};")
    r.emit(f"pypto_expf_n({name} + {row} + c_, {cols} - c_);")
    r.close()
    return True
