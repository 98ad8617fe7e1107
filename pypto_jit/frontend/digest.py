"""The source part of a kernel's cache key, cheap enough for a new process's first launch.

A key must change whenever the kernel, a ``@jit`` helper it can reach, or a
constexpr global any of them reads changes. Each kernel contributes a summary:
the text of its definition and, for every name in that text, the identity of
the helper or the value of the constexpr it is bound to. The digest hashes the
summaries of everything reachable, so it does not depend on the order things
were first launched in and mutual references do not recurse.

The text is cut from the file with the code object's line range, without
``inspect`` (which tokenizes the file); the names are every identifier in the
text, without an ``ast`` walk. Both are supersets of what the compiler reads
(the range stops at the last line holding code, which only trailing comments
and blank lines can follow), so a key can only change more often than it must.
"""

from __future__ import annotations

import hashlib
import linecache
import types
import weakref
from typing import Any

from ..language.core import constexpr

# Every ASCII character that cannot be part of an identifier becomes a space, so
# splitting the text gives its words (a regex would cost a new process more to compile).
_WORDS = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


# Per kernel, computed once: as the compiled artifact itself, a summary sees the
# constexpr globals as they were at the kernel's first launch in this process.
_texts: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_summaries: weakref.WeakKeyDictionary[Any, tuple[str, list]] = weakref.WeakKeyDictionary()


def dependency_digest(kernel: Any) -> str:
    """sha256 over the summaries of ``kernel`` and of every ``@jit`` helper it reaches."""
    seen = {id(kernel)}
    pending = [kernel]
    lines = []
    while pending:
        line, helpers = _summary(pending.pop())
        lines.append(line)
        for helper in helpers:
            if id(helper) not in seen:
                seen.add(id(helper))
                pending.append(helper)
    root, rest = lines[0], sorted(lines[1:])
    return hashlib.sha256("\n".join([root, *rest]).encode()).hexdigest()


def _summary(kernel: Any) -> tuple[str, list]:
    """(the definition's digest and what each name in it is bound to, the helpers)."""
    summary = _summaries.get(kernel)
    if summary is None:
        g = kernel.fn.__globals__
        bindings, helpers = [], []
        for name in sorted(set(_text(kernel).translate(_WORDS).split())):
            value = g.get(name)
            if _is_kernel(value) and value is not kernel:
                bindings.append(f"{name}:jit:{_text_digest(value)}")
                helpers.append(value)
            elif isinstance(value, constexpr):
                bindings.append(f"{name}:constexpr:{value.value!r}")
        line = f"{_text_digest(kernel)}[{';'.join(bindings)}]"
        summary = _summaries[kernel] = (line, helpers)
    return summary


def _is_kernel(value: Any) -> bool:
    # Asked of the type: a global's own __getattr__ may do anything.
    return getattr(type(value), "__pypto_jit__", False) is True


def _text(kernel: Any) -> str:
    text = _texts.get(kernel)
    if text is None:
        text = definition_text(kernel.fn)
        if text is None:  # no code object to go by: inspect, with its error for no source
            text = kernel.source.text
        _texts[kernel] = text
    return text


def _text_digest(kernel: Any) -> str:
    return hashlib.sha256(_text(kernel).encode()).hexdigest()


def definition_text(fn: Any) -> str | None:
    """The lines of ``fn``'s definition, decorators included, or None if unknown.

    Runs from the code's first line (the first decorator) to the last line any of its
    instructions, or those of nested functions, spans.
    """
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType) or not hasattr(code, "co_positions"):
        return None  # co_positions is Python 3.11+; 3.10 goes through inspect
    lines = linecache.getlines(code.co_filename, getattr(fn, "__globals__", None))
    first, last = code.co_firstlineno, _last_line(code)
    if not lines or not 0 < first <= last <= len(lines):
        return None
    return "".join(lines[first - 1 : last])


def _last_line(code: types.CodeType) -> int:
    last = max((end for _, end, _, _ in code.co_positions() if end is not None), default=0)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _last_line(const))
    return last
