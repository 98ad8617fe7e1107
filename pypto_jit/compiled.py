"""``CompiledKernel``: one specialization of a kernel, compiled and ready to launch.

It is launchable (``ck[grid](*args)``), path-like (``os.fspath(ck)`` is its
cache entry directory) and carries the text of every stage (``ck.asm``) and
its metadata (``ck.metadata``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from . import cache, config
from .errors import (
    DataRaceError,
    DeviceAssertError,
    KernelRuntimeError,
    OutOfBoundsError,
    SourceLoc,
)

_MODES = {"cpu": 0, "sim": 1}
_ERRORS = {"oob": OutOfBoundsError, "race": DataRaceError, "assert": DeviceAssertError}
_local = threading.local()


def check_grid(grid: Any) -> tuple[int, int, int]:
    if not isinstance(grid, (tuple, list)) or not 1 <= len(grid) <= 3:
        raise ValueError(f"grid must be a tuple of 1 to 3 ints (or a callable returning one), "
                         f"got {grid!r}")
    g = []
    for d in grid:
        if isinstance(d, bool) or not isinstance(d, int):
            d = int(d) if hasattr(d, "__index__") else d
        if not isinstance(d, int) or d < 0:
            raise ValueError(f"grid dimensions must be non-negative ints, got {grid!r}")
        g.append(d)
    return (*g, 1, 1)[:3] if len(g) < 3 else tuple(g)


class CompiledKernel(os.PathLike):
    def __init__(self, *, name: str, backend: str, path: Path | None, metadata: dict,
                 asm: dict[str, str], module: Any = None, param_names: list[str],
                 ir_params: list[int], source_file: str):
        self.name = name
        self.backend = backend
        self.path = path
        self.metadata = metadata
        self.asm = asm
        self.module = module
        self.param_names = param_names
        self.ir_params = ir_params  # Python parameter index of each IR parameter
        self.source_file = source_file
        self._loaded = None
        self.cache_hit = False  # True when this process found the entry already built
        if backend in _MODES:
            from .runtime.shim import runtime

            rt = runtime()
            self._loaded = rt.load_kernel(path / "kernel.so")
            self._launch = rt.lib.pypto_launch
            self._fn = self._loaded.fn
            self._stack = self._loaded.stack_bytes
            self._mode = _MODES[backend]
            self._rt = rt

    # -- path-like --------------------------------------------------------------
    def __fspath__(self) -> str:
        if self.path is None:
            raise TypeError(f"{self.name} ({self.backend}) has no cache entry")
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else f"<{self.name} ({self.backend})>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, os.PathLike)) and self.path is not None:
            return os.fspath(other) == str(self.path)
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"CompiledKernel({self.name}, backend={self.backend}, path={self.path})"

    # -- launch -----------------------------------------------------------------
    def launch_slots(self, grid: Any, bound: Any, iargs: list, fargs: list,
                     num_threads: int) -> None:
        if type(grid) is tuple and len(grid) == 1 and type(grid[0]) is int and grid[0] >= 0:
            g0, g1, g2 = grid[0], 1, 1  # the common 1-D grid, checked without a call
        else:
            g0, g1, g2 = check_grid(grid)
        if self._loaded is None:
            return self._interpret((g0, g1, g2), bound, iargs, fargs)
        err = getattr(_local, "err", None)
        if err is None:
            err = _local.err = self._rt.new_error()
        rc = self._launch(self._fn, iargs or self._rt._null_i, fargs or self._rt._null_f,
                          g0, g1, g2, num_threads, self._mode, self._stack, err)
        if rc:
            raise self._error(self._rt.error_record(err))
        return None

    def _interpret(self, grid, bound, iargs, fargs) -> None:
        from .arguments import to_numpy
        from .interpreter import run

        tensors = [to_numpy(bound[i]) if self.metadata["params"][k]["kind"] == "tensor" else None
                   for k, i in enumerate(self.ir_params)]
        run(self.module, tensors, iargs, fargs, grid, kernel_name=self.name)

    def _error(self, rec: dict) -> KernelRuntimeError:
        cls = _ERRORS.get(rec["kind"], KernelRuntimeError)
        ir_params = self.metadata["params"]
        param = ir_params[rec["param"]]["name"] if 0 <= rec["param"] < len(ir_params) else None
        loc = SourceLoc(self.source_file, rec["line"], rec["col"]) if rec["line"] else None
        what = rec["message"] or rec["kind"]
        where = f"{os.path.basename(self.source_file)}:{rec['line']}" if loc else "?"
        text = f"kernel {self.name}, {where}: {what}"
        if param is not None:
            text += f" of {param}[{rec['index']}] out of bounds (valid 0..{rec['extent'] - 1})" \
                if rec["kind"] == "oob" else f" ({param})"
        text += f" in program {rec['pid']}"
        return cls(text, kernel=self.name, loc=loc, pid=rec["pid"], param=param,
                   index=rec["index"])


def build_compiled(jitfn: Any, specs: list, backend: str) -> CompiledKernel:
    """Compile (or fetch from the cache) one specialization of ``jitfn``."""
    from .compiler import build_entry, cache_key, compile_module, package_digest

    src = jitfn.source
    names = jitfn.arg_names
    ir_params = [i for i, s in enumerate(specs) if s.kind != "constexpr"]
    params_meta = [_param_meta(names[i], specs[i]) for i in ir_params]
    signature = ", ".join(f"{names[i]}: {specs[i].describe()}" for i in range(len(names)))
    meta = {"name": src.fn.__name__, "signature": signature, "backend": backend,
            "params": params_meta, "source_file": src.file}
    common = dict(name=src.fn.__name__, backend=backend, param_names=names,
                  ir_params=ir_params, source_file=src.file)
    timings: dict[str, float] = {}
    if backend == "interpret":
        module, optimized = compile_module(src, names, specs, timings)
        return CompiledKernel(path=None, metadata={**meta, "timings": timings},
                              asm={}, module=optimized, **common)
    from .runtime.compiler import cc_identity, compile_flags, host_features_key

    key = cache_key({
        "source": jitfn.dependency_digest, "specs": [repr(s) for s in specs],
        "backend": backend, "debug": jitfn.debug, "package": package_digest(),
        "cc": cc_identity(), "flags": compile_flags(backend), "host": host_features_key(),
    })
    t0 = time.perf_counter()

    def build(tmp: Path) -> dict:
        module, optimized = compile_module(src, names, specs, timings)
        return build_entry(tmp, src, module, optimized, backend, meta, timings)

    path, entry_meta, built = cache.get_or_build(key, build)
    if "timing" in config.debug_flags():
        print(f"[pypto] {meta['name']} ({backend}): {'compiled' if built else 'cache hit'} in "
              f"{(time.perf_counter() - t0) * 1e3:.1f} ms {entry_meta.get('timings', {})}")
    asm = {k: (path / f).read_text() for k, f in
           (("ir", "kernel.ir"), ("opt_ir", "kernel.opt.ir"), ("c", "kernel.c"))}
    kernel = CompiledKernel(path=path, metadata={**entry_meta, "cache_key": key}, asm=asm,
                            **common)
    kernel.cache_hit = not built
    return kernel


def _param_meta(name: str, spec: Any) -> dict:
    out = {"name": name, "kind": spec.kind, "dtype": str(spec.dtype)}
    if spec.kind == "tensor":
        out["shape"] = list(spec.shape)
        out["strides"] = list(spec.strides)
    return out
