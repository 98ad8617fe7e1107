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
and sha256. A bad entry is a miss with a ``CacheWarning`` and gets rebuilt,
never an exception.

A cache directory others can write to could be used to plant a shared library
that we then load, so entries (and the cache dir) that are not ours or are
group/other-writable are refused the same way.

Least-recently-used eviction reads the entry directory's mtime, which a lookup
hit refreshes (at most once per entry per process, to keep hits cheap).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import config

__all__ = [
    "CacheWarning",
    "clear",
    "get_or_build",
    "list_entries",
    "lookup",
    "prune",
    "show",
    "stats",
]

META = "meta.json"
# Keys become directory names; anything but these characters could escape the
# cache dir or collide with the ".tmp-"/".del-" working names.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")

# Per-process memos. Keys include meta.json's inode and mtime: a rebuilt entry
# is a new directory with a new meta.json, so a stale memo can never vouch for it.
_verified: set[tuple[str, int, int]] = set()
_touched: set[str] = set()


class CacheWarning(UserWarning):
    """A cache entry (or the cache dir) was unusable; it is treated as a miss."""


# --------------------------------------------------------------------------- paths


def _root() -> Path:
    return config.cache_dir()


def _kernels_dir() -> Path:
    return _root() / "kernels"


def _locks_dir() -> Path:
    return _root() / "locks"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
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


def _validate(entry: Path, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """(meta, None) for a valid entry, (None, reason) otherwise; reason None = absent."""
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
        problem = _check_file(entry, name, info, hash_it=memo not in _verified)
        if problem:
            return None, problem
    _verified.add(memo)
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


def _lookup(key: str, *, warn: bool) -> tuple[Path, dict[str, Any]] | None:
    problem = _roots_problem()
    if problem:
        if warn:
            warnings.warn(f"{problem}; not using the cache", CacheWarning, stacklevel=3)
        return None
    entry = _kernels_dir() / key
    meta, problem = _validate(entry, key)
    if meta is None:
        if problem and warn:
            msg = f"cache entry {entry} is unusable: {problem}; it will be rebuilt"
            warnings.warn(msg, CacheWarning, stacklevel=3)
        return None
    _touch(entry)
    return entry, meta


def get_or_build(key: str, build: Callable[[Path], dict]) -> tuple[Path, dict[str, Any], bool]:
    """Return (entry dir, meta, built?) for ``key``, calling ``build(tmp_dir)`` on a miss.

    ``build`` writes its files into the directory it is given and returns a
    JSON-serialisable dict; the cache adds "key", "created" and the "files"
    manifest and stores it as meta.json. Exceptions from ``build`` propagate
    unchanged and leave nothing behind.
    """
    _check_key(key)
    problem = _roots_problem()
    if problem:
        return _build_uncached(key, build, problem)
    rebuild = config.always_compile()
    if not rebuild:
        hit = _lookup(key, warn=True)  # fast path: no lock, no directory creation
        if hit:
            return (*hit, False)
    try:
        _ensure_dirs()
    except OSError as e:
        return _build_uncached(key, build, f"cannot create cache dir {_root()}: {e}")
    # Checked again now that the dirs exist: we may not be the one who created them.
    problem = _roots_problem()
    if problem:
        return _build_uncached(key, build, problem)

    from filelock import FileLock  # only builders lock; importing it costs milliseconds

    kernels = _kernels_dir()
    final = kernels / key
    with FileLock(str(_locks_dir() / f"{key}.lock")):
        # Another process may have published while we waited for the lock.
        hit = None if rebuild else _lookup(key, warn=False)
        if hit:
            return (*hit, False)
        # Only the lock holder builds this key, so any temp dir for it is a
        # leftover from a process that died mid-build.
        for stale in kernels.glob(f"{key}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if not _discard(final):
            return _build_uncached(key, build, f"cannot remove unusable entry {final}")
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
    _remember_verified(final)
    limit = config.cache_max_bytes()
    if limit is not None:
        prune(limit, keep=(key,))
    return final, meta, True


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


def _remember_verified(entry: Path) -> None:
    """We just hashed every file; spare the first lookup from hashing them again."""
    try:
        st = (entry / META).stat()
    except OSError:
        return
    _verified.add((str(entry), st.st_ino, st.st_mtime_ns))


def _build_uncached(
    key: str, build: Callable[[Path], dict], why: str
) -> tuple[Path, dict[str, Any], bool]:
    """Build into a private temp dir that is never reused: correct, just not cached."""
    warnings.warn(f"{why}; building without the cache", CacheWarning, stacklevel=3)
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


# -------------------------------------------------------------------- inspection


def _entry_dirs() -> list[Path]:
    """Published entry directories (working names contain a '.', keys never do)."""
    try:
        children = list(_kernels_dir().iterdir())
    except OSError:
        return []
    return sorted(p for p in children if _KEY_RE.fullmatch(p.name) and p.is_dir())


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


def read_entry(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The meta of the valid entry at ``path`` (anywhere on disk); ``ValueError`` says why not."""
    entry = Path(path)
    meta, problem = _validate(entry, entry.name)
    if meta is None:
        raise ValueError(f"{entry} is not a usable cache entry: {problem or 'it does not exist'}")
    return meta
