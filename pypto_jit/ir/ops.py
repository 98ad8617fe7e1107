"""The closed set of IR operations, grouped into sets.

Operand conventions (``operands`` positions; optional ones may be absent):

=================  =========================================  ==========================
op                 operands                                   attrs
=================  =========================================  ==========================
CONST              --                                         value (int/float/bool)
PROGRAM_ID         --                                         axis
NUM_PROGRAMS       --                                         axis
DIM / STRIDE       tensor parameter (block arg of the func)   axis
ARANGE             --                                         start, end
SPLAT              scalar                                     --  (result: block)
BROADCAST          block                                      --  (result shape; numpy rules)
RESHAPE            block                                      --  (result shape)
EXPAND_DIMS        block or scalar                            axis
CAST               value                                      --  (result type)
ADDPTR             ptr or ptr block, int offset(s)            --
LOAD               ptr(s) [, mask [, other]]                  --
STORE              ptr(s), value [, mask]                     --
unary/binary/cmp   same-shaped operands (frontend broadcasts) --
WHERE              cond, a, b (same shape)                    --
FMA                a, b, c (same float type)                  --  a * b + c, rounded once
BITCAST            value                                      --  (result type, same width)
PERMUTE            block                                      order (a permutation)
REDUCE             block                                      kind, axis, keep_dims
SCAN               block                                      kind, axis, reverse
DOT                a [M,K], b [K,N], acc [M,N]                --  (result: acc's type)
ATOMIC_RMW         ptr(s), value [, mask]                     kind  (returns old values)
ATOMIC_CAS         ptr(s), cmp, value                         --  (returns old values)
DEVICE_ASSERT      cond                                       msg
PRINT              *values                                    prefix
FOR                lower, upper, step, *inits                 --  region(iv, *carried)
IF                 cond                                       --  regions (then, else)
WHILE              *inits                                     --  regions (before, after)
YIELD              *values                                    --  terminates a region
CONDITION          cond, *values                              --  terminates WHILE.before
=================  =========================================  ==========================

REDUCE kinds: sum, prod, max, min (NaN-propagating for floats), argmax, argmin
(i32 index of the first extreme; NaN counts as the extreme), and, or, xor. The
result drops ``axis`` (or keeps it as 1 with ``keep_dims``); a block reduced to
no axes is a scalar. SCAN kinds: sum, prod. ATOMIC_RMW kinds: add, max, min,
and, or, xor, xchg. DOT multiplies in the operands' type widened to the
accumulator's (f16/bf16 products are exact in f32) and accumulates in the
accumulator's type.

Memory ops may carry analysis attrs added by passes (e.g. ``param``: the index
of the tensor parameter a pointer comes from).
"""

from __future__ import annotations

from enum import Enum, auto


class Op(Enum):
    # constants and program geometry
    CONST = auto()
    PROGRAM_ID = auto()
    NUM_PROGRAMS = auto()
    DIM = auto()
    STRIDE = auto()
    # block structure
    ARANGE = auto()
    SPLAT = auto()
    BROADCAST = auto()
    RESHAPE = auto()
    EXPAND_DIMS = auto()
    CAST = auto()
    # memory
    ADDPTR = auto()
    LOAD = auto()
    STORE = auto()
    # elementwise unary
    NEG = auto()
    NOT = auto()
    ABS = auto()
    EXP = auto()
    EXP2 = auto()
    LOG = auto()
    LOG2 = auto()
    SQRT = auto()
    RSQRT = auto()
    SIN = auto()
    COS = auto()
    FLOOR = auto()
    CEIL = auto()
    ERF = auto()
    TANH = auto()
    # elementwise binary
    ADD = auto()
    SUB = auto()
    MUL = auto()
    DIV = auto()  # true division on floats
    IDIV = auto()  # integer division, truncating (C semantics, as Triton)
    MOD = auto()  # remainder with the sign of the dividend (C fmod / %)
    AND = auto()
    OR = auto()
    XOR = auto()
    SHL = auto()
    SHR = auto()
    MAXIMUM = auto()
    MINIMUM = auto()
    UMULHI = auto()  # high half of the double-width product of the operands as unsigned
    # comparisons -> i1
    LT = auto()
    LE = auto()
    GT = auto()
    GE = auto()
    EQ = auto()
    NE = auto()
    # ternary
    WHERE = auto()
    FMA = auto()
    BITCAST = auto()
    # block structure and whole-block computations
    PERMUTE = auto()
    REDUCE = auto()
    SCAN = auto()
    DOT = auto()
    # atomics and debugging
    ATOMIC_RMW = auto()
    ATOMIC_CAS = auto()
    DEVICE_ASSERT = auto()
    PRINT = auto()
    # structured control flow
    FOR = auto()
    IF = auto()
    WHILE = auto()
    YIELD = auto()
    CONDITION = auto()

    def __str__(self) -> str:
        return self.name.lower()


UNARY = frozenset(
    {Op.NEG, Op.NOT, Op.ABS, Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.SQRT, Op.RSQRT}
    | {Op.SIN, Op.COS, Op.FLOOR, Op.CEIL, Op.ERF, Op.TANH}
)
FLOAT_UNARY = UNARY - {Op.NEG, Op.NOT, Op.ABS}  # defined on floats only
BINARY = frozenset(
    {Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.IDIV, Op.MOD, Op.AND, Op.OR, Op.XOR}
    | {Op.SHL, Op.SHR, Op.MAXIMUM, Op.MINIMUM, Op.UMULHI}
)
BITWISE = frozenset({Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR, Op.NOT, Op.UMULHI})
COMPARE = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE})
ELEMENTWISE = UNARY | BINARY | COMPARE | {Op.WHERE, Op.CAST, Op.FMA, Op.BITCAST}
STRUCTURE = frozenset({Op.ARANGE, Op.SPLAT, Op.BROADCAST, Op.RESHAPE, Op.EXPAND_DIMS, Op.PERMUTE})
BLOCK_COMPUTE = frozenset({Op.REDUCE, Op.SCAN, Op.DOT})
ATOMICS = frozenset({Op.ATOMIC_RMW, Op.ATOMIC_CAS})
DEBUG = frozenset({Op.DEVICE_ASSERT, Op.PRINT})
GEOMETRY = frozenset({Op.CONST, Op.PROGRAM_ID, Op.NUM_PROGRAMS, Op.DIM, Op.STRIDE})
MEMORY = frozenset({Op.ADDPTR, Op.LOAD, Op.STORE}) | ATOMICS
CONTROL = frozenset({Op.FOR, Op.IF, Op.WHILE, Op.YIELD, Op.CONDITION})
TERMINATORS = frozenset({Op.YIELD, Op.CONDITION})
# Ops whose effect is not captured by their results: never removed by DCE.
SIDE_EFFECTS = frozenset({Op.STORE}) | ATOMICS | DEBUG
# Ops that are safe to evaluate speculatively and to merge when identical.
PURE = ELEMENTWISE | STRUCTURE | GEOMETRY | BLOCK_COMPUTE | {Op.ADDPTR}

REDUCE_KINDS = frozenset({"sum", "prod", "max", "min", "argmax", "argmin", "and", "or", "xor"})
SCAN_KINDS = frozenset({"sum", "prod"})
ATOMIC_KINDS = frozenset({"add", "max", "min", "and", "or", "xor", "xchg"})

OPS_BY_NAME: dict[str, Op] = {str(op): op for op in Op}
