"""IR types: scalars, pointers and blocks.

Every SSA value has one of three types:

* ``ScalarType`` -- ``i1 i8 i16 i32 i64 u8 u16 u32 u64 f16 bf16 f32 f64``
* ``PtrType``    -- ``ptr<f32>``: a pointer to elements of a scalar type
* ``BlockType``  -- ``block<f32,[16,64]>``: a statically shaped block whose
  elements are scalars or pointers.

Types are frozen dataclasses, compared and hashed by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ScalarType:
    name: str

    @property
    def bits(self) -> int:
        return _BITS[self.name]

    @property
    def is_float(self) -> bool:
        return self.name[0] in "fb"

    @property
    def is_int(self) -> bool:
        """Integers, booleans included."""
        return self.name[0] in "iu"

    @property
    def is_bool(self) -> bool:
        return self.name == "i1"

    @property
    def is_signed(self) -> bool:
        return self.name[0] == "i" and self.name != "i1"

    @property
    def is_unsigned(self) -> bool:
        return self.name[0] == "u"

    @property
    def itemsize(self) -> int:
        return max(1, self.bits // 8)

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype holding this type (bf16 is held as float32 by the interpreter)."""
        import numpy as np  # not with the package: a launch on torch tensors never needs it

        return np.dtype(_NUMPY[self.name])

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class PtrType:
    elem: ScalarType

    def __str__(self) -> str:
        return f"ptr<{self.elem}>"


@dataclass(frozen=True)
class BlockType:
    elem: ScalarType | PtrType
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.shape or any(not isinstance(d, int) or d < 1 for d in self.shape):
            raise ValueError(f"block shape must be a tuple of positive ints: {self.shape}")

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __str__(self) -> str:
        return f"block<{self.elem},[{','.join(map(str, self.shape))}]>"


Type = ScalarType | PtrType | BlockType

_BITS = {
    "i1": 1, "i8": 8, "i16": 16, "i32": 32, "i64": 64,
    "u8": 8, "u16": 16, "u32": 32, "u64": 64,
    "f16": 16, "bf16": 16, "f32": 32, "f64": 64,
}  # fmt: skip
_NUMPY = {
    "i1": "bool", "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
    "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
    "f16": "float16", "bf16": "float32", "f32": "float32", "f64": "float64",
}  # fmt: skip

SCALARS: dict[str, ScalarType] = {name: ScalarType(name) for name in _BITS}
i1, i8, i16, i32, i64 = (SCALARS[n] for n in ("i1", "i8", "i16", "i32", "i64"))
u8, u16, u32, u64 = (SCALARS[n] for n in ("u8", "u16", "u32", "u64"))
f16, bf16, f32, f64 = (SCALARS[n] for n in ("f16", "bf16", "f32", "f64"))


def elem(t: Type) -> ScalarType | PtrType:
    """Element type: the type itself for scalars and pointers."""
    return t.elem if isinstance(t, BlockType) else t


def scalar_of(t: Type) -> ScalarType:
    """The underlying scalar type (pointee for pointers)."""
    e = elem(t)
    return e.elem if isinstance(e, PtrType) else e


def shape(t: Type) -> tuple[int, ...]:
    """Block shape, ``()`` for scalars and pointers."""
    return t.shape if isinstance(t, BlockType) else ()


def with_elem(t: Type, e: ScalarType | PtrType) -> Type:
    """``t`` with its element type replaced (keeps block-ness and shape)."""
    return BlockType(e, t.shape) if isinstance(t, BlockType) else e


def with_shape(t: Type, shp: tuple[int, ...]) -> Type:
    """The element type of ``t`` as a block of shape ``shp`` (a scalar if ``shp == ()``)."""
    e = elem(t)
    return BlockType(e, shp) if shp else e


def is_ptr(t: Type) -> bool:
    return isinstance(elem(t), PtrType)


def parse_type(text: str) -> Type:
    """Inverse of ``str(type)``."""
    text = text.strip()
    if text in SCALARS:
        return SCALARS[text]
    if text.startswith("ptr<") and text.endswith(">"):
        inner = parse_type(text[4:-1])
        if not isinstance(inner, ScalarType):
            raise ValueError(f"bad pointee in {text!r}")
        return PtrType(inner)
    if text.startswith("block<") and text.endswith("]>"):
        body = text[6:-2]
        e_text, _, dims = body.rpartition(",[")
        e = parse_type(e_text)
        if isinstance(e, BlockType):
            raise ValueError(f"nested block in {text!r}")
        return BlockType(e, tuple(int(d) for d in dims.split(",")))
    raise ValueError(f"not an IR type: {text!r}")
