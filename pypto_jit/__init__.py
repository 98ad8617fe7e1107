"""pypto-jit: Triton-style kernels in Python, compiled just in time for the CPU."""

__version__ = "0.1.0"

from .arguments import TensorSpec  # noqa: E402
from .compiled import CompiledKernel, load_compiled  # noqa: E402
from .errors import (  # noqa: E402
    CompilationError,
    DataRaceError,
    DeviceAssertError,
    KernelRuntimeError,
    OutOfBoundsError,
    TypeCheckError,
    UnsupportedConstructError,
)
from .jit import JITFunction, jit  # noqa: E402


def cdiv(a: int, b: int) -> int:
    """Ceiling division of integers: ``cdiv(10, 4) == 3``."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


__all__ = [
    "CompilationError", "CompiledKernel", "DataRaceError", "DeviceAssertError", "JITFunction",
    "KernelRuntimeError", "OutOfBoundsError", "TypeCheckError", "UnsupportedConstructError",
    "TensorSpec", "__version__", "cdiv", "jit", "load_compiled", "next_power_of_2",
]  # fmt: skip
