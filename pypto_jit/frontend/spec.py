"""Specialization: what the compiler knows about each argument of a launch.

The jit layer describes every parameter with an ``ArgSpec``; the frontend
lowers the kernel for exactly these facts, and the cache key is made of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ir import types as irt


@dataclass(frozen=True)
class ArgSpec:
    """``kind``: "tensor", "scalar" or "constexpr" (None arguments are constexpr None)."""

    kind: str
    dtype: irt.ScalarType | None = None
    shape: tuple[int | None, ...] = ()
    strides: tuple[int | None, ...] = ()
    facts: tuple[tuple[str, Any], ...] = ()
    value: Any = None  # the value of a constexpr

    @property
    def rank(self) -> int:
        return len(self.shape)

    def describe(self) -> str:
        if self.kind == "tensor":
            dims = ",".join("?" if d is None else str(d) for d in self.shape)
            return f"{self.dtype}[{dims}]"
        if self.kind == "scalar":
            return str(self.dtype)
        return f"constexpr={self.value!r}"
