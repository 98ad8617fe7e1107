"""The numpy reference interpreter (the ``interpret`` backend).

``run(module, tensors, iargs, fargs, grid)`` executes a kernel module program
by program with numpy, over whole blocks at a time. Its results define the
IR's semantics for the other backends. Each op is evaluated by a small rule
registered with ``@register(Op.X)``; an op without a rule is a
``NotImplementedError`` that names it.

Rules by module: ``structure`` (constants, geometry, block shapes),
``elementwise`` and ``mathops`` (elementwise math, FMA, BITCAST), ``memory``
(ADDPTR, LOAD, STORE and bounds checks), ``atomics``, ``blockops`` (PERMUTE,
REDUCE, SCAN, DOT), ``debug`` (DEVICE_ASSERT, PRINT) and ``control``.
"""

from .machine import run
from .registry import RULES, Ptr, register

__all__ = ["RULES", "Ptr", "register", "run"]
