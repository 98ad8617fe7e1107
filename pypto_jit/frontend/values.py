"""Frontend values: what a name in a kernel is bound to while lowering.

A name holds either a Python object (a compile-time constant: int, float, bool,
None, a dtype, a tuple, a module, a function, ...) or a ``Tensor``: an IR value
(scalar, pointer or block). A ``Tensor`` that is (derived from) a tensor
parameter remembers which one, so layout queries (``x.shape``) keep working
after pointer arithmetic rebinds the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Value
from ..ir import types as irt


class SemanticError(Exception):
    """A type or usage error without a location; the visitor attaches the user's line."""


@dataclass(frozen=True, eq=False)
class Tensor:
    value: Value
    param: int | None = None  # index of the tensor parameter this pointer derives from

    @property
    def type(self) -> irt.Type:
        return self.value.type

    @property
    def shape(self) -> tuple[int, ...]:
        return irt.shape(self.value.type)

    @property
    def scalar(self) -> irt.ScalarType:
        return irt.scalar_of(self.value.type)

    @property
    def is_block(self) -> bool:
        return isinstance(self.value.type, irt.BlockType)

    @property
    def is_ptr(self) -> bool:
        return irt.is_ptr(self.value.type)


def describe(x: object) -> str:
    """How a value is named in error messages."""
    if isinstance(x, Tensor):
        return str(x.type)
    return f"{type(x).__name__} {x!r}"
