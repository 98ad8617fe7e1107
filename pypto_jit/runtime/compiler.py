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

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
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
    record = _probe(cc)
    _write_atomically(path, json.dumps(record, indent=1))
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


def _probe(cc: str) -> dict:
    argv = _words(cc)
    version = _run_text([*argv, "--version"]).splitlines()
    identity = f"{os.path.realpath(argv[0])} {version[0] if version else '?'}".strip()
    isa_flags, features = _resolve_native(argv)
    avx512 = "-mavx512f" in isa_flags or "+avx512f" in features
    key = " ".join(features) if features else "generic-" + platform.machine()
    return {
        "version": _HOST_RECORD_VERSION,
        "identity": identity,
        "isa_flags": isa_flags,
        "features_key": key,
        "avx512": avx512,
        "libmvec": _has_libmvec(argv),
    }


def _has_libmvec(argv: list[str]) -> bool:
    """Whether the toolchain links glibc's vector math library (x86_64 glibc only).

    With it, loops over expf/logf/sinf/... vectorize (``_ZGVeN16v_expf`` and friends);
    without it the generated C keeps scalar calls.
    """
    if platform.machine() not in ("x86_64", "AMD64") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        found = _run_text([*argv, "-print-file-name=libmvec.so"]).strip()
    except CCompilerError:
        return False
    return os.path.isabs(found) and os.path.exists(found)


def _resolve_native(argv: list[str]) -> tuple[list[str], list[str]]:
    """Ask the driver what ``-march=native`` (or ``-mcpu=native``) expands to.

    gcc prints the cc1 line with ``-march=<cpu>`` and one ``-m<feature>``/``-mno-<feature>``
    per ISA extension; those are valid driver flags, so they are used as they are. clang
    prints ``-target-cpu``/``-target-feature`` (cc1 spellings with no driver equivalent for
    every feature), so for clang the flag stays ``-march=native`` and only the key is
    concrete; the key is what keeps cache entries from crossing hosts.
    """
    for native in ("-march=native", "-mcpu=native"):
        try:
            out = _run_text([*argv, native, "-###", "-E", "-x", "c", os.devnull], stderr=True)
        except CCompilerError:
            continue
        for line in out.splitlines():
            words = _split_quiet(line)
            if not words:
                continue
            if "-target-cpu" in words:  # clang
                cpu = words[words.index("-target-cpu") + 1]
                feats = sorted(w for i, w in enumerate(words) if words[i - 1] == "-target-feature")
                return [native], [f"cpu={cpu}", *feats]
            if any(w.endswith("cc1") for w in words[:1]):  # gcc
                isa = [w for w in words if _is_isa_flag(w)]
                isa += [f"--param={words[i + 1]}" for i, w in enumerate(words) if w == "--param"]
                return isa, isa
    return [], []


def _is_isa_flag(word: str) -> bool:
    # -march/-mtune/-mcpu and the per-feature switches; not -mllvm or other driver plumbing.
    return word.startswith("-m") and not word.startswith("-mllvm")


def _split_quiet(line: str) -> list[str]:
    import shlex

    try:
        return shlex.split(line)
    except ValueError:
        return []


def _run_text(cmd: list[str], stderr: bool = False) -> str:
    """Run a short probe command and return its stdout (or stderr, where -### writes)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CCompilerError(cmd, str(exc)) from exc
    if proc.returncode != 0:
        raise CCompilerError(cmd, proc.stderr, proc.returncode)
    return proc.stderr if stderr else proc.stdout


def _write_atomically(path: Path, text: str) -> None:
    """Write a small file so readers see the old content or the new, never half of it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    except OSError:
        return  # a read-only cache only costs a probe per process
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
