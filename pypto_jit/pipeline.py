"""One specialization from source to artifact: lower -> verify -> passes -> {C -> .so}.

``compile_module`` produces the IR for a launch; ``build_kernel`` writes a
cache entry (``build_entry`` the files, for the ``cpu``/``sim`` backends a C
file and a shared object). Stage timings go into the metadata (and are
printed with ``PYPTO_DEBUG=timing``). Only a cache miss loads this module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, config
from .errors import CompilationError
from .frontend import ArgSpec, KernelSource
from .params import describe_params, directions, param_meta

if TYPE_CHECKING:
    from .ir import Module


def build_kernel(
    tmp: Path, jitfn, specs: list[ArgSpec], backend: str, timings: dict[str, float]
) -> tuple[dict, Module]:
    """Write the cache entry of one specialization into ``tmp``: (its meta, optimized IR)."""
    t0 = time.perf_counter()
    src = jitfn.source
    module, optimized = compile_module(src, jitfn.arg_names, specs, timings)
    dirs = directions(optimized)
    _check_outputs(jitfn, specs, dirs)
    params = _params_meta(jitfn, specs, dirs)
    meta = {
        **_entry_meta(src, backend),
        "params": params,
        "signature": f"{src.fn.__name__}({describe_params(params)})",
    }
    entry = build_entry(tmp, src, module, optimized, backend, meta, timings, debug=jitfn.debug)
    entry["compile_seconds"] = time.perf_counter() - t0
    return entry, optimized


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
