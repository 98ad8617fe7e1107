"""``CompiledKernel``: one specialization of a kernel, compiled and ready to launch.

A compiled kernel is launchable (``ck[grid](*args)``), path-like
(``os.fspath(ck)`` is its cache entry directory) and carries the text of every
stage (``ck.asm``) and its metadata (``ck.metadata``). Everything it needs to
launch is in its cache entry, so ``load_compiled(path)`` rebuilds it in a
process that never saw the kernel's source.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

from .arguments import arg_key, arg_spec, to_numpy
from .errors import (
    DataRaceError,
    DeviceAssertError,
    KernelRuntimeError,
    OutOfBoundsError,
    SourceLoc,
)
from .frontend import ArgSpec
from .language.core import Out
from .outputs import allocate_outputs, bind_arguments
from .params import describe_params, spec_from_meta

_MODES = {"cpu": 0, "sim": 1}
_ERRORS = {"oob": OutOfBoundsError, "race": DataRaceError, "assert": DeviceAssertError}
_local = threading.local()


def check_grid(grid: Any) -> tuple[int, int, int]:
    if not isinstance(grid, (tuple, list)) or not 1 <= len(grid) <= 3:
        raise ValueError(
            f"grid must be a tuple of 1 to 3 ints (or a callable returning one), got {grid!r}"
        )
    g = []
    for d in grid:
        if not isinstance(d, bool) and hasattr(d, "__index__"):
            d = d.__index__()
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"grid dimensions must be non-negative ints, got {grid!r}")
        g.append(d)
    return tuple((*g, 1, 1)[:3])


class CompiledKernel(os.PathLike):
    """A compiled specialization; see the module docstring."""

    def __init__(self, metadata: dict, path: Path | None, asm: dict[str, str], module: Any = None):
        self.metadata = metadata
        self.path = path
        self.asm = asm
        self.module = module  # the optimized IR (the interpret backend runs it)
        self.name: str = metadata["name"]
        self.backend: str = metadata["backend"]
        self.arg_names = [p["name"] for p in metadata["params"]]
        self.specs: list[ArgSpec] = [spec_from_meta(p) for p in metadata["params"]]
        self.outs = [i for i, p in enumerate(metadata["params"]) if p.get("out")]
        self.ir_params = [i for i, s in enumerate(self.specs) if s.kind != "constexpr"]
        self.source_file: str = metadata.get("source_file", "<unknown>")
        self.cache_hit = False  # True when this process found the entry already built
        self._accepted: set = set()  # launch keys already checked against the specs
        self._constexpr_values = {
            n: s.value
            for n, s in zip(self.arg_names, self.specs, strict=True)
            if s.kind == "constexpr"
        }
        self._loaded = None  # the kernel through cffi, for the Python launch path
        self._fast_entry = None  # what the C launch path needs (runtime/fastpath.py)
        if self.backend in _MODES:
            from .runtime import fastpath

            self._mode = _MODES[self.backend]
            loaded = fastpath.load_kernel(path / "kernel.so")  # (address, stack bytes)
            if loaded is None:  # no C launch path: load it for the Python one now
                self._load_cffi()
                loaded = int(self._rt.ffi.cast("uintptr_t", self._fn)), self._loaded.stack_bytes
            address, self._stack = loaded
            self._fast_entry = (address, self._mode, self._stack, self._raise_record)

    def _load_cffi(self) -> None:
        """The kernel and the shim through cffi: what the Python launch path calls."""
        from .runtime.shim import runtime

        rt = runtime()
        self._loaded = rt.load_kernel(self.path / "kernel.so")
        self._rt = rt
        self._launch = rt.lib.pypto_launch
        self._fn = self._loaded.fn

    # -- path-like --------------------------------------------------------------
    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, os.PathLike)):
            return os.fspath(other) == str(self.path)
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"CompiledKernel({self.signature}, backend={self.backend!r}, path='{self.path}')"

    @property
    def signature(self) -> str:
        return f"{self.name}({describe_params(self.metadata['params'])})"

    # -- launch -------------------------------------------------------------------
    def __getitem__(self, grid: Any):
        return functools.partial(self.run, grid=grid)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"compiled kernel {self.name} must be launched over a grid: ck[grid](...)")

    def run(self, *args: Any, grid: Any, num_threads: int | None = None, **kwargs: Any) -> Any:
        """Launch with arguments that must match the compiled specialization."""
        bound, allocated = bind_arguments(
            self.name, self.arg_names, self.outs, args, kwargs, self._constexpr_values
        )
        if allocated:
            allocate_outputs(self.name, self.arg_names, bound, allocated, self._out_description)
        iargs: list = []
        fargs: list = []
        key = []
        for name, spec, a in zip(self.arg_names, self.specs, bound, strict=True):
            key.append((a,) if spec.kind == "constexpr" else arg_key(name, a, iargs, fargs))
        key = tuple(key)
        if key not in self._accepted:
            self._check(bound, key)
            self._accepted.add(key)
        g = grid(dict(zip(self.arg_names, bound, strict=True))) if callable(grid) else grid
        self.launch_slots(g, bound, iargs, fargs, num_threads or 0)
        return _returned(bound, allocated)

    def _out_description(self, i: int) -> Any:
        like = self.metadata["params"][i]["out"].get("like")
        return Out(like=like) if like is not None else self.specs[i]

    def _check(self, bound: list, key: tuple) -> None:
        """Every argument fits the specialization, or a TypeError naming the parameter."""
        for name, spec, a, k in zip(self.arg_names, self.specs, bound, key, strict=True):
            if spec.kind == "constexpr":
                if a is not spec.value and a != spec.value:
                    raise TypeError(
                        f"{self.name}: constexpr '{name}' was compiled as {spec.value!r}, got {a!r}"
                    )
                continue
            got = arg_spec(name, a, k, specialize=True)
            problem = _mismatch(spec, got)
            if problem:
                raise TypeError(
                    f"{self.name}: argument '{name}' {problem} (this kernel was "
                    f"compiled for {_describe(spec)}; got {_describe(got)})"
                )

    def launch_slots(
        self, grid: Any, bound: Any, iargs: list, fargs: list, num_threads: int
    ) -> None:
        if type(grid) is tuple and len(grid) == 1 and type(grid[0]) is int and grid[0] >= 0:
            g0, g1, g2 = grid[0], 1, 1  # the common 1-D grid, checked without a call
        else:
            g0, g1, g2 = check_grid(grid)
        if self.backend not in _MODES:
            return self._interpret((g0, g1, g2), bound, iargs, fargs)
        if self._loaded is None:
            self._load_cffi()
        err = getattr(_local, "err", None)
        if err is None:
            err = _local.err = self._rt.new_error()
        rc = self._launch(
            self._fn,
            iargs or self._rt._null_i,
            fargs or self._rt._null_f,
            g0,
            g1,
            g2,
            num_threads,
            self._mode,
            self._stack,
            err,
        )
        if rc:
            raise self._error(self._rt.error_record(err))
        return None

    def _raise_record(self, record: bytes) -> None:
        """Raise the exception for a failed launch's ``pypto_error`` record (its bytes)."""
        if self._loaded is None:
            self._load_cffi()
        err = self._rt.new_error()
        self._rt.ffi.memmove(err, record, len(record))
        raise self._error(self._rt.error_record(err))

    def _interpret(self, grid, bound, iargs, fargs) -> None:
        from .interpreter import run

        tensors = [
            to_numpy(bound[i]) if self.specs[i].kind == "tensor" else None for i in self.ir_params
        ]
        run(self.module, tensors, iargs, fargs, grid, kernel_name=self.name)

    def _error(self, rec: dict) -> KernelRuntimeError:
        cls = _ERRORS.get(rec["kind"], KernelRuntimeError)
        k = rec["param"]
        param = self.arg_names[self.ir_params[k]] if 0 <= k < len(self.ir_params) else None
        loc = SourceLoc(self.source_file, rec["line"], rec["col"]) if rec["line"] else None
        where = f"{os.path.basename(self.source_file)}:{rec['line']}" if loc else "?"
        text = f"kernel {self.name}, {where}: {rec['message'] or rec['kind']}"
        if param is not None and rec["kind"] == "oob":
            text += f" of {param}[{rec['index']}] out of bounds (valid 0..{rec['extent'] - 1})"
        elif param is not None:
            text += f" ({param})"
        text += f" in program {rec['pid']}"
        return cls(text, kernel=self.name, loc=loc, pid=rec["pid"], param=param, index=rec["index"])


def _returned(bound: list, allocated: list[int]) -> Any:
    if not allocated:
        return None
    outs = tuple(bound[i] for i in allocated)
    return outs[0] if len(outs) == 1 else outs


def _describe(spec: ArgSpec) -> str:
    text = spec.describe()
    if spec.kind == "tensor":
        strides = ",".join("?" if s is None else str(s) for s in spec.strides)
        text += f" strides [{strides}]"
    facts = [k for k, v in spec.facts if v]
    return text + (f" ({', '.join(facts)})" if facts else "")


def _mismatch(expected: ArgSpec, got: ArgSpec) -> str | None:
    if expected.kind != got.kind:
        return f"is a {got.kind}, expected a {expected.kind}"
    if expected.dtype != got.dtype:
        return f"has dtype {got.dtype}, expected {expected.dtype}"
    if expected.kind == "tensor":
        if len(expected.shape) != len(got.shape):
            return f"has {len(got.shape)} dimensions, expected {len(expected.shape)}"
        for what, want, have in (
            ("shape", expected.shape, got.shape),
            ("strides", expected.strides, got.strides),
        ):
            if any(w is not None and w != h for w, h in zip(want, have, strict=True)):
                return f"has {what} {list(have)}, expected {list(want)}"
    need = {k for k, v in expected.facts if v}
    have = {k for k, v in got.facts if v}
    missing = need - have
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    return None


def load_compiled(path: str | os.PathLike[str]) -> CompiledKernel:
    """Rebuild a ``CompiledKernel`` from its cache entry, without source and without compiling."""
    from . import __version__, cache
    from .runtime.shim import ABI_VERSION

    entry = Path(path)
    meta = cache.read_entry(entry)
    if meta.get("package_version") != __version__:
        raise ValueError(
            f"{entry} was built by pypto-jit {meta.get('package_version')}, "
            f"this is {__version__}: recompile it"
        )
    if meta["backend"] in _MODES:
        from .runtime.compiler import host_features_key

        if meta.get("abi") != ABI_VERSION:
            raise ValueError(
                f"{entry} speaks runtime ABI {meta.get('abi')}, this runtime "
                f"speaks {ABI_VERSION}: recompile it"
            )
        if meta.get("host") != host_features_key():
            raise ValueError(
                f"{entry} was compiled for other CPU features "
                f"({meta.get('host')}); this machine is {host_features_key()}"
            )
    asm = read_asm(entry)
    module = None
    if meta["backend"] == "interpret":
        from .ir.parser import parse_module

        module = parse_module(asm["opt_ir"])
    return CompiledKernel({**meta, "cache_key": entry.name}, entry, asm, module)


def read_asm(entry: Path) -> dict[str, str]:
    names = {"ir": "kernel.ir", "opt_ir": "kernel.opt.ir", "c": "kernel.c", "sim_c": "kernel.sim.c"}
    return {k: (entry / f).read_text() for k, f in names.items() if (entry / f).exists()}
