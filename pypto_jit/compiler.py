"""One specialization from source to artifact: lower -> verify -> passes -> {C -> .so}.

``compile_module`` produces the IR for a launch; ``build_entry`` writes a
cache entry for the ``cpu``/``sim`` backends. Stage timings go into the
metadata (and are printed with ``PYPTO_DEBUG=timing``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__, config
from .frontend import ArgSpec, KernelSource, lower
from .ir import Module
from .ir.printer import print_module
from .ir.verifier import verify
from .passes import run_pipeline

_PACKAGE_DIR = Path(__file__).parent


def compile_module(src: KernelSource, names: Sequence[str], specs: Sequence[ArgSpec],
                   timings: dict[str, float]) -> tuple[Module, Module]:
    """The lowered and the optimized module for one specialization."""
    t0 = time.perf_counter()
    module = lower(src, names, specs)
    verify(module)
    t1 = time.perf_counter()
    dump = _dump if config.dump_ir() else None
    if dump:
        dump("lowered", module)
    optimized = run_pipeline(module, verify=verify, dump=dump)
    t2 = time.perf_counter()
    timings["frontend"] = t1 - t0
    timings["passes"] = t2 - t1
    return module, optimized


def _dump(stage: str, module: Module) -> None:
    print(f"// ----- {module.name}: after {stage} -----", file=sys.stderr)
    print(print_module(module), file=sys.stderr)


def build_entry(tmp: Path, src: KernelSource, module: Module, optimized: Module, backend: str,
                meta: dict, timings: dict[str, float]) -> dict:
    """Write kernel.py/.ir/.opt.ir/.c/.so into ``tmp``; return the entry's metadata."""
    from .codegen import render_c
    from .runtime.compiler import compile_shared

    t0 = time.perf_counter()
    c_source = render_c(optimized, backend)
    t1 = time.perf_counter()
    (tmp / "kernel.py").write_text(src.text)
    (tmp / "kernel.ir").write_text(print_module(module))
    (tmp / "kernel.opt.ir").write_text(print_module(optimized))
    (tmp / "kernel.c").write_text(c_source)
    result = compile_shared(tmp / "kernel.c", tmp / "kernel.so", backend)
    timings["render"] = t1 - t0
    timings["cc"] = float(result["seconds"])
    return {**meta, "compiler_cmd": list(map(str, result["cmd"])), "timings": dict(timings)}


_package_digest: str | None = None


def package_digest() -> str:
    """Identifies this package's compiler: version plus a fingerprint of its sources.

    Uses file sizes and mtimes rather than contents so that a new process pays
    microseconds, not milliseconds; any edit changes the fingerprint.
    """
    global _package_digest
    if _package_digest is None:
        h = hashlib.sha256(__version__.encode())
        roots = [_PACKAGE_DIR]
        from .runtime.shim import runtime_source_dir

        roots.append(runtime_source_dir())
        for root in roots:
            for path in sorted(root.rglob("*")):
                if path.suffix in (".py", ".lark", ".c", ".h"):
                    st = path.stat()
                    h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
        _package_digest = h.hexdigest()
    return _package_digest


def cache_key(parts: dict) -> str:
    """A stable hex key for everything that determines a compiled artifact."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:40]
