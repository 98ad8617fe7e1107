"""The exceptions users see.

Compile-time errors carry the user's source location and render it as
``file.py:line:col`` followed by the source line and a caret under the column.
Run-time errors from the simulator carry the kernel line, the program id, the
parameter and the offending index.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLoc:
    """A position in the user's kernel source (1-based line, 0-based col)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col + 1}"


class CompilationError(Exception):
    """A kernel could not be compiled; the message points at the user's line."""

    def __init__(self, message: str, loc: SourceLoc | None = None, source_line: str | None = None):
        self.raw_message = message
        self.loc = loc
        self.source_line = source_line
        super().__init__(self._render())

    def _render(self) -> str:
        if self.loc is None:
            return self.raw_message
        lines = [f"{self.loc}: {self.raw_message}"]
        if self.source_line is not None:
            lines.append("    " + self.source_line)
            lines.append("    " + " " * self.loc.col + "^")
        return "\n".join(lines)


class UnsupportedConstructError(CompilationError):
    """The kernel uses Python syntax or a call the compiler does not accept."""


class TypeCheckError(CompilationError):
    """Types or shapes do not agree."""


class KernelRuntimeError(RuntimeError):
    """A kernel failed while running; fields name where and why."""

    def __init__(
        self,
        message: str,
        *,
        kernel: str = "",
        loc: SourceLoc | None = None,
        pid: tuple[int, int, int] | None = None,
        param: str | None = None,
        index: int | None = None,
    ):
        self.kernel = kernel
        self.loc = loc
        self.pid = pid
        self.param = param
        self.index = index
        super().__init__(message)


class OutOfBoundsError(KernelRuntimeError):
    """A load or store touched memory outside its tensor."""


class DataRaceError(KernelRuntimeError):
    """Two programs stored to the same element without an atomic."""


class DeviceAssertError(KernelRuntimeError):
    """A ``device_assert`` (or ``assert``) failed inside a kernel."""
