"""The on-disk cache of compiled kernels.

Layout (under ``config.cache_dir()``)::

    kernels/<key>/          one published entry: the builder's files + meta.json
    kernels/<key>.tmp-*     an entry being built (renamed to <key> when complete)
    kernels/<key>.del-*     an entry being removed (renamed away first)
    locks/<key>.lock        per-key lock so only one process builds a key

Publishing is a single ``os.rename`` of a complete directory, so readers see an
entry either whole or not at all and never need a lock. Whatever still goes
wrong (a crash mid-write on some filesystems, a disk that filled up, a user
editing files) is caught by the manifest in ``meta.json``: every file's size
and sha256. A hit checks every size and, once per process, the hashes of the
files its caller loads (``get_or_build(..., hashed=...)``; all by default). A
bad entry is a miss with a ``CacheWarning`` and gets rebuilt, never an exception.

A cache directory others can write to could be used to plant a shared library
that we then load, so entries (and the cache dir) that are not ours or are
group/other-writable are refused the same way.

Least-recently-used eviction reads the entry directory's mtime, which a lookup
hit refreshes (at most once per entry per process, to keep hits cheap).

This module is what a hit needs; building (``build``) and listing, pruning and
clearing (``admin``) load on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from .. import config

__all__ = [
    "CacheWarning",
    "clear",
    "get_or_build",
    "list_entries",
    "lookup",
    "prune",
    "read_entry",
    "show",
    "stats",
]

META = "meta.json"
# Keys become directory names; anything but these characters could escape the
# cache dir or collide with the ".tmp-"/".del-" working names. (A set, not a regex:
# compiling one costs a new process a tenth of a millisecond.)
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# Per-process memos. Keys include meta.json's inode and mtime: a rebuilt entry
# is a new directory with a new meta.json, so a stale memo can never vouch for it.
_verified: set[tuple[str, int, int, str]] = set()  # (entry, ino, mtime, file) hashed
_touched: set[str] = set()

# Listing, pruning and clearing load on first use: a launch never needs them.
_ADMIN = ("clear", "list_entries", "prune", "show", "stats")


def __getattr__(name: str) -> Any:
    if name in _ADMIN:
        from . import admin

        return getattr(admin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CacheWarning(UserWarning):
    """A cache entry (or the cache dir) was unusable; it is treated as a miss."""


# --------------------------------------------------------------------------- paths


def _root() -> Path:
    return config.cache_dir()


def _kernels_dir() -> Path:
    return _root() / "kernels"


def _locks_dir() -> Path:
    return _root() / "locks"


def _is_key(name: object) -> bool:
    """Whether ``name`` can be a cache key: 1 to 128 of [A-Za-z0-9_-]."""
    return isinstance(name, str) and 0 < len(name) <= 128 and _KEY_CHARS.issuperset(name)


def _check_key(key: str) -> None:
    if not _is_key(key):
        raise ValueError(f"invalid cache key {key!r}: expected 1-128 of [A-Za-z0-9_-]")


def _ensure_dirs() -> None:
    """Create the cache dirs private to the user (0o700; parents get default perms)."""
    for d in (_root(), _kernels_dir(), _locks_dir()):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)


# ----------------------------------------------------------------------- security


def _insecure(st: os.stat_result) -> str | None:
    """Why a directory with this stat must not be trusted, or None if it is fine."""
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group/others (mode {stat.S_IMODE(st.st_mode):#o})"
    return None


def _dir_problem(path: Path) -> str | None:
    """Problem with a cache root: missing is fine here, insecure is not.

    Follows symlinks: pointing PYPTO_CACHE_DIR at a link to your own directory is fine.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot stat: {e}"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    return _insecure(st)


def _roots_problem() -> str | None:
    for d in (_root(), _kernels_dir()):
        problem = _dir_problem(d)
        if problem:
            return f"cache dir {d} is {problem}; fix with `chmod 700 {d}` or set PYPTO_CACHE_DIR"
    return None


# ---------------------------------------------------------------------- validation


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_meta(entry: Path) -> tuple[dict[str, Any], os.stat_result]:
    meta_path = entry / META
    with open(meta_path, encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        meta = json.load(f)
    if not isinstance(meta, dict):
        raise ValueError("meta.json is not a JSON object")
    return meta, st


def _validate(
    entry: Path, key: str, hashed: Collection[str] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """(meta, None) for a valid entry, (None, reason) otherwise; reason None = absent.

    Every file's size is checked; the sha256 of those in ``hashed`` (default: all).
    """
    try:
        st = entry.lstat()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"cannot stat entry: {e}"
    if not stat.S_ISDIR(st.st_mode):
        return None, "entry is not a directory"
    problem = _insecure(st)
    if problem:
        return None, f"entry is {problem}"
    try:
        meta, meta_st = _read_meta(entry)
    except FileNotFoundError:
        return None, "meta.json is missing"
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"meta.json is unreadable ({type(e).__name__}: {e})"
    if meta.get("key") != key:
        return None, f"meta.json names key {meta.get('key')!r}"
    files = meta.get("files")
    if not isinstance(files, dict):
        return None, "meta.json has no file manifest"
    memo = (str(entry), meta_st.st_ino, meta_st.st_mtime_ns)
    # Sizes are re-checked on every lookup (a stat each); hashes once per process.
    for name, info in files.items():
        hash_it = (hashed is None or name in hashed) and (*memo, name) not in _verified
        problem = _check_file(entry, name, info, hash_it=hash_it)
        if problem:
            return None, problem
        if hash_it:
            _verified.add((*memo, name))
    return meta, None


def _check_file(entry: Path, name: str, info: Any, *, hash_it: bool) -> str | None:
    if not isinstance(info, dict) or not isinstance(info.get("size"), int):
        return f"manifest record for {name!r} is malformed"
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        return f"manifest names a path outside the entry: {name!r}"
    try:
        st = (entry / rel).lstat()
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as e:
        return f"cannot stat {name}: {e}"
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a regular file"
    if st.st_size != info["size"]:
        return f"{name} has {st.st_size} bytes, manifest says {info['size']} (truncated?)"
    if hash_it:
        try:
            digest = _sha256(entry / rel)
        except OSError as e:
            return f"cannot read {name}: {e}"
        if digest != info.get("sha256"):
            return f"{name} does not match its sha256 (corrupted)"
    return None


def _touch(entry: Path) -> None:
    """Record a use for LRU eviction: bump the entry dir's mtime, once per process."""
    name = str(entry)
    if name in _touched:
        return
    try:
        os.utime(entry)
    except OSError:
        pass  # LRU order is advisory; a read-only cache still serves hits
    _touched.add(name)


# ---------------------------------------------------------------------- public API


def lookup(key: str) -> tuple[Path, dict[str, Any]] | None:
    """A valid entry for ``key`` as (entry dir, meta), or None (with a warning if bad)."""
    _check_key(key)
    return _lookup(key, warn=True)


def _lookup(
    key: str, *, warn: bool, hashed: Collection[str] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    problem = _roots_problem()
    if problem:
        if warn:
            warnings.warn(f"{problem}; not using the cache", CacheWarning, stacklevel=3)
        return None
    entry = _kernels_dir() / key
    meta, problem = _validate(entry, key, hashed)
    if meta is None:
        if problem and warn:
            msg = f"cache entry {entry} is unusable: {problem}; it will be rebuilt"
            warnings.warn(msg, CacheWarning, stacklevel=3)
        return None
    _touch(entry)
    return entry, meta


def get_or_build(
    key: str, build: Callable[[Path], dict], *, hashed: Collection[str] | None = None
) -> tuple[Path, dict[str, Any], bool]:
    """Return (entry dir, meta, built?) for ``key``, calling ``build(tmp_dir)`` on a miss.

    ``build`` writes its files into the directory it is given and returns a
    JSON-serialisable dict; the cache adds "key", "created" and the "files"
    manifest and stores it as meta.json. Exceptions from ``build`` propagate
    unchanged and leave nothing behind.

    A hit checks the size of every file and the sha256 (once per process) of the
    files named in ``hashed``, by default all of them: a caller that loads only
    some of the files right away need not read the others.
    """
    _check_key(key)
    problem = _roots_problem()
    rebuild = config.always_compile()
    if not problem and not rebuild:
        hit = _lookup(key, warn=True, hashed=hashed)  # no lock, no directory creation
        if hit:
            return (*hit, False)
    from .build import build_and_publish  # a hit never needs the build machinery

    return build_and_publish(key, build, rebuild, problem)


def read_entry(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The meta of the valid entry at ``path`` (anywhere on disk); ``ValueError`` says why not."""
    entry = Path(path)
    meta, problem = _validate(entry, entry.name)
    if meta is None:
        raise ValueError(f"{entry} is not a usable cache entry: {problem or 'it does not exist'}")
    return meta
