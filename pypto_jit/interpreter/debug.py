"""Rules for DEVICE_ASSERT and PRINT.

DEVICE_ASSERT fails when any lane of its condition is false and raises
``DeviceAssertError``::

    kernel NAME, file.py:LINE: device_assert failed: MSG in program (p0, p1, p2)

PRINT writes one line per program to stdout::

    pid (p0, p1, p2) PREFIX VALUE VALUE ...

with one space between the prefix and the first value unless the prefix
already ends with one. Each value is written by numpy on one line: scalars as
``str`` does (``1.5``, ``-3``, ``nan``), blocks as nested lists
(``[[1, 2], [3, 4]]``), booleans as 0/1, bf16 as its float value, pointers as
``&param+offsets``.
"""

from __future__ import annotations

import sys

import numpy as np

from ..errors import DeviceAssertError
from ..ir.ops import Op
from .registry import Ptr, register


@register(Op.DEVICE_ASSERT)
def _device_assert(ctx, op, cond):
    if np.all(cond):
        return None
    msg = op.attr("msg", "")
    raise DeviceAssertError(
        f"{ctx.where(op)}: device_assert failed{': ' + msg if msg else ''} in program {ctx.pid}",
        kernel=ctx.kernel,
        loc=op.loc,
        pid=ctx.pid,
    )


def format_value(value, names: list[str] | None = None) -> str:
    """One value on one line, as PRINT writes it."""
    if isinstance(value, Ptr):
        name = names[value.param] if names else f"param{value.param}"
        return f"&{name}+{format_value(value.off)}"
    a = np.asarray(value)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.ndim == 0:
        return str(a[()])
    text = np.array2string(
        a,
        separator=", ",
        formatter={"all": lambda x: str(x)},
        max_line_width=sys.maxsize,
        threshold=sys.maxsize,
    )
    return text.replace("\n", "")


@register(Op.PRINT)
def _print(ctx, op, *values):
    prefix = op.attr("prefix", "")
    p0, p1, p2 = ctx.pid
    line = f"pid ({p0}, {p1}, {p2})"
    if prefix:
        line += " " + prefix
    names = [t.name if t is not None else "" for t in ctx.tensors]
    parts = [format_value(v, names) for v in values]
    if parts:
        line += ("" if line.endswith(" ") else " ") + " ".join(parts)
    sys.stdout.write(line + "\n")
    return None
