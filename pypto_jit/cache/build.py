"""The miss path of the cache: build under a per-key lock and publish with one rename."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import config
from . import (
    META,
    CacheWarning,
    _ensure_dirs,
    _kernels_dir,
    _locks_dir,
    _lookup,
    _root,
    _roots_problem,
    _sha256,
    _verified,
)


def build_and_publish(
    key: str, build: Callable[[Path], dict], rebuild: bool, problem: str | None
) -> tuple[Path, dict[str, Any], bool]:
    """``get_or_build`` after its lock-free lookup missed (or was skipped)."""
    if problem:
        return _build_uncached(key, build, problem)
    try:
        _ensure_dirs()
    except OSError as e:
        return _build_uncached(key, build, f"cannot create cache dir {_root()}: {e}")
    # Checked again now that the dirs exist: we may not be the one who created them.
    problem = _roots_problem()
    if problem:
        return _build_uncached(key, build, problem)

    from filelock import FileLock  # only builders lock; importing it costs milliseconds

    with FileLock(str(_locks_dir() / f"{key}.lock")):
        # Another process may have published while we waited for the lock.
        hit = None if rebuild else _lookup(key, warn=False)
        if hit:
            return (*hit, False)
        published = _build_locked(key, build)
        if published is None:
            final = _kernels_dir() / key
            return _build_uncached(key, build, f"cannot remove unusable entry {final}")
    final, meta = published
    _remember_verified(final, meta)
    limit = config.cache_max_bytes()
    if limit is not None:
        from .admin import prune

        prune(limit, keep=(key,))
    return final, meta, True


def _build_locked(key: str, build: Callable[[Path], dict]) -> tuple[Path, dict[str, Any]] | None:
    """Build ``key`` and publish it, holding its lock; None if the old entry would not go."""
    kernels = _kernels_dir()
    final = kernels / key
    # Only the lock holder builds this key, so any temp dir for it is a
    # leftover from a process that died mid-build.
    for stale in kernels.glob(f"{key}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if not _discard(final):
        return None
    tmp = kernels / f"{key}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.mkdir(tmp, 0o700)
    try:
        meta = _run_builder(tmp, key, build)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Publishing is a use; the in-process touch memo stays clear so a later
    # lookup hit still refreshes the LRU time.
    os.utime(final)
    return final, meta


def _run_builder(tmp: Path, key: str, build: Callable[[Path], dict]) -> dict[str, Any]:
    """Call the builder in ``tmp`` and write meta.json with the manifest."""
    result = build(tmp)
    if not isinstance(result, dict):
        raise TypeError(f"cache builder must return a dict, got {type(result).__name__}")
    meta = dict(result)
    meta["key"] = key
    meta["created"] = round(time.time(), 3)
    meta["files"] = {
        p.relative_to(tmp).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(tmp.rglob("*"))
        if p.is_file() and not p.is_symlink() and p != tmp / META
    }
    text = json.dumps(meta, indent=2, sort_keys=True)
    # No fsync: a torn write after a crash fails the manifest check and is rebuilt.
    (tmp / META).write_text(text, encoding="utf-8")
    # Hand back what a later hit will read (tuples become lists), not the builder's dict.
    return json.loads(text)


def _remember_verified(entry: Path, meta: dict[str, Any]) -> None:
    """We just hashed every file; spare the first lookup from hashing them again."""
    try:
        st = (entry / META).stat()
    except OSError:
        return
    _verified.update((str(entry), st.st_ino, st.st_mtime_ns, name) for name in meta["files"])


def _build_uncached(
    key: str, build: Callable[[Path], dict], why: str
) -> tuple[Path, dict[str, Any], bool]:
    """Build into a private temp dir that is never reused: correct, just not cached."""
    warnings.warn(f"{why}; building without the cache", CacheWarning, stacklevel=4)
    tmp = Path(tempfile.mkdtemp(prefix=f"pypto-{key}-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    try:
        meta = _run_builder(tmp, key, build)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, meta, True


def _discard(entry: Path) -> bool:
    """Remove an entry so readers never see it half-deleted; False if it would not go."""
    if not os.path.lexists(entry):
        return True
    trash = entry.with_name(f"{entry.name}.del-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(entry, trash)
    except FileNotFoundError:
        return True  # someone else removed it first
    except OSError:
        return False
    if trash.is_symlink() or not trash.is_dir():
        trash.unlink(missing_ok=True)
    else:
        shutil.rmtree(trash, ignore_errors=True)
    return True
