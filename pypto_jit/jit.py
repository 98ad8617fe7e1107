"""``@pypto.jit``: the kernel object, its launch path and its compile path.

``kernel[grid](*args)`` computes one key tuple from the arguments (filling the
ABI slots on the way), looks it up in a dict, and calls the compiled kernel.
Only a miss parses source, hashes, and reaches the on-disk cache.
"""

from __future__ import annotations

import ast
import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import config
from .arguments import arg_key, arg_spec
from .compiled import CompiledKernel, build_compiled
from .frontend import KernelSource
from .language import core as lang

Grid = tuple[int, ...] | Callable[[dict], tuple[int, ...]]


def _is_constexpr_annotation(ann: Any) -> bool:
    return ann is lang.constexpr or ann == "pl.constexpr" or ann == "constexpr" or (
        isinstance(ann, str) and ann.endswith(".constexpr"))


class JITFunction:
    __pypto_jit__ = True

    def __init__(self, fn: Callable, *, backend: str | None = None,
                 do_not_specialize: Sequence[str | int] = (), debug: bool = False):
        if backend is not None and backend not in config.BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {', '.join(config.BACKENDS)}")
        self.fn = fn
        self.backend = backend
        self.debug = debug
        sig = inspect.signature(fn)
        self.params = list(sig.parameters.values())
        self.arg_names = [p.name for p in self.params]
        self.constexprs = frozenset(i for i, p in enumerate(self.params)
                                    if _is_constexpr_annotation(p.annotation))
        self._constexpr_flags = [i in self.constexprs for i in range(len(self.params))]
        self.defaults = {p.name: p.default for p in self.params
                         if p.default is not inspect.Parameter.empty}
        self.no_specialize = frozenset(
            self.arg_names.index(d) if isinstance(d, str) else d for d in do_not_specialize)
        self._kernels: dict[Any, CompiledKernel] = {}
        self._compile_lock = threading.Lock()
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def source(self) -> KernelSource:
        return KernelSource(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.fn.__name__} is a @pypto.jit kernel: launch it over a grid "
                        f"with {self.fn.__name__}[grid](...)")

    def __getitem__(self, grid: Grid) -> Callable[..., Any]:
        return functools.partial(self.run, grid=grid)

    def __repr__(self) -> str:
        return f"JITFunction({self.fn.__module__}.{self.fn.__qualname__})"

    # -- launch ---------------------------------------------------------------
    def run(self, *args: Any, grid: Grid, num_threads: int | None = None,
            backend: str | None = None, **kwargs: Any) -> Any:
        bound = self._bind(args, kwargs)
        backend = backend or self.backend or config.default_backend()
        iargs: list = []
        fargs: list = []
        key = [backend]
        for is_constexpr, name, a in zip(self._constexpr_flags, self.arg_names, bound):
            if is_constexpr or a is None:
                key.append((a,))
            else:
                key.append(arg_key(name, a, iargs, fargs))
        key = tuple(key)
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._compile(key, bound, backend)
        g = grid(dict(zip(self.arg_names, bound, strict=True))) if callable(grid) else grid
        return kernel.launch_slots(g, bound, iargs, fargs, num_threads or 0)

    def _bind(self, args: tuple, kwargs: dict) -> Sequence:
        if len(args) + len(kwargs) == len(self.arg_names):  # the common case: all given
            if not kwargs:
                return args
            try:
                return [*args, *map(kwargs.__getitem__, self.arg_names[len(args):])]
            except KeyError:
                pass  # an unknown or repeated name: let the full binding explain
        n = len(self.arg_names)
        if len(args) > n:
            raise TypeError(f"{self.fn.__name__}() takes {n} arguments "
                            f"({', '.join(self.arg_names)}) but {len(args)} were given")
        bound = list(args) + [_MISSING] * (n - len(args))
        for k, v in kwargs.items():
            if k not in self.arg_names:
                raise TypeError(f"{self.fn.__name__}() got an unexpected argument '{k}'")
            i = self.arg_names.index(k)
            if bound[i] is not _MISSING:
                raise TypeError(f"{self.fn.__name__}() got multiple values for '{k}'")
            bound[i] = v
        for i, v in enumerate(bound):
            if v is _MISSING:
                name = self.arg_names[i]
                if name not in self.defaults:
                    kind = "constexpr " if i in self.constexprs else ""
                    raise TypeError(f"{self.fn.__name__}() missing {kind}argument '{name}'")
                bound[i] = self.defaults[name]
        return bound

    # -- compile ----------------------------------------------------------------
    def specs(self, bound: list, key: tuple) -> list:
        from .frontend import ArgSpec

        specs = []
        for i, a in enumerate(bound):
            name = self.arg_names[i]
            if i in self.constexprs or a is None:
                specs.append(ArgSpec("constexpr", value=a.value if isinstance(
                    a, lang.constexpr) else a))
            else:
                specs.append(arg_spec(name, a, key[i + 1], i not in self.no_specialize))
        return specs

    def _compile(self, key: tuple, bound: list, backend: str) -> CompiledKernel:
        with self._compile_lock:
            kernel = self._kernels.get(key)
            if kernel is None:
                specs = self.specs(bound, key)
                kernel = build_compiled(self, specs, backend)
                self._kernels[key] = kernel
        return kernel

    @functools.cached_property
    def dependency_digest(self) -> str:
        """Source of this kernel and of every @jit helper and constexpr global it can reach."""
        import hashlib

        h = hashlib.sha256(self.source.text.encode())
        for name in sorted(_global_names(self.source.tree)):
            value = self.fn.__globals__.get(name)
            if isinstance(value, JITFunction) and value is not self:
                h.update(f"{name}:jit:{value.dependency_digest};".encode())
            elif isinstance(value, lang.constexpr):
                h.update(f"{name}:constexpr:{value.value!r};".encode())
        return h.hexdigest()


def _global_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def jit(fn: Callable | None = None, *, backend: str | None = None,
        do_not_specialize: Sequence[str | int] = (), debug: bool = False):
    """Decorate a Python function as a kernel: ``@pypto.jit`` or ``@pypto.jit(backend=...)``."""
    def wrap(f: Callable) -> JITFunction:
        return JITFunction(f, backend=backend, do_not_specialize=do_not_specialize, debug=debug)

    return wrap(fn) if fn is not None else wrap


__all__ = ["JITFunction", "jit"]
