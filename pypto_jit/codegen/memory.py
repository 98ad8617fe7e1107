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
from .ctype import mem
from .emitter import Emitter, rule
from .exprs import load_convert, store_convert


@rule(Op.ADDPTR)
def _addptr(r: Emitter, op: Operation) -> None:
    r.elementwise(op, lambda p, off: f"({p} + (int64_t)({off}))", cheap=True)


def param_of(op: Operation) -> int:
    k = op.attr("param")
    if k is None:
        raise ValueError(f"{op.op} has no 'param' attr: run passes.address.annotate_addresses")
    return k


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
    r.emit(f"if (bad) for (int64_t i = 0; i < {n}; ++i) if ({bad('i')}) {fail}")
    r.close()


def _rows(r: Emitter, ptr: Value, line: str, row_ptr: str) -> None:
    """Emit ``line`` (in terms of lane ``@`` and row pointer ``q``) once per row."""
    t = ptr.type
    cols, rows = t.shape[-1], t.numel // t.shape[-1]
    if rows == 1:
        r.open(f"{{ {row_ptr}{r.lane(ptr, '0')};")
        r.loop(cols, line.replace("@", "j"), ivdep=True, var="j")
    else:
        r.open(f"for (int64_t rw = 0; rw < {rows}; ++rw) {{")
        r.emit(f"{row_ptr}{r.lane(ptr, f'rw * {cols}')};")
        r.loop(cols, line.replace("@", f"rw * {cols} + j"), ivdep=True, var="j")
    r.close()


@rule(Op.LOAD)
def _load(r: Emitter, op: Operation) -> None:
    ptr, mask, other = (list(op.operands) + [None, None])[:3]
    k, t, v = param_of(op), scalar_of(ptr.type), op.result
    if r.mode == "sim":
        check_access(r, op, k, ptr, mask, "load")
    if not isinstance(v.type, BlockType):
        x = load_convert(t, f"p{k}[{r.lane(ptr)}]")
        if mask is not None:
            x = f"({r.name(mask)} ? {x} : {r.name(other) if other is not None else 0})"
        r.scalar(v, x)
        return
    name = r.declare(v)
    contig = bool(op.attr("contig"))
    lane = "@" if contig else "i"

    def value(x: str) -> str:
        if mask is None:
            return x
        fallback = r.lane(other, lane) if other is not None else "0"
        return f"({r.lane(mask, lane)} ? {x} : {fallback})"

    if contig:
        _rows(
            r, ptr, f"{name}[@] = {value(load_convert(t, 'q[j]'))};", f"const {mem(t)} *q = p{k} + "
        )
    else:
        x = load_convert(t, f"p{k}[{r.lane(ptr)}]")
        r.loop(v.type.numel, f"{name}[i] = {value(x)};", ivdep=True)


@rule(Op.STORE)
def _store(r: Emitter, op: Operation) -> None:
    ptr, val, mask = (list(op.operands) + [None])[:3]
    k, t = param_of(op), scalar_of(ptr.type)
    if r.mode == "sim":
        check_access(r, op, k, ptr, mask, "store")
    if not isinstance(ptr.type, BlockType):
        guard = f"if ({r.name(mask)}) " if mask is not None else ""
        r.emit(f"{guard}p{k}[{r.lane(ptr)}] = {store_convert(t, r.name(val))};")
        return
    contig = bool(op.attr("contig"))
    lane = "@" if contig else "i"
    guard = f"if ({r.lane(mask, lane)}) " if mask is not None else ""
    x = store_convert(t, r.lane(val, lane))
    if contig:
        _rows(r, ptr, f"{guard}q[j] = {x};", f"{mem(t)} *q = p{k} + ")
    else:
        r.loop(ptr.type.numel, f"{guard}p{k}[{r.lane(ptr)}] = {x};", ivdep=True)
