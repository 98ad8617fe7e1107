"""C rules for ADDPTR, LOAD and STORE.

A pointer is an int64 element offset from the base ``p<k>`` of tensor parameter ``k``
(the ``param`` attr that ``passes.address`` puts on every LOAD/STORE). Pointer blocks
from ADDPTR are virtual (see ``emitter``): their lanes are recomputed where read. A
block access whose pointers are unit-stride along the last axis (``contig`` attr)
renders as one unit-stride loop per row, ``q = p<k> + off(row * C); v[j] = q[j]``, which
gcc turns into (masked) vector loads and stores; other accesses are gathers/scatters
``p<k>[off(i)]``. In sim mode every active lane is checked against the tensor's extent
first; a failure fills ``ctx->err`` and returns 1 from the program.
"""

from __future__ import annotations

from ..ir.nodes import Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, scalar_of
from ..passes.address import access_param
from .ctype import mem
from .emitter import Emitter, Ix, Lanes, rule
from .exprs import load_convert, store_convert
from .vector import chunk_emitter, stream_chunks


@rule(Op.ADDPTR)
def _addptr(r: Emitter, op: Operation) -> None:
    r.elementwise(op, lambda p, off: f"({p} + (int64_t)({off}))", cheap=True)


def check_access(
    r: Emitter, op: Operation, k: int, ptr: Value, mask: Value | None, what: str
) -> None:
    """Sim mode: return an OOB error from the program if an active lane is out of bounds."""
    span = f"p{k}_span"

    def bad(ix: str) -> str:
        active = f"{r.lane(mask, ix)} && " if mask is not None else ""
        return f"{active}(uint64_t)({r.lane(ptr, ix)} - p{k}_lo) >= (uint64_t){span}"

    fail = r.fail(op, "PYPTO_ERR_OOB", k, r.lane(ptr, "i"), span, what)
    if not isinstance(ptr.type, BlockType):
        r.emit(f"if ({bad('i')}) {fail}")
        return
    # The first loop has no early exit, so it vectorizes; the second runs only on failure.
    n = ptr.type.numel
    r.open("{ int bad = 0;")
    r.loop(n, f"bad |= {bad('i')};")
    r.emit(f"if (bad) for (int32_t i = 0; i < {n}; ++i) if ({bad('i')}) {fail}")
    r.close()


def _rows(
    r: Emitter, ptr: Value, row_ptr: str, build, prefetch: bool = False, stored: Value | None = None
) -> None:
    """One loop per row of a contiguous access: ``row_ptr`` (a declaration of ``q``) is set
    to the row's first address, then ``build(ix)`` is the body for lane ``ix``, column ``j``
    (after a write prefetch of the row's lines, with ``prefetch``; after the vector form of
    the row's chunks of 16 lanes, where a STORE of the ``stored`` value pays for it)."""
    t = ptr.type
    cols, rows = t.shape[-1], t.numel // t.shape[-1]
    if rows == 1:
        r.open(f"{{ {row_ptr}{r.lane(ptr, Ix('0', '0', '0', cols))};")
        ix = Ix("j", "0", "j", cols)
    else:
        r.open(f"for (int32_t rw = 0; rw < {rows}; ++rw) {{")
        r.emit(f"{row_ptr}{r.lane(ptr, Ix(f'rw * {cols}', f'rw * {cols}', '0', cols))};")
        ix = Ix(f"rw * {cols} + j", f"rw * {cols}", "j", cols)
    if prefetch:
        r.prefetch_lines("q", ptr, None)
    chunks = chunk_emitter(r, stored, ix.row, cols) if stored is not None else None
    start = chunks(str(cols)) if chunks is not None else "0"
    r.body(f"for (int32_t j = {start}; j < {cols}; ++j)", lambda: build(ix))
    r.close()


def _load_lanes(r: Emitter, op: Operation) -> Lanes:
    """Lanes of a block LOAD read where they are used (a fused or pending load)."""
    ptr, mask, other = (list(op.operands) + [None, None])[:3]
    k, t = access_param(op), scalar_of(ptr.type)
    cols = ptr.type.shape[-1] if op.attr("contig") else 0

    def at(ix: str) -> str:
        if cols and isinstance(ix, Ix) and ix.cols == cols:  # base(row) + col: unit stride
            addr = f"{r.lane(ptr, ix.row)} + ({ix.col})"
        else:
            addr = r.lane(ptr, ix)
        x = load_convert(t, f"p{k}[{addr}]")
        if mask is None:
            return x
        fallback = r.lane(other, ix) if other is not None else "0"
        return f"({r.lane(mask, ix)} ? {x} : {fallback})"

    reads = frozenset().union(*(r.reads(x) for x in (ptr, mask, other) if x is not None))
    return Lanes(at, reads, frozenset({cols}) if cols else frozenset())


@rule(Op.LOAD)
def _load(r: Emitter, op: Operation) -> None:
    ptr, mask, other = (list(op.operands) + [None, None])[:3]
    k, t, v = access_param(op), scalar_of(ptr.type), op.result
    if r.mode == "sim":
        check_access(r, op, k, ptr, mask, "load")
    if not isinstance(v.type, BlockType):
        x = load_convert(t, f"p{k}[{r.lane(ptr)}]")
        if mask is not None:
            x = f"({r.name(mask)} ? {x} : {r.name(other) if other is not None else 0})"
        r.scalar(v, x)
        return
    fuse = op.attr("fuse")
    if fuse == "inline":
        r.bind_fused(v, _load_lanes(r, op))
        return
    if fuse == "first":
        r.bind_pending(v, _load_lanes(r, op))
        return
    name = r.declare(v)

    def value(x: str, ix: str) -> str:
        if mask is None:
            return x
        fallback = r.lane(other, ix) if other is not None else "0"
        return f"({r.lane(mask, ix)} ? {x} : {fallback})"

    if op.attr("contig"):
        row = f"const {mem(t)} *q = p{k} + "
        _rows(r, ptr, row, lambda ix: f"{name}[{ix}] = {value(load_convert(t, 'q[j]'), ix)};")
    else:
        n = v.type.numel

        def gather() -> str:
            return f"{name}[i] = {value(load_convert(t, f'p{k}[{r.lane(ptr)}]'), 'i')};"

        r.body(f"for (int32_t i = 0; i < {n}; ++i)", gather)


@rule(Op.STORE)
def _store(r: Emitter, op: Operation) -> None:
    ptr, val, mask = (list(op.operands) + [None])[:3]
    k, t = access_param(op), scalar_of(ptr.type)
    if r.mode == "sim":
        check_access(r, op, k, ptr, mask, "store")
    if not isinstance(ptr.type, BlockType):
        guard = f"if ({r.name(mask)}) " if mask is not None else ""
        r.emit(f"{guard}p{k}[{r.lane(ptr)}] = {store_convert(t, r.name(val))};")
        return

    def stmt(target: str, ix: str) -> str:
        x = store_convert(t, r.lane(val, ix))
        guard = f"if ({r.lane(mask, ix)}) " if mask is not None else ""
        return f"{guard}{target} = {x};"

    prefetch = op.attr("prefetch") is True and r.mode == "cpu"  # "early": see Emitter.block
    if op.attr("stream") and r.mode == "cpu":
        _stream(r, op, stmt)
    elif op.attr("prefix") and mask not in r.known_true:
        _prefix_row(r, op, f"{mem(t)} *q = p{k} + ", lambda ix: stmt(f"q[{ix.col}]", ix), prefetch)
    elif op.attr("contig"):
        stored = val if mask is None or mask in r.known_true else None
        row = f"{mem(t)} *q = p{k} + "
        _rows(r, ptr, row, lambda ix: stmt(f"q[{ix.col}]", ix), prefetch, stored)
    else:
        n = ptr.type.numel
        r.body(f"for (int32_t i = 0; i < {n}; ++i)", lambda: stmt(f"p{k}[{r.lane(ptr)}]", "i"))


def _prefix_row(r: Emitter, op: Operation, row_ptr: str, build, prefetch: bool) -> None:
    """A one-row STORE masked by a prefix mask (``passes.prefix_mask``): ``prefix_loops``,
    after a write prefetch of the surely active lanes' lines, with ``prefetch``."""
    ptr, val, mask = op.operands
    cols = ptr.type.shape[0]
    r.open(f"{{ {row_ptr}{r.lane(ptr, Ix('0', '0', '0', cols))};")
    if prefetch:
        r.prefetch_lines("q", ptr, mask)
    r.prefix_loops("j", cols, [mask], build, chunk_emitter(r, val, "0", cols))
    r.close()


# Lanes per chunk of a streamed store: 256 bytes, four 64-byte lines.
_CHUNK_BYTES = 256


def _stream(r: Emitter, op: Operation, stmt) -> None:
    """A one-row contiguous STORE with non-temporal stores (``passes.streaming``): lanes up to
    the first 64-byte boundary; then, where the value has a vector form and every lane is
    active, chunks of 16 lanes computed in registers and streamed (``vector.py``); then
    chunks of 256 bytes computed into ``y_`` and streamed when all their lanes are active
    (else stored lane by lane); then the tail."""
    ptr, val, mask = (list(op.operands) + [None])[:3]
    k, t = access_param(op), scalar_of(ptr.type)
    size, n = t.itemsize, ptr.type.numel
    width = _CHUNK_BYTES // size
    r.open(f"{{ {mem(t)} *q = p{k} + {r.lane(ptr, Ix('0', '0', '0', n))};")
    r.emit(f"const int32_t h_ = (int32_t)(((0u - (uintptr_t)q) & 63u) / {size}u);")
    r.emit(f"const int32_t s_ = h_ < {n} ? h_ : {n};")

    def lane(j: str) -> Ix:
        return Ix(j, "0", j, n)

    r.body("for (int32_t j = 0; j < s_; ++j)", lambda: stmt("q[j]", lane("j")))
    active = mask is None or mask in r.known_true
    start = stream_chunks(r, val, n, "s_") if active and t.name == "f32" else "s_"
    r.emit(f"const int32_t e_ = {start} + ({n} - {start}) / {width} * {width};")
    r.open(f"for (int32_t c = {start}; c < e_; c += {width}) {{")
    r.emit(f"_Alignas(64) {mem(t)} y_[{width}];")
    r.emit("int all_ = 1;")

    def chunk() -> str:
        ix = lane("c + w")
        active = f"all_ &= {r.lane(mask, ix)}; " if mask is not None else ""
        return f"{{ {active}y_[w] = {store_convert(t, r.lane(val, ix))}; }}"

    r.body(f"for (int32_t w = 0; w < {width}; ++w)", chunk, "PYPTO_LANES")
    r.emit("if (all_) pypto_stream256(q + c, y_);")
    if mask is not None:
        r.body(
            f"else for (int32_t w = 0; w < {width}; ++w)",
            lambda: f"if ({r.lane(mask, lane('c + w'))}) q[c + w] = y_[w];",
            "",
        )
    r.close()
    r.body(f"for (int32_t j = e_; j < {n}; ++j)", lambda: stmt("q[j]", lane("j")))
    r.close()
