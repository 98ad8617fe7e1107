"""Listing, inspecting, pruning and clearing cache entries (``python -m pypto_jit cache``)."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import _is_key, _kernels_dir, _read_meta, _root, _validate
from .build import _discard


def _entry_dirs() -> list[Path]:
    """Published entry directories (working names contain a '.', keys never do)."""
    try:
        children = list(_kernels_dir().iterdir())
    except OSError:
        return []
    return sorted(p for p in children if _is_key(p.name) and p.is_dir())


def _du(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


def _summary(entry: Path) -> dict[str, Any]:
    try:
        meta = _read_meta(entry)[0]
    except (OSError, ValueError):
        meta = {}
    try:
        last_used = entry.stat().st_mtime
    except OSError:
        last_used = 0.0
    return {
        "key": entry.name,
        "name": meta.get("name"),
        "signature": meta.get("signature"),
        "backend": meta.get("backend"),
        "size": _du(entry),
        "created": meta.get("created", last_used),
        "last_used": last_used,
        "path": str(entry),
    }


def list_entries() -> list[dict[str, Any]]:
    """One dict per entry: key, name, signature, backend, size, created, last_used, path."""
    return [_summary(e) for e in _entry_dirs()]


def stats() -> dict[str, Any]:
    """{"dir": cache dir, "count": entries, "total_bytes": their size on disk}."""
    entries = list_entries()
    return {
        "dir": str(_root()),
        "count": len(entries),
        "total_bytes": sum(e["size"] for e in entries),
    }


def clear() -> int:
    """Remove every entry (and dead builders' leftovers); return the entries removed."""
    removed = sum(1 for e in _entry_dirs() if _discard(e))
    kernels = _kernels_dir()
    if kernels.is_dir():
        for p in kernels.iterdir():
            if _is_leftover(p):
                shutil.rmtree(p, ignore_errors=True)
    return removed


def _is_leftover(path: Path) -> bool:
    """A .tmp-/.del- dir whose creating process is gone (a live one is still working)."""
    m = re.fullmatch(r"[A-Za-z0-9_-]+\.(tmp|del)-(\d+)-[0-9a-f]+", path.name)
    if not m or os.name == "nt":  # on Windows os.kill(pid, 0) sends CTRL_C_EVENT
        return False
    try:
        os.kill(int(m.group(2)), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # exists but not ours (PermissionError), or an absurd pid
    return False


def prune(max_bytes: int, *, keep: Iterable[str] = ()) -> int:
    """Evict least-recently-used entries until the total fits in ``max_bytes``.

    Entries named in ``keep`` are never evicted (the one just built, say), even
    if the cache cannot then fit. Returns the number of entries removed.
    """
    keep = set(keep)
    entries = sorted(list_entries(), key=lambda e: e["last_used"])
    total = sum(e["size"] for e in entries)
    removed = 0
    for e in entries:
        if total <= max_bytes:
            break
        if e["key"] in keep:
            continue
        if _discard(Path(e["path"])):
            total -= e["size"]
            removed += 1
    return removed


def show(key_or_prefix: str) -> dict[str, Any]:
    """The meta of the entry whose key is, or uniquely starts with, ``key_or_prefix``.

    Adds "path", "valid" and "problem"; for an entry with unreadable meta the
    "files" manifest is replaced by the files actually present.
    """
    entry = _resolve(key_or_prefix)
    meta, problem = _validate(entry, entry.name)
    if meta is None:
        try:
            meta = _read_meta(entry)[0]
        except (OSError, ValueError):
            present = (p for p in sorted(entry.rglob("*")) if p.is_file())
            files = {p.relative_to(entry).as_posix(): {"size": p.stat().st_size} for p in present}
            meta = {"key": entry.name, "files": files}
    return {**meta, "path": str(entry), "valid": problem is None, "problem": problem}


def _resolve(prefix: str) -> Path:
    if not prefix:
        raise KeyError("an empty key prefix matches every entry; give a key or a prefix")
    matches = [e for e in _entry_dirs() if e.name.startswith(prefix)]
    if not matches:
        raise KeyError(f"no cache entry matches {prefix!r} in {_kernels_dir()}")
    exact = [e for e in matches if e.name == prefix]
    if exact:
        return exact[0]
    if len(matches) > 1:
        names = ", ".join(e.name[:16] for e in matches[:5])
        more = "" if len(matches) <= 5 else f" and {len(matches) - 5} more"
        raise KeyError(
            f"{prefix!r} is ambiguous: {len(matches)} entries match ({names}{more}); "
            "give more characters"
        )
    return matches[0]
