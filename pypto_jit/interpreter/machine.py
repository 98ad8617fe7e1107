"""Runs a module: a plan compiled once per module, then one pass per program.

The plan numbers every SSA value with a slot in a flat environment list and
turns each block into a tuple of steps ``(rule, op, operand slots, result
slot, result slots)``, so running a program is a tight loop of rule calls.
Programs share the environment: values are SSA, so each slot is written
before it is read within a program.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import CONTROL, TERMINATORS
from ..ir.types import ScalarType
from . import (  # noqa: F401 - registers the rules
    atomics,
    blockops,
    control,
    debug,
    elementwise,
    mathops,
    memory,
    structure,
)
from .memory import TensorArg, bind_tensor
from .numerics import from_python
from .registry import Ptr, rule_for

Step = tuple[Any, Operation, tuple[int, ...], int, tuple[int, ...]]


@dataclass(frozen=True)
class BlockPlan:
    args: tuple[int, ...]
    steps: tuple[Step, ...]
    terminator: tuple[int, ...]  # slots of the terminator's operands


@dataclass(frozen=True)
class Plan:
    nslots: int
    body: BlockPlan
    regions: dict[Operation, tuple[BlockPlan, ...]]


# Keyed by identity: a WeakKeyDictionary would compare modules structurally on
# every lookup (Module.__eq__), which walks the whole IR.
_PLANS: dict[int, Plan] = {}


def plan_for(module: Module) -> Plan:
    plan = _PLANS.get(id(module))
    if plan is None:
        plan = _PLANS[id(module)] = _compile(module)
        weakref.finalize(module, _PLANS.pop, id(module), None)
    return plan


def _compile(module: Module) -> Plan:
    slots: dict[Value, int] = {}
    regions: dict[Operation, tuple[BlockPlan, ...]] = {}

    def slot(v: Value) -> int:
        return slots.setdefault(v, len(slots))

    def block(b: Block) -> BlockPlan:
        args = tuple(slot(a) for a in b.args)
        ops, terminator = b.ops, ()
        if ops and ops[-1].op in TERMINATORS:
            ops, terminator = ops[:-1], tuple(slot(v) for v in ops[-1].operands)
        steps = []
        for op in ops:
            rule = rule_for(op)
            ins = tuple(slot(v) for v in op.operands)
            if op.regions:
                regions[op] = tuple(block(r) for r in op.regions)
            outs = tuple(slot(v) for v in op.results)
            if op.op in CONTROL or len(outs) > 1:
                steps.append((rule, op, ins, -1, outs))  # the rule returns a sequence
            else:
                steps.append((rule, op, ins, outs[0] if outs else -1, ()))
        return BlockPlan(args, tuple(steps), terminator)

    body = block(module.body)
    return Plan(len(slots), body, regions)


class Context:
    """What rules see: the program id, grid, bound tensors, and region execution."""

    def __init__(self, kernel: str, plan: Plan, tensors: list[TensorArg | None], grid):
        self.kernel = kernel
        self.plan = plan
        self.tensors = tensors
        self.grid = grid
        self.pid = (0, 0, 0)
        self.env: list[Any] = [None] * plan.nslots

    def where(self, op: Operation) -> str:
        """``kernel NAME, file.py:LINE`` for error messages."""
        if op.loc is None:
            return f"kernel {self.kernel}"
        return f"kernel {self.kernel}, {op.loc.file}:{op.loc.line}"

    def run_region(self, op: Operation, index: int, args: Sequence[Any]) -> list[Any]:
        return self.run_block(self.plan.regions[op][index], args)

    def run_block(self, bp: BlockPlan, args: Sequence[Any]) -> list[Any]:
        env = self.env
        for s, v in zip(bp.args, args, strict=True):
            env[s] = v
        for rule, op, ins, out, outs in bp.steps:
            result = rule(self, op, *[env[i] for i in ins])
            if out >= 0:
                env[out] = result
            elif outs:
                for s, v in zip(outs, result, strict=True):
                    env[s] = v
        return [env[s] for s in bp.terminator]


def _bind_args(module: Module, tensors, iargs, fargs) -> tuple[list, list]:
    """Decode the ABI slots: (argument values for the body, bound tensors)."""
    if len(tensors) != len(module.params):
        raise ValueError(f"interpreter: {len(tensors)} tensors for {len(module.params)} params")
    n_int, n_float = _slot_counts(module)
    if n_int != len(iargs) or n_float != len(fargs):
        raise ValueError(
            f"interpreter: {module.name} takes {n_int} int and {n_float} float slots, "
            f"got {len(iargs)} and {len(fargs)}"
        )
    values: list[Any] = []
    bound: list[TensorArg | None] = []
    ii = fi = 0
    for index, param in enumerate(module.params):
        if param.kind == "tensor":
            rank = len(param.shape)
            slots = [int(x) for x in iargs[ii + 1 : ii + 1 + 2 * rank]]
            ii += 1 + 2 * rank
            bound.append(
                bind_tensor(param, tensors[index], tuple(slots[:rank]), tuple(slots[rank:]))
            )
            values.append(Ptr(index, np.int64(0)))
            continue
        t = param.type
        assert isinstance(t, ScalarType), f"scalar param {param.name} has type {t}"
        if t.is_float:
            values.append(from_python(float(fargs[fi]), t))
            fi += 1
        else:
            values.append(from_python(int(iargs[ii]), t))
            ii += 1
        bound.append(None)
    return values, bound


def _slot_counts(module: Module) -> tuple[int, int]:
    n_int = n_float = 0
    for p in module.params:
        if p.kind == "tensor":
            n_int += 1 + 2 * len(p.shape)
        elif p.type.is_float:
            n_float += 1
        else:
            n_int += 1
    return n_int, n_float


def run(
    module: Module,
    tensors: list[np.ndarray | None],
    iargs: Sequence[int],
    fargs: Sequence[float],
    grid: tuple[int, int, int],
    *,
    kernel_name: str | None = None,
) -> None:
    """Run every program of ``grid`` in order (axis 0 fastest), writing into ``tensors``."""
    plan = plan_for(module)
    grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
    values, bound = _bind_args(module, tensors, iargs, fargs)
    ctx = Context(kernel_name or module.name, plan, bound, grid)
    # Wrapping integer arithmetic and inf/nan results are the IR's semantics, not errors.
    with np.errstate(all="ignore"):
        for p2 in range(grid[2]):
            for p1 in range(grid[1]):
                for p0 in range(grid[0]):
                    ctx.pid = (p0, p1, p2)
                    ctx.run_block(plan.body, values)
