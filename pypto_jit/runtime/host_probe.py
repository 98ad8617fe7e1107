"""Probing the C compiler and the host once per (compiler, CPU): identity, ISA flags, libmvec.

``compiler._host_record`` keeps the answer on disk, so this runs the compiler only in
the first process that needs it; a warm start never imports this module.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from .compiler import CCompilerError


def probe(argv: list[str]) -> dict:
    """Ask the compiler ``argv`` who it is and what ``-march=native`` means here."""
    version = _run_text([*argv, "--version"]).splitlines()
    identity = f"{os.path.realpath(argv[0])} {version[0] if version else '?'}".strip()
    isa_flags, features = _resolve_native(argv)
    avx512 = "-mavx512f" in isa_flags or "+avx512f" in features
    key = " ".join(features) if features else "generic-" + platform.machine()
    return {
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


def write_atomically(path: Path, text: str) -> None:
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
