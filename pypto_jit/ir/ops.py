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
FOR                lower, upper, step, *inits                 --  region(iv, *carried)
IF                 cond                                       --  regions (then, else)
WHILE              *inits                                     --  regions (before, after)
YIELD              *values                                    --  terminates a region
CONDITION          cond, *values                              --  terminates WHILE.before
=================  =========================================  ==========================

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
    # comparisons -> i1
    LT = auto()
    LE = auto()
    GT = auto()
    GE = auto()
    EQ = auto()
    NE = auto()
    # ternary
    WHERE = auto()
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
    | {Op.SIN, Op.COS, Op.FLOOR, Op.CEIL}
)
FLOAT_UNARY = UNARY - {Op.NEG, Op.NOT, Op.ABS}  # defined on floats only
BINARY = frozenset(
    {Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.IDIV, Op.MOD, Op.AND, Op.OR, Op.XOR}
    | {Op.SHL, Op.SHR, Op.MAXIMUM, Op.MINIMUM}
)
BITWISE = frozenset({Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR, Op.NOT})
COMPARE = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE})
ELEMENTWISE = UNARY | BINARY | COMPARE | {Op.WHERE, Op.CAST}
STRUCTURE = frozenset({Op.ARANGE, Op.SPLAT, Op.BROADCAST, Op.RESHAPE, Op.EXPAND_DIMS})
GEOMETRY = frozenset({Op.CONST, Op.PROGRAM_ID, Op.NUM_PROGRAMS, Op.DIM, Op.STRIDE})
MEMORY = frozenset({Op.ADDPTR, Op.LOAD, Op.STORE})
CONTROL = frozenset({Op.FOR, Op.IF, Op.WHILE, Op.YIELD, Op.CONDITION})
TERMINATORS = frozenset({Op.YIELD, Op.CONDITION})
# Ops whose effect is not captured by their results: never removed by DCE.
SIDE_EFFECTS = frozenset({Op.STORE})
# Ops that are safe to evaluate speculatively and to merge when identical.
PURE = ELEMENTWISE | STRUCTURE | GEOMETRY | {Op.ADDPTR}

OPS_BY_NAME: dict[str, Op] = {str(op): op for op in Op}
