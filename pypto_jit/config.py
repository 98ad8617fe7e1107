"""Environment knobs, read in one place.

Every setting a user can change from the environment is named here so that the
rest of the package never calls ``os.environ`` directly.
"""

from __future__ import annotations

import os
from pathlib import Path

BACKENDS = ("cpu", "sim", "interpret")


def cache_dir() -> Path:
    """``PYPTO_CACHE_DIR``, else ``$XDG_CACHE_HOME/pypto``, else ``~/.cache/pypto``."""
    explicit = os.environ.get("PYPTO_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pypto"


def default_backend() -> str:
    backend = os.environ.get("PYPTO_BACKEND", "cpu")
    if backend not in BACKENDS:
        raise ValueError(f"PYPTO_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def always_compile() -> bool:
    return os.environ.get("PYPTO_ALWAYS_COMPILE", "") not in ("", "0")


def cache_max_bytes() -> int | None:
    value = os.environ.get("PYPTO_CACHE_MAX_BYTES")
    return int(value) if value else None


def dump_ir() -> bool:
    return os.environ.get("PYPTO_DUMP_IR", "") not in ("", "0")


def debug_flags() -> frozenset[str]:
    """``PYPTO_DEBUG=timing,ir`` -> {"timing", "ir"}."""
    return frozenset(f.strip() for f in os.environ.get("PYPTO_DEBUG", "").split(",") if f.strip())
