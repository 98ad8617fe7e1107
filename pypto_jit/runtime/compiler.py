"""The C compiler driver: which compiler, which flags, and running it.

Generated kernels target the host ISA (wide vector code built without it runs ~50x slower),
so ``-march=native`` is resolved once into concrete flags and a feature key that goes into
every cache key. Resolving costs a compiler run (milliseconds), so the result is kept both
in-process and on disk under ``cache_dir()/host/``; a warm process only stats the compiler
binary, reads a little of ``/proc/cpuinfo`` and one small JSON file.

``-ffast-math`` is never used: with gcc < 13 it links ``crtfastmath.o`` into the shared object,
which turns on flush-to-zero for the whole Python process when the object is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pypto_jit import config

MODES = ("cpu", "sim")

# Flags that give C its usual meaning for generated code, minus the parts that block
# vectorization (errno from math calls, trapping FP) and the parts the renderer does not
# want to reason about (signed overflow is UB, type-based aliasing).
_SEMANTIC_FLAGS = (
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fwrapv",
    "-fno-strict-aliasing",
)
_OPT_LEVEL = {"cpu": "-O3", "sim": "-O1"}

# cffi dlcloses a library when the FFI object that opened it is collected. For the shim that
# would unmap code its pool threads are running, for a kernel code that a program pointer
# still names; both crash. ``-z nodelete`` makes dlclose a no-op for the object (ELF only).
NODELETE_FLAGS: tuple[str, ...] = (
    ("-Wl,-z,nodelete",) if sys.platform.startswith(("linux", "freebsd")) else ()
)
_HOST_RECORD_VERSION = 2


class CCompilerError(RuntimeError):
    """The C compiler failed; the message holds the command and the compiler's stderr."""

    def __init__(self, cmd: Sequence[str], stderr: str, returncode: int | None = None):
        self.cmd = list(cmd)
        self.stderr = stderr
        self.returncode = returncode
        import shlex

        status = f"exit status {returncode}" if returncode is not None else "could not run"
        super().__init__(
            f"C compiler failed ({status}):\n  {shlex.join(self.cmd)}\n{stderr.rstrip()}"
        )


def find_cc() -> str:
    """``$CC`` (may hold extra words, e.g. ``ccache gcc``), else the first of cc, gcc, clang."""
    return _resolve_cc()[0]


def cc_command() -> list[str]:
    """``find_cc()`` split into argv words, ready to prefix a command line."""
    return list(_resolve_cc()[1])


# A PATH search costs tens of microseconds and every launch-time helper needs the
# compiler, so the answer is kept for as long as CC and PATH stay the same.
_found_cc: dict[tuple[str | None, str | None], tuple[str, tuple[str, ...]]] = {}


def _resolve_cc() -> tuple[str, tuple[str, ...]]:
    """(``find_cc()``, its argv words); failures are not remembered."""
    env = (os.environ.get("CC"), os.environ.get("PATH"))
    found = _found_cc.get(env)
    if found is None:
        found = _found_cc[env] = _search_cc(env[0])
    return found


def _search_cc(explicit: str | None) -> tuple[str, tuple[str, ...]]:
    explicit = (explicit or "").strip()
    if explicit:
        import shlex  # only an explicit $CC needs splitting

        words = shlex.split(explicit)
        path = shutil.which(words[0])
        if path is None:
            raise RuntimeError(f"CC={explicit!r}: {words[0]!r} is not an executable on PATH")
        argv = (path, *words[1:])
        return (shlex.join(argv) if len(argv) > 1 else path), argv
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path is not None:
            return path, (path,)
    raise RuntimeError(
        "no C compiler found: set CC or install cc, gcc or clang "
        "(the 'interpret' backend runs without one)"
    )


def cc_identity() -> str:
    """The compiler's resolved path and the first line of its ``--version``."""
    return _host_record(find_cc())["identity"]


def host_isa_flags() -> list[str]:
    """Concrete flags equivalent to ``-march=native`` for this compiler on this machine."""
    return list(_host_record(find_cc())["isa_flags"])


def host_features_key() -> str:
    """A stable string naming the resolved arch and CPU features, for cache keys."""
    return _host_record(find_cc())["features_key"]


def host_has_avx512() -> bool:
    return bool(_host_record(find_cc())["avx512"])


def include_dir() -> Path:
    """The directory holding ``pypto_runtime.h``."""
    from pypto_jit.runtime.shim import runtime_source_dir

    return runtime_source_dir() / "include"


def compile_flags(mode: str) -> list[str]:
    """Flags for a kernel shared object; ``mode`` is "cpu" (fast) or "sim" (checking)."""
    if mode not in MODES:
        raise ValueError(f"compile mode must be one of {MODES}, not {mode!r}")
    flags = ["-std=gnu11", _OPT_LEVEL[mode], "-fPIC", "-shared", *host_isa_flags()]
    flags += _SEMANTIC_FLAGS
    if host_has_avx512():
        # gcc/clang default to 256-bit vectors even where AVX-512 exists; kernels are
        # throughput loops where the full width pays.
        flags.append("-mprefer-vector-width=512")
    if _host_record(find_cc()).get("libmvec"):
        flags.append("-DPYPTO_USE_LIBMVEC")
    flags += [*NODELETE_FLAGS, "-I", str(include_dir())]
    return flags


def link_libraries() -> list[str]:
    """Libraries after the source file: libmvec (when present) must come before libm."""
    return ["-lmvec", "-lm"] if _host_record(find_cc()).get("libmvec") else ["-lm"]


def compile_shared(
    src: Path, out: Path, mode: str, extra_flags: Sequence[str] = ()
) -> dict[str, object]:
    """Compile one C file into a shared object; return the command and the time it took."""
    cmd = [
        *cc_command(),
        *compile_flags(mode),
        *extra_flags,
        "-o",
        str(out),
        str(src),
        *link_libraries(),
    ]
    return run_compiler(cmd)


def run_compiler(cmd: Sequence[str]) -> dict[str, object]:
    """Run a compiler command line; raise CCompilerError with its stderr when it fails."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CCompilerError(cmd, str(exc)) from exc
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise CCompilerError(cmd, proc.stderr or proc.stdout, proc.returncode)
    return {"cmd": list(cmd), "seconds": seconds}


# ----------------------------------------------------------------------------- host probe


@functools.cache
def _host_record(cc: str) -> dict:
    """Identity, ISA flags and feature key for ``cc`` on this host; disk-cached.

    The disk file is named by a cheap fingerprint (the compiler binary's path, size and
    mtime, and this CPU's model and flags) so that a cache directory shared between machines
    or compiler upgrades never hands out another host's ``-march``.
    """
    path = config.cache_dir() / "host" / f"{_fingerprint(cc)}.json"
    try:
        record = json.loads(path.read_text())
        if record.get("version") == _HOST_RECORD_VERSION:
            return record
    except (OSError, ValueError):
        pass  # missing or unreadable: probe again and rewrite it
    from .host_probe import probe, write_atomically  # runs the compiler: first time only

    record = {"version": _HOST_RECORD_VERSION, **probe(_words(cc))}
    write_atomically(path, json.dumps(record, indent=1))
    return record


def _fingerprint(cc: str) -> str:
    argv = _words(cc)
    # The binary symlinks resolve to (device, inode) names it as realpath would, without
    # a readlink per path component.
    st = os.stat(argv[0])
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    parts = [*argv, *map(str, ident), _cpu_fingerprint()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _words(cc: str) -> list[str]:
    """``cc`` as argv words: the ones found with it, else split as a shell would."""
    found = _found_cc.get((os.environ.get("CC"), os.environ.get("PATH")))
    if found is not None and found[0] == cc:
        return list(found[1])
    import shlex

    return shlex.split(cc)


def _cpu_fingerprint() -> str:
    """The first processor block of /proc/cpuinfo (model, flags), or uname elsewhere."""
    keep = ("model name", "flags", "features", "cpu model", "isa", "cpu", "vendor_id")
    lines: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if lines:
                        break
                    continue
                if line.split(":", 1)[0].strip().lower() in keep:
                    lines.append(line.strip())
    except OSError:
        pass
    return "\n".join(lines) or " ".join(platform.uname())
