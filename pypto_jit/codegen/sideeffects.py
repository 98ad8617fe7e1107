"""C rules for atomics, DEVICE_ASSERT and PRINT.

Atomics are one compare-and-swap loop per active lane on the element's memory type
(gcc's generic ``__atomic`` builtins work for every width, floats included: the
comparison is on bits), acquire-release like Triton's default. They return the old
values (0 in masked-off lanes). DEVICE_ASSERT is live in sim mode (and in cpu mode
when rendering with ``debug``): a failing lane returns a PYPTO_ERR_ASSERT record.
PRINT writes one line per lane to stdout.
"""

from __future__ import annotations

from ..ir.nodes import Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, PtrType, scalar_of
from ..passes.address import access_param
from . import exprs
from .ctype import c_string, mem
from .emitter import Emitter, rule
from .memory import check_access

_KIND = {
    "add": Op.ADD, "max": Op.MAXIMUM, "min": Op.MINIMUM, "and": Op.AND, "or": Op.OR,
    "xor": Op.XOR,
}  # fmt: skip


def _each_lane(r: Emitter, v: Value, body: list[str], mask: Value | None) -> None:
    """Run ``body`` (C lines using lane index ``i``) for every active lane of ``v``."""
    block = isinstance(v.type, BlockType)
    if block:
        r.open(f"for (int32_t i = 0; i < {v.type.numel}; ++i) {{")
    guard = f"if ({r.lane(mask)}) " if mask is not None else ""
    r.open(f"{guard}{{")
    for line in body:
        r.emit(line)
    r.close()
    if block:
        r.close()


def _result(r: Emitter, v: Value) -> str:
    """Storage for an atomic's old values, zeroed (masked-off lanes stay 0)."""
    name = r.declare(v)
    if isinstance(v.type, BlockType):
        r.emit(f"memset({name}, 0, sizeof({name}));")
        return f"{name}[i]"
    r.emit(f"{name} = 0;")
    return name


@rule(Op.ATOMIC_RMW)
def _atomic_rmw(r: Emitter, op: Operation) -> None:
    ptr, val, mask = (list(op.operands) + [None])[:3]
    k, t = access_param(op), scalar_of(ptr.type)
    if r.mode == "sim":
        check_access(r, op, k, ptr, mask, "atomic")
    old = _result(r, op.result)
    kind = op.attr("kind")
    new = exprs.load_convert(t, "o_")
    new = r.lane(val) if kind == "xchg" else exprs.binary(_KIND[kind], t, new, r.lane(val))
    m = mem(t)
    _each_lane(r, ptr, [
        f"{m} *a_ = &p{k}[{r.lane(ptr)}];",
        f"{m} o_, n_;",
        "__atomic_load(a_, &o_, __ATOMIC_RELAXED);",
        f"do {{ n_ = {exprs.store_convert(t, new)}; }} while (!__atomic_compare_exchange("
        "a_, &o_, &n_, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));",
        f"{old} = {exprs.load_convert(t, 'o_')};",
    ], mask)  # fmt: skip


@rule(Op.ATOMIC_CAS)
def _atomic_cas(r: Emitter, op: Operation) -> None:
    ptr, cmp, val = op.operands
    k, t = access_param(op), scalar_of(ptr.type)
    if r.mode == "sim":
        check_access(r, op, k, ptr, None, "atomic")
    old = _result(r, op.result)
    m = mem(t)
    _each_lane(r, ptr, [
        f"{m} e_ = {exprs.store_convert(t, r.lane(cmp))};",
        f"{m} d_ = {exprs.store_convert(t, r.lane(val))};",
        f"__atomic_compare_exchange(&p{k}[{r.lane(ptr)}], &e_, &d_, 0, __ATOMIC_ACQ_REL, "
        "__ATOMIC_ACQUIRE);",
        f"{old} = {exprs.load_convert(t, 'e_')};",
    ], None)  # fmt: skip


@rule(Op.DEVICE_ASSERT)
def _device_assert(r: Emitter, op: Operation) -> None:
    if r.mode != "sim" and not r.debug:
        return  # checks are the simulator's job; the cpu backend runs at full speed
    cond = op.operands[0]
    msg = op.attr("msg") or "device_assert failed"
    fail = r.fail(op, "PYPTO_ERR_ASSERT", -1, "i" if isinstance(cond.type, BlockType) else "0",
                  "0", msg)  # fmt: skip
    if isinstance(cond.type, BlockType):
        r.loop(cond.type.numel, f"if (!{r.lane(cond)}) {fail}")
    else:
        r.emit(f"if (!{r.name(cond)}) {fail}")


def _format(v: Value, ix: str, r: Emitter) -> tuple[str, str]:
    """printf conversion and argument for lane ``ix`` of ``v``."""
    e = v.type.elem if isinstance(v.type, BlockType) else v.type
    x = r.lane(v, ix)
    if isinstance(e, PtrType):
        return "%lld", f"(long long)({x})"
    if e.is_float:
        return ("%.17g" if e.name == "f64" else "%.9g"), f"(double)({x})"
    if e.is_unsigned or e.is_bool:
        return "%llu", f"(unsigned long long)({x})"
    return "%lld", f"(long long)({x})"


@rule(Op.PRINT)
def _print(r: Emitter, op: Operation) -> None:
    prefix = op.attr("prefix") or ""
    head = "pid (%lld, %lld, %lld) " + prefix.replace("%", "%%")
    for v in op.operands:
        block = isinstance(v.type, BlockType)
        conv, arg = _format(v, "i", r)
        text = c_string(head + ("idx (%lld) " if block else "") + conv + "\n")
        args = "(long long)pid0, (long long)pid1, (long long)pid2" + (
            ", (long long)i" if block else ""
        )
        stmt = f"printf({text}, {args}, {arg});"
        if block:
            r.loop(v.type.numel, stmt)
        else:
            r.emit(stmt)
    r.emit("fflush(stdout);")
