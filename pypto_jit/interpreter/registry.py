"""The rule registry (JAX-Pallas style) and the pointer value.

A rule evaluates one operation over whole blocks: ``rule(ctx, op, *operand_values)``
returns the result value (``None`` for ops without results); rules for region
ops (FOR/IF/WHILE) return a sequence of results. Rules never modify their
operands in place, so values may be shared views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ir.nodes import Operation
from ..ir.ops import Op

Rule = Callable[..., Any]
RULES: dict[Op, Rule] = {}


def register(*ops: Op) -> Callable[[Rule], Rule]:
    """Decorator: ``@register(Op.ADD) def _add(ctx, op, a, b): ...``."""

    def deco(fn: Rule) -> Rule:
        for op in ops:
            if op in RULES:
                raise ValueError(f"interpreter: two rules for {op}")
            RULES[op] = fn
        return fn

    return deco


def rule_for(op: Operation) -> Rule:
    rule = RULES.get(op.op)
    if rule is None:
        raise NotImplementedError(f"interpreter: no rule for {op.op}")
    return rule


class Ptr:
    """A pointer value: the tensor parameter it points into and int64 element offset(s).

    ``off`` is an ``np.int64`` for a scalar pointer and an int64 array for a block.
    """

    __slots__ = ("param", "off")

    def __init__(self, param: int, off):
        self.param = param
        self.off = off

    def map(self, fn: Callable[[Any], Any]) -> Ptr:
        """The same tensor, offsets transformed (structure ops)."""
        return Ptr(self.param, fn(self.off))

    def __repr__(self) -> str:
        return f"Ptr(param={self.param}, off={self.off!r})"


def lift(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply ``fn`` to a number value, or to a pointer's offsets."""
    return lambda v: v.map(fn) if isinstance(v, Ptr) else fn(v)


def as_int64(x):
    """Offsets of any integer type as int64 (wrapping, like a C pointer add)."""
    return x.astype(np.int64)
