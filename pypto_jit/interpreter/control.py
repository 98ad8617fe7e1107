"""Rules for structured control flow: FOR, IF and WHILE.

Each rule runs its regions through ``ctx.run_region(op, k, args)``, which
returns the operands of the region's terminator (YIELD or CONDITION), and
returns the op's results as a list.
"""

from __future__ import annotations

from ..errors import KernelRuntimeError
from ..ir.ops import Op
from .registry import register


@register(Op.FOR)
def _for(ctx, op, lower, upper, step, *inits):
    make_iv = lower.dtype.type  # the induction variable has the type of ``lower``
    iv, stop, inc = int(lower), int(upper), int(step)
    if inc == 0:
        raise KernelRuntimeError(
            f"{ctx.where(op)}: for loop with step 0 in program {ctx.pid}",
            kernel=ctx.kernel,
            loc=op.loc,
            pid=ctx.pid,
        )
    carried = list(inits)
    # Python ints for the counter: iv stays inside [lower, upper) so never wraps.
    while iv < stop if inc > 0 else iv > stop:
        carried = ctx.run_region(op, 0, (make_iv(iv), *carried))
        iv += inc
    return carried


@register(Op.IF)
def _if(ctx, op, cond):
    if bool(cond):
        return ctx.run_region(op, 0, ())
    if len(op.regions) > 1:
        return ctx.run_region(op, 1, ())
    return []


@register(Op.WHILE)
def _while(ctx, op, *inits):
    carried = list(inits)
    while True:
        cond, *forwarded = ctx.run_region(op, 0, carried)
        if not bool(cond):
            return forwarded
        carried = ctx.run_region(op, 1, forwarded)
