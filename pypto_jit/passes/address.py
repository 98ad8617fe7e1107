"""Address analysis: pointer provenance and contiguity along the last axis.

``annotate_addresses`` adds two kinds of attrs:

* ``param=k`` on every op producing a pointer value (ADDPTR, SPLAT, BROADCAST, ...)
  and on every memory access (LOAD, STORE, atomics): the tensor parameter the pointer
  derives from. Region ops with pointer results get ``params=(k or -1 per result)``.
  A pointer whose origin is ambiguous (a WHERE between pointers of two parameters, a
  loop that carries a pointer into another tensor) is a ``CompilationError`` at the op.
* ``contig=True`` on an access through a pointer block that is unit-stride along its
  whole last axis, so that ``ptr[row, j] == ptr[row, 0] + j``.

Contiguity is Triton's AxisInfo idea reduced to the last axis. Every integer or
pointer value gets ``Info(contig, const, div)``: runs of ``contig`` consecutive
values (step +1) and runs of ``const`` equal values along the last axis, each run
starting at a multiple of its length, and a power of two ``div`` dividing the first
value of every run. Loop-carried values iterate to a fixpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import gcd

from ..errors import CompilationError
from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, ScalarType, is_ptr, scalar_of, shape

_MAX_DIV = 1 << 30
# Ops that access memory through their first operand: they get ``param`` and ``contig``.
_ACCESSES = frozenset({Op.LOAD, Op.STORE, Op.ATOMIC_RMW, Op.ATOMIC_CAS})
_MAX_ROUNDS = 8


@dataclass(frozen=True)
class Info:
    contig: int = 1
    const: int = 1
    div: int = 1


UNKNOWN = Info()


def _pow2_div(n: int) -> int:
    return _MAX_DIV if n == 0 else min(n & -n, _MAX_DIV)


def _last(v: Value) -> int:
    shp = shape(v.type)
    return shp[-1] if shp else 1


def _meet(a: Info, b: Info) -> Info:
    return Info(gcd(a.contig, b.contig), gcd(a.const, b.const), min(a.div, b.div))


class _Analysis:
    def __init__(self, module: Module, assume: dict[Value, Info] | None = None):
        self.module = module
        self.assume = assume or {}  # facts taken as given for these values (what-if runs)
        self.info: dict[Value, Info] = {}
        self.param: dict[Value, int] = {}
        for k, (p, v) in enumerate(zip(module.params, module.body.args, strict=True)):
            if p.kind == "tensor":
                self.param[v] = k
                self.info[v] = Info(div=_MAX_DIV)  # offset 0
            elif isinstance(p.type, ScalarType) and p.type.is_int:
                self.info[v] = Info(div=16 if p.fact("div16") else 1)

    def get(self, v: Value) -> Info:
        return self.info.get(v, UNKNOWN)

    # -- provenance ---------------------------------------------------------------------
    def origin(self, op: Operation, values: tuple[Value, ...]) -> int | None:
        """The one parameter the pointer ``values`` come from (error if they disagree)."""
        ks = {self.param[v] for v in values if is_ptr(v.type) and v in self.param}
        if len(ks) > 1:
            names = " and ".join(repr(self.module.params[k].name) for k in sorted(ks))
            raise CompilationError(f"pointer may come from {names}: ambiguous origin", op.loc)
        return ks.pop() if ks else None

    def flow(self, op: Operation, dsts: tuple[Value, ...], srcs: tuple[Value, ...]) -> None:
        """Provenance along a region edge: each ``dst`` takes its ``src``'s parameter."""
        for d, s in zip(dsts, srcs, strict=True):
            if not is_ptr(d.type):
                continue
            k = self.origin(op, (s,))
            if d in self.param and k is not None and self.param[d] != k:
                self.origin(op, (s, d))  # raises: the loop mixes two tensors
            if k is not None:
                self.param[d] = k

    # -- walking ------------------------------------------------------------------------
    def block(self, block: Block) -> None:
        for op in block.ops:
            self.operation(op)

    def operation(self, op: Operation) -> None:
        if op.op is Op.FOR:
            self.loop(op, op.operands[3:], op.regions[0].args[1:], (0,))
        elif op.op is Op.WHILE:
            self.loop(op, op.operands, op.regions[0].args, (0, 1))
        elif op.op is Op.IF:
            for region in op.regions:
                self.block(region)
                self.flow(op, op.results, _yielded(region))
            for i, v in enumerate(op.results):
                self.info[v] = _fold_meet([self.get(_yielded(r)[i]) for r in op.regions])
        elif op.results:
            v = op.result if len(op.results) == 1 else None
            if v is not None and is_ptr(v.type):
                k = self.origin(op, op.operands)
                if k is not None:
                    self.param[v] = k
            if v is not None:
                self.info[v] = self.assume.get(v) or _transfer(self, op)
        else:
            self.origin(op, op.operands[:1])

    def loop(self, op, inits, args, regions) -> None:
        """FOR/WHILE: carried facts = meet(init, yielded) until nothing changes."""
        self.flow(op, tuple(args), tuple(inits))
        for a, init in zip(args, inits, strict=True):
            self.info[a] = self.get(init)
        if op.op is Op.FOR:
            self.info[op.regions[0].args[0]] = UNKNOWN
        for _ in range(_MAX_ROUNDS):
            before = [self.get(a) for a in args]
            for i in regions:
                region = op.regions[i]
                if op.op is Op.WHILE and i == 1:
                    fwd = op.regions[0].ops[-1].operands[1:]
                    self.flow(op, region.args, fwd)
                    self.flow(op, op.results, fwd)
                    for a, f in zip(region.args, fwd, strict=True):
                        self.info[a] = self.get(f)
                self.block(region)
            yielded = _yielded(op.regions[regions[-1]])
            self.flow(op, tuple(args), yielded)
            for a, y in zip(args, yielded, strict=True):
                self.info[a] = _meet(self.get(a), self.get(y))
            if [self.get(a) for a in args] == before:
                break
        else:
            for a in args:
                self.info[a] = UNKNOWN
            for i in regions:
                self.block(op.regions[i])
        outs = op.regions[0].ops[-1].operands[1:] if op.op is Op.WHILE else args
        self.flow(op, op.results, tuple(outs))
        for res, src in zip(op.results, outs, strict=True):
            self.info[res] = self.get(src)


def _yielded(region: Block) -> tuple[Value, ...]:
    return region.ops[-1].operands if region.ops else ()


def _fold_meet(infos: list[Info]) -> Info:
    out = infos[0]
    for i in infos[1:]:
        out = _meet(out, i)
    return out


def _transfer(a: _Analysis, op: Operation) -> Info:
    """Facts of ``op``'s single result from its operands' facts."""
    v = op.result
    if not (is_ptr(v.type) or scalar_of(v.type).is_int):
        return UNKNOWN
    last = _last(v)
    ins = [a.get(x) for x in op.operands]
    if op.op is Op.CONST:
        return Info(1, 1, _pow2_div(int(op.attr("value"))))
    if op.op in (Op.DIM, Op.STRIDE):
        p = a.module.params[a.module.body.args.index(op.operands[0])]
        known = (p.shape if op.op is Op.DIM else p.strides)[op.attr("axis")]
        return Info(div=_pow2_div(known)) if known is not None else UNKNOWN
    if op.op is Op.ARANGE:
        return Info(last, 1, _pow2_div(op.attr("start")))
    if op.op is Op.SPLAT:
        return Info(1, last, ins[0].div)
    if op.op in (Op.BROADCAST, Op.EXPAND_DIMS, Op.RESHAPE):
        src, s = op.operands[0], ins[0]
        if not isinstance(src.type, BlockType):
            return Info(1, last, s.div)  # a scalar spread out: constant
        if op.op is Op.RESHAPE:  # runs are aligned, so they survive cut at multiples of gcd
            return Info(gcd(s.contig, last), gcd(s.const, last), s.div)
        if op.op is Op.EXPAND_DIMS and op.attr("axis") == len(src.type.shape):
            return Info(1, 1, s.div)  # new last axis of size 1
        if _last(src) != last:
            return Info(1, last, s.div)  # broadcast along the last axis: constant
        return s
    if op.op is Op.CAST:
        src_t = scalar_of(op.operands[0].type)
        if is_ptr(v.type) or (src_t.is_int and src_t.bits <= scalar_of(v.type).bits):
            return ins[0]
        return Info(1, ins[0].const, 1)
    if op.op in (Op.ADD, Op.ADDPTR):
        x, y = ins
        contig = max(gcd(x.contig, y.const), gcd(x.const, y.contig))
        return Info(contig, gcd(x.const, y.const), min(x.div, y.div))
    if op.op is Op.SUB:
        x, y = ins
        return Info(gcd(x.contig, y.const), gcd(x.const, y.const), min(x.div, y.div))
    if op.op is Op.MUL:
        x, y = ins
        return Info(1, gcd(x.const, y.const), min(x.div * y.div, _MAX_DIV))
    if op.op in (Op.MOD, Op.IDIV):  # equal operands give equal results; nothing more is
        x, y = ins  # sound without knowing signs (truncating division), see passes.nowrap
        return Info(1, gcd(x.const, y.const), 1)
    if op.op is Op.WHERE:
        c, x, y = ins
        return Info(gcd(c.const, gcd(x.contig, y.contig)), gcd(c.const, gcd(x.const, y.const)),
                    min(x.div, y.div))  # fmt: skip
    return UNKNOWN


def _annotate_block(a: _Analysis, block: Block) -> Block:
    return replace(block, ops=tuple(_annotate_op(a, op) for op in block.ops))


def _annotate_op(a: _Analysis, op: Operation) -> Operation:
    if op.regions:
        op = replace(op, regions=tuple(_annotate_block(a, r) for r in op.regions))
        if any(is_ptr(v.type) for v in op.results):
            op = op.with_attrs(params=tuple(a.param.get(v, -1) for v in op.results))
        return op
    if op.op in _ACCESSES:
        ptr = op.operands[0]
        k = a.param.get(ptr)
        if k is None:
            raise CompilationError(f"{op.op} through a pointer of unknown origin", op.loc)
        last = _last(ptr)
        contig = isinstance(ptr.type, BlockType) and last > 1 and a.get(ptr).contig == last
        return op.with_attrs(param=k, contig=True if contig else None)
    if len(op.results) == 1 and op.result in a.param:
        return op.with_attrs(param=a.param[op.result])
    return op


def access_param(op: Operation) -> int:
    """The tensor parameter a LOAD, STORE or atomic accesses (the ``param`` attr that
    ``annotate_addresses`` puts on it)."""
    k = op.attr("param")
    if k is None:
        raise ValueError(f"{op.op} has no 'param' attr: run passes.address.annotate_addresses")
    return k


def annotate_addresses(m: Module) -> Module:
    """``m`` with ``param``/``params`` and ``contig`` attrs on its pointer ops."""
    a = _Analysis(m)
    a.block(m.body)
    return replace(m, body=_annotate_block(a, m.body))


def analyze(m: Module, assume: dict[Value, Info] | None = None) -> dict[Value, Info]:
    """Facts for every value of ``m`` (for tests and later passes), taking the facts in
    ``assume`` as given for those values."""
    a = _Analysis(m, assume)
    a.block(m.body)
    return a.info


def contiguous_accesses(m: Module, assume: dict[Value, Info] | None = None) -> int:
    """How many block accesses of ``m`` get ``contig`` (with ``assume`` as in ``analyze``)."""
    info = analyze(m, assume)
    count = 0
    for op in m.walk():
        if op.op in _ACCESSES and isinstance(op.operands[0].type, BlockType):
            last = _last(op.operands[0])
            count += last > 1 and info.get(op.operands[0], UNKNOWN).contig == last
    return count
