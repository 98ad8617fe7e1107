"""What kernels see: dtypes, ``constexpr``, ``Out`` and the builtin markers.

The functions here are markers: the frontend recognizes them by identity and
lowers each through its rule. Calling one from ordinary Python raises.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any

from ..ir import types as irt


class dtype:
    """A scalar element type, as Triton's ``tl.float32`` etc."""

    def __init__(self, name: str, ir: irt.ScalarType):
        self.name = name
        self.ir = ir

    @property
    def element_ty(self) -> dtype:
        """Triton code writes ``ptr.dtype.element_ty``; a pypto tensor's ``.dtype`` is
        already the element type, so this is the dtype itself."""
        return self

    @property
    def primitive_bitwidth(self) -> int:
        return self.ir.bits

    def is_floating(self) -> bool:
        return self.ir.is_float

    def is_int(self) -> bool:
        return self.ir.is_int and not self.ir.is_bool

    def __repr__(self) -> str:
        return f"pl.{self.name}"

    def __reduce__(self):
        return (_dtype_by_name, (self.name,))


_IR_NAMES = {
    "int1": "i1", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
}  # fmt: skip
DTYPES: dict[str, dtype] = {n: dtype(n, irt.SCALARS[ir]) for n, ir in _IR_NAMES.items()}
BY_IR: dict[irt.ScalarType, dtype] = {d.ir: d for d in DTYPES.values()}


def _dtype_by_name(name: str) -> dtype:
    return DTYPES[name]


class constexpr:
    """A compile-time parameter (``BLOCK: pl.constexpr``) or global (``X = pl.constexpr(4)``)."""

    def __init__(self, value: Any):
        self.value = value.value if isinstance(value, constexpr) else value

    def __repr__(self) -> str:
        return f"constexpr({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, constexpr) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("constexpr", self.value))


class Out:
    """Annotates an output parameter that may be left out of a launch and is then allocated.

    ``pl.Out(like="x")`` -- same shape and dtype as parameter ``x``;
    ``pl.Out(shape=(..) or callable(bound_args), dtype=pl.float32)``.
    """

    def __init__(self, like: str | None = None, *, shape: Any = None, dtype: Any = None):
        if like is None and shape is None:
            raise TypeError("pl.Out needs like='param' or shape=...")
        self.like = like
        self.shape = shape
        self.dtype = dtype

    def __repr__(self) -> str:
        if self.like is not None:
            return f"pl.Out(like={self.like!r})"
        return f"pl.Out(shape={self.shape!r}, dtype={self.dtype!r})"


class PropagateNan(enum.Enum):
    """Triton's NaN policy for maximum/minimum/clamp; pypto always propagates NaN."""

    NONE = 0
    ALL = 0xFFFF


BUILTINS: dict[Callable, str] = {}


def builtin(fn: Callable) -> Callable:
    """Register ``fn`` as a kernel builtin; calling it outside a kernel is an error."""

    @functools.wraps(fn)
    def marker(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"pl.{fn.__name__} can only be called inside a @pypto.jit kernel "
            "(or a function called from one)"
        )

    BUILTINS[marker] = fn.__name__
    return marker
