"""Launch arguments: classify, key, specialize and pack them.

``arg_key`` is on the launch fast path: it returns a small hashable key for
one argument and appends the argument's ABI slots to ``iargs``/``fargs`` in
the same pass, so a cache hit touches each argument once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .frontend import ArgSpec
from .ir import types as irt

if TYPE_CHECKING:
    import numpy as np

# numpy is imported when first needed, not with the package: an argument that is a
# numpy array or scalar means numpy is loaded already.
_numpy_types: dict | None = None


def numpy_types() -> dict:
    global _numpy_types
    if _numpy_types is None:
        import numpy as np

        _numpy_types = {
            np.dtype(n): irt.SCALARS[t]
            for n, t in [
                ("bool", "i1"),
                ("int8", "i8"),
                ("int16", "i16"),
                ("int32", "i32"),
                ("int64", "i64"),
                ("uint8", "u8"),
                ("uint16", "u16"),
                ("uint32", "u32"),
                ("uint64", "u64"),
                ("float16", "f16"),
                ("float32", "f32"),
                ("float64", "f64"),
            ]
        }
    return _numpy_types


_torch_types: dict | None = None


def torch_types() -> dict:
    global _torch_types
    if _torch_types is None:
        import torch

        _torch_types = {
            torch.bool: irt.i1, torch.int8: irt.i8, torch.int16: irt.i16, torch.int32: irt.i32,
            torch.int64: irt.i64, torch.uint8: irt.u8, torch.uint16: irt.u16,
            torch.uint32: irt.u32, torch.uint64: irt.u64, torch.float16: irt.f16,
            torch.bfloat16: irt.bf16, torch.float32: irt.f32, torch.float64: irt.f64,
        }  # fmt: skip
    return _torch_types


def is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class _TorchTensorClass:
    """Holds ``torch.Tensor`` once torch has been imported (never imports it itself)."""

    cls: type | None = None
    listeners: list = []  # called with the class when it becomes known (the C launch path)

    @classmethod
    def found(cls, t: type) -> None:
        if cls.cls is None:
            cls.cls = t
            for listener in cls.listeners:
                listener(t)

    @classmethod
    def probe(cls) -> None:
        """Learn the class now if torch is already imported."""
        tensor = getattr(sys.modules.get("torch"), "Tensor", None)
        if cls.cls is None and isinstance(tensor, type):
            cls.found(tensor)


def arg_key(name: str, a: Any, iargs: list, fargs: list) -> Any:
    """Hashable specialization key of one (non-constexpr) argument; appends its slots."""
    t = type(a)
    if t is _TorchTensorClass.cls:  # the fast path for plain torch tensors
        if not a.is_cpu:
            raise ValueError(
                f"argument '{name}' is a tensor on {a.device}; pypto-jit runs on "
                "the CPU: move it with .cpu()"
            )
        ptr, shape, strides = a.data_ptr(), a.shape, a.stride()
        iargs.append(ptr)
        iargs += shape
        iargs += strides
        return (a.dtype, shape, strides, ptr & 15 == 0)
    if t is int:
        iargs.append(a)
        if -(2**31) <= a < 2**31:
            return ("i32", a == 1, a % 16 == 0)
        return ("i64" if -(2**63) <= a < 2**63 else _big_int(name, a), False, a % 16 == 0)
    if t is float:
        fargs.append(a)
        return "f32"
    if t is bool:
        iargs.append(int(a))
        return "i1"
    if is_torch(a):
        if t.__module__ == "torch" and t.__name__ == "Tensor":
            _TorchTensorClass.found(t)
        if not a.is_cpu:
            raise ValueError(
                f"argument '{name}' is a tensor on {a.device}; pypto-jit runs on "
                "the CPU: move it with .cpu()"
            )
        ptr, shape, strides = a.data_ptr(), tuple(a.shape), a.stride()
        iargs.append(ptr)
        iargs.extend(shape)
        iargs.extend(strides)
        return (a.dtype, shape, strides, ptr & 15 == 0)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(a, np.ndarray):
        ptr = a.ctypes.data
        strides = _np_strides(name, a)
        iargs.append(ptr)
        iargs.extend(a.shape)
        iargs.extend(strides)
        return (a.dtype, a.shape, strides, ptr & 15 == 0)
    if np is not None and isinstance(a, (np.integer, np.floating, np.bool_)):
        return arg_key(name, a.item(), iargs, fargs)
    if t is TensorSpec:
        iargs.append(0)  # no data: a TensorSpec is only compiled for, never launched on
        iargs.extend(a.shape)
        iargs.extend(a.strides)
        return (a.dtype, a.shape, a.strides, a.aligned)
    raise TypeError(
        f"argument '{name}' has type {type(a).__name__}; expected a torch tensor, a numpy "
        "array, an int, a float, a bool or None (mark compile-time parameters pl.constexpr)"
    )


def _big_int(name: str, a: int) -> str:
    if 0 <= a < 2**64:
        return "u64"
    raise ValueError(f"argument '{name}' = {a} does not fit in 64 bits")


def _np_strides(name: str, a: np.ndarray) -> tuple[int, ...]:
    size = a.itemsize
    if any(s % size for s in a.strides):
        raise ValueError(
            f"argument '{name}' has strides {a.strides} that are not a multiple "
            f"of its item size {size}"
        )
    return tuple(s // size for s in a.strides)


class TensorSpec:
    """A placeholder for a tensor argument: compile (``kernel.warmup``) without data.

    ``dtype`` is a ``pl`` dtype, a torch or numpy dtype, or a name such as
    ``"float32"``; ``strides`` (in elements) default to contiguous; ``aligned``
    says whether the data pointer will be 16-byte aligned (torch and numpy
    allocations are).
    """

    def __init__(self, shape: Any, dtype: Any, strides: Any = None, aligned: bool = True):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = ir_dtype(dtype)
        if strides is None:
            strides, step = [], 1
            for d in reversed(self.shape):
                strides.append(step)
                step *= max(d, 1)
            strides.reverse()
        self.strides = tuple(int(s) for s in strides)
        if len(self.strides) != len(self.shape):
            raise ValueError(f"TensorSpec strides {self.strides} do not match shape {self.shape}")
        self.aligned = bool(aligned)

    def __repr__(self) -> str:
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype}, strides={self.strides})"


def ir_dtype(dtype: Any) -> irt.ScalarType:
    """The IR scalar type for a pl, torch or numpy dtype, or a dtype name."""
    from .language.core import DTYPES
    from .language.core import dtype as pl_dtype

    if isinstance(dtype, irt.ScalarType):
        return dtype
    if isinstance(dtype, pl_dtype):
        return dtype.ir
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype].ir
    if type(dtype).__module__ == "torch":
        found = torch_types().get(dtype)
    else:
        import numpy as np

        try:
            found = numpy_types().get(np.dtype(dtype))
        except TypeError:
            found = None
    if found is None:
        raise TypeError(f"unsupported dtype {dtype!r}")
    return found


def tensor_dtype(name: str, a: Any) -> irt.ScalarType:
    if isinstance(a, TensorSpec):
        return a.dtype
    table = torch_types() if is_torch(a) else numpy_types()
    dt = table.get(a.dtype)
    if dt is None:
        raise TypeError(f"argument '{name}' has unsupported dtype {a.dtype}")
    return dt


def arg_spec(name: str, a: Any, key: Any, specialize: bool) -> ArgSpec:
    """The compiler's view of one argument, from its launch key (computed on cache misses)."""
    if isinstance(key, tuple) and len(key) == 4:  # a tensor
        dtype = tensor_dtype(name, a)
        facts = (("aligned16", True),) if key[3] else ()
        if not specialize:
            rank = len(key[1])
            return ArgSpec("tensor", dtype, (None,) * rank, (None,) * rank, facts)
        return ArgSpec("tensor", dtype, tuple(key[1]), tuple(key[2]), facts)
    if key == "f32":
        return ArgSpec("scalar", irt.f32)
    if key == "i1":
        return ArgSpec("scalar", irt.i1)
    kind, is_one, div16 = key
    facts = []
    if specialize and is_one:
        facts.append(("equal1", True))
    if specialize and div16:
        facts.append(("div16", True))
    return ArgSpec("scalar", irt.SCALARS[kind], facts=tuple(facts))


def to_numpy(a: Any) -> np.ndarray:
    """A numpy view sharing memory with ``a`` (bf16 tensors as their raw uint16 bits)."""
    import numpy as np

    if isinstance(a, np.ndarray):
        return a
    import torch

    t = a.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()
