"""A kernel's Python source: text, ast, and mapping of ast positions to the file."""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import linecache
import textwrap
from collections.abc import Callable

from ..errors import CompilationError, SourceLoc


class KernelSource:
    def __init__(self, fn: Callable):
        self.fn = fn
        self.file = inspect.getsourcefile(fn) or "<unknown>"
        try:
            lines, first = inspect.getsourcelines(fn)
        except (OSError, TypeError) as e:
            raise CompilationError(
                f"cannot read the source of kernel '{fn.__name__}' ({e}): kernels are compiled "
                "from their source, so define them in a file (not in `python -c` or a bare REPL)"
            ) from None
        self.first_line = max(first, 1)
        raw = "".join(lines)
        self.text = textwrap.dedent(raw)
        # Columns in the ast are relative to the dedented text; add the indent back.
        first_raw, first_dedented = lines[0], self.text.splitlines()[0]
        self.indent = (
            len(first_raw)
            - len(first_raw.lstrip())
            - (len(first_dedented) - len(first_dedented.lstrip()))
        )
        self.lines = raw.splitlines()

    @functools.cached_property
    def tree(self) -> ast.FunctionDef:
        module = ast.parse(self.text)
        node = module.body[0]
        if not isinstance(node, ast.FunctionDef):
            raise TypeError(f"@pypto.jit expects a function, got {type(node).__name__}")
        return node

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def loc(self, node: ast.AST) -> SourceLoc:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        return SourceLoc(self.file, self.first_line + line - 1, col + self.indent)

    def source_line(self, loc: SourceLoc) -> str | None:
        """The text of the file line ``loc`` points at (without the newline)."""
        idx = loc.line - self.first_line
        if 0 <= idx < len(self.lines):
            return self.lines[idx].rstrip("\n")
        text = linecache.getline(loc.file, loc.line)
        return text.rstrip("\n") or None
