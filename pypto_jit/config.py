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


# ``os.environ.get`` costs about a microsecond (it encodes the key); the launch path
# reads PYPTO_BACKEND through the underlying dict where the platform has one.
_ENV_DATA = getattr(os.environ, "_data", None)
_BACKEND_KEY = os.environ.encodekey("PYPTO_BACKEND") if _ENV_DATA is not None else None
_DECODED = {None: "cpu", **{os.environ.encodevalue(b): b for b in BACKENDS}}


def default_backend() -> str:
    """``PYPTO_BACKEND`` (default ``cpu``), read at every call so changes take effect."""
    if _ENV_DATA is not None:
        backend = _DECODED.get(_ENV_DATA.get(_BACKEND_KEY))
        if backend is not None:
            return backend
    backend = os.environ.get("PYPTO_BACKEND", "cpu")
    if backend not in BACKENDS:
        raise ValueError(f"PYPTO_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def fast_launch() -> bool:
    """``PYPTO_FAST_LAUNCH=0`` keeps launches on the Python path (the C one is the default)."""
    return os.environ.get("PYPTO_FAST_LAUNCH", "1") not in ("", "0")


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
