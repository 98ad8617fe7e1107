"""From a launch to a ``CompiledKernel``: the cache key, then the cache, then loading.

``compile_kernel`` computes the key of a specialization from what a new process
can find cheaply (source digests, a fingerprint of this package, the C compiler
and the host), and on a miss has ``pipeline.build_kernel`` write the entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, config

if TYPE_CHECKING:
    from .frontend import ArgSpec
    from .ir import Module

_PACKAGE_DIR = Path(__file__).parent


def compile_kernel(jitfn, specs: list[ArgSpec], backend: str):
    """Compile (or fetch from the cache) one specialization of a kernel.

    A cache hit needs only the key: the source is read and parsed, and the
    compiler loaded, on a miss.
    """
    from . import cache
    from .compiled import CompiledKernel

    name = jitfn.fn.__name__
    key = cache_key(_key_parts(jitfn, specs, backend))
    timings: dict[str, float] = {}
    optimized_in_memory: list[Module] = []

    def build(tmp: Path) -> dict:
        from .pipeline import build_kernel

        entry, optimized = build_kernel(tmp, jitfn, specs, backend, timings)
        optimized_in_memory.append(optimized)
        return entry

    t0 = time.perf_counter()
    # A hit loads the shared object (or the interpreter parses the optimized IR) right
    # away: those are hashed; the other files are listings, read when asked for.
    loaded = "kernel.opt.ir" if backend == "interpret" else "kernel.so"
    path, entry_meta, built = cache.get_or_build(key, build, hashed=(loaded,))
    if "timing" in config.debug_flags():
        what = "compiled" if built else "cache hit"
        print(
            f"[pypto] {name} ({backend}): {what} in "
            f"{(time.perf_counter() - t0) * 1e3:.1f} ms {entry_meta.get('timings', {})}",
            file=sys.stderr,
        )
    asm = StageTexts(path)
    module = None
    if backend == "interpret":
        if optimized_in_memory:
            module = optimized_in_memory[0]
        else:
            from .ir.parser import parse_module

            module = parse_module(asm["opt_ir"])
    kernel = CompiledKernel({**entry_meta, "cache_key": key}, path, asm, module)
    kernel.cache_hit = not built
    return kernel


class StageTexts(Mapping[str, str]):
    """``CompiledKernel.asm`` of a cache entry: the stage texts, read on first use.

    A launch never needs them, so a process that only launches never reads them.
    """

    def __init__(self, entry: Path):
        self._entry = entry
        self._texts: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._texts is None:
            from .compiled import read_asm

            self._texts = read_asm(self._entry)
        return self._texts

    def __getitem__(self, stage: str) -> str:
        return self._load()[stage]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return repr(self._load())


def _key_parts(jitfn, specs: list[ArgSpec], backend: str) -> dict:
    """Everything that determines the artifact, cheap to compute in a fresh process."""
    parts = {
        "source": jitfn.dependency_digest,
        "specs": [repr(s) for s in specs],
        "backend": backend,
        "debug": jitfn.debug,
        "package": package_digest(),
    }
    if backend != "interpret":
        from .runtime.compiler import cc_identity, compile_flags, host_features_key

        parts.update(cc=cc_identity(), flags=compile_flags(backend), host=host_features_key())
    return parts


_package_digest: str | None = None
_SOURCE_SUFFIXES = (".py", ".lark", ".c", ".h")


def package_digest() -> str:
    """Identifies this package's compiler: version plus a fingerprint of its sources.

    Uses file sizes and mtimes rather than contents so that a new process pays a
    stat per file, not a read; any edit changes the fingerprint.
    """
    global _package_digest
    if _package_digest is None:
        from .runtime.shim import runtime_source_dir

        files = _source_files([str(_PACKAGE_DIR), str(runtime_source_dir())])
        text = "\n".join(f"{path}:{size}:{mtime}" for path, size, mtime in sorted(files))
        _package_digest = hashlib.sha256(f"{__version__}\n{text}".encode()).hexdigest()
    return _package_digest


def _source_files(roots: list[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every source file under ``roots``, in no particular order."""
    found, stack = [], list(roots)
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.name.endswith(_SOURCE_SUFFIXES):
                    st = e.stat()
                    found.append((e.path, st.st_size, st.st_mtime_ns))
                elif e.name != "__pycache__" and e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return found


def cache_key(parts: dict) -> str:
    """A stable hex key for everything that determines a compiled artifact."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:40]
