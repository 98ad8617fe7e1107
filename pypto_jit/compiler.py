"""One specialization from source to artifact: lower -> verify -> passes -> {C -> .so}.

``compile_module`` produces the IR for a launch; ``build_entry`` writes a
cache entry for the ``cpu``/``sim`` backends. Stage timings go into the
metadata (and are printed with ``PYPTO_DEBUG=timing``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, config
from .errors import CompilationError
from .frontend import ArgSpec, KernelSource
from .params import describe_params, directions, param_meta

if TYPE_CHECKING:
    from .ir import Module

_PACKAGE_DIR = Path(__file__).parent


def compile_module(
    src: KernelSource, names: Sequence[str], specs: Sequence[ArgSpec], timings: dict[str, float]
) -> tuple[Module, Module]:
    """The lowered and the optimized module for one specialization."""
    from .frontend import lower
    from .ir.verifier import verify
    from .passes import run_pipeline

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
    from .ir.printer import print_module

    print(f"// ----- {module.name}: after {stage} -----", file=sys.stderr)
    print(print_module(module), file=sys.stderr)


def build_entry(
    tmp: Path,
    src: KernelSource,
    module: Module,
    optimized: Module,
    backend: str,
    meta: dict,
    timings: dict[str, float],
    debug: bool = False,
) -> dict:
    """Write kernel.py, kernel.ir, kernel.opt.ir and, for C backends, kernel.c and kernel.so."""
    from .ir.printer import print_module

    (tmp / "kernel.py").write_text(src.text)
    (tmp / "kernel.ir").write_text(print_module(module))
    (tmp / "kernel.opt.ir").write_text(print_module(optimized))
    if backend == "interpret":
        return {**meta, "timings": dict(timings)}
    from .codegen import render_c
    from .runtime.compiler import compile_shared

    t0 = time.perf_counter()
    c_source = render_c(optimized, backend, debug=debug)
    if backend == "cpu":  # the checked variant, for reading beside the fast one
        (tmp / "kernel.sim.c").write_text(render_c(optimized, "sim", debug=debug))
    timings["render"] = time.perf_counter() - t0
    (tmp / "kernel.c").write_text(c_source)
    result = compile_shared(tmp / "kernel.c", tmp / "kernel.so", backend)
    timings["cc"] = float(result["seconds"])
    return {**meta, "compiler_cmd": list(map(str, result["cmd"])), "timings": dict(timings)}


def compile_kernel(jitfn, specs: list[ArgSpec], backend: str):
    """Compile (or fetch from the cache) one specialization of a kernel.

    A cache hit needs only the key: the source is read and parsed on a miss.
    """
    from . import cache
    from .compiled import CompiledKernel

    name = jitfn.fn.__name__
    key = cache_key(_key_parts(jitfn, specs, backend))
    timings: dict[str, float] = {}
    optimized_in_memory: list[Module] = []

    def build(tmp: Path) -> dict:
        t0 = time.perf_counter()
        src = jitfn.source
        meta = _entry_meta(src, backend)
        module, optimized = compile_module(src, jitfn.arg_names, specs, timings)
        optimized_in_memory.append(optimized)
        dirs = directions(optimized)
        _check_outputs(jitfn, specs, dirs)
        params = _params_meta(jitfn, specs, dirs)
        signature = f"{name}({describe_params(params)})"
        entry = build_entry(
            tmp,
            src,
            module,
            optimized,
            backend,
            {**meta, "params": params, "signature": signature},
            timings,
            debug=jitfn.debug,
        )
        entry["compile_seconds"] = time.perf_counter() - t0
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


def _entry_meta(src: KernelSource, backend: str) -> dict:
    meta = {
        "name": src.fn.__name__,
        "backend": backend,
        "source_file": src.file,
        "package_version": __version__,
    }
    if backend != "interpret":
        from .runtime.compiler import host_features_key
        from .runtime.shim import ABI_VERSION

        meta.update(host=host_features_key(), abi=ABI_VERSION)
    return meta


def _params_meta(jitfn, specs: list[ArgSpec], dirs: dict[int, str]) -> list[dict]:
    out, k = [], 0
    for i, (name, spec) in enumerate(zip(jitfn.arg_names, specs, strict=True)):
        direction = None
        if spec.kind != "constexpr":
            direction = dirs.get(k)
            k += 1
        out.append(param_meta(name, spec, direction, jitfn.outs.get(i)))
    return out


def _check_outputs(jitfn, specs: list[ArgSpec], dirs: dict[int, str]) -> None:
    """A ``pl.Out`` parameter the kernel also reads cannot be allocated for the caller."""
    k = 0
    for i, spec in enumerate(specs):
        if spec.kind == "constexpr":
            continue
        if i in jitfn.outs and dirs.get(k) == "inout":
            arg = jitfn.source.tree.args.args[i]
            loc = jitfn.source.loc(arg)
            raise CompilationError(
                f"parameter '{arg.arg}' is declared pl.Out, but the kernel also loads from it "
                "(its direction is inout): an output that is read must hold the caller's "
                "data, so it cannot be allocated; drop pl.Out and pass it in place",
                loc,
                jitfn.source.source_line(loc),
            )
        k += 1


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
