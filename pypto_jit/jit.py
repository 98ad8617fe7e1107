"""``@pypto.jit``: the kernel object, its launch path and its compile path.

``kernel[grid](*args)`` computes one key tuple from the arguments (filling the
ABI slots on the way), looks it up in a dict, and calls the compiled kernel.
Only a miss parses source, hashes, and reaches the on-disk cache.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import config
from .arguments import _TorchTensorClass, arg_key, arg_spec
from .compiled import CompiledKernel
from .frontend import ArgSpec, KernelSource
from .frontend.digest import dependency_digest
from .language import core as lang
from .outputs import MISSING, allocate_outputs, bind_arguments

Grid = tuple[int, ...] | Callable[[dict], tuple[int, ...]]


def _is_constexpr_annotation(ann: Any) -> bool:
    if ann is lang.constexpr:
        return True
    return isinstance(ann, str) and (ann == "constexpr" or ann.endswith(".constexpr"))


class JITFunction:
    """A kernel: launch it with ``kernel[grid](*args)``; see the package README."""

    __pypto_jit__ = True

    def __init__(
        self,
        fn: Callable,
        *,
        backend: str | None = None,
        do_not_specialize: Sequence[str | int] = (),
        debug: bool = False,
    ):
        if backend is not None and backend not in config.BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {', '.join(config.BACKENDS)}")
        self.fn = fn
        self.backend = backend
        self.debug = debug
        self.params = _parameters(fn)
        self.arg_names = [p.name for p in self.params]
        self.constexprs = frozenset(
            i for i, p in enumerate(self.params) if _is_constexpr_annotation(p.annotation)
        )
        self._constexpr_flags = [i in self.constexprs for i in range(len(self.params))]
        # Parameter names from position i on: a launch that passes i positional arguments
        # and the rest by name binds with one map over _tails[i].
        self._tails = [tuple(self.arg_names[i:]) for i in range(len(self.arg_names) + 1)]
        self.outs = {
            i: p.annotation for i, p in enumerate(self.params) if isinstance(p.annotation, lang.Out)
        }
        self.defaults = {
            p.name: p.default for p in self.params if p.default is not inspect.Parameter.empty
        }
        self.no_specialize = frozenset(
            self.arg_names.index(d) if isinstance(d, str) else d for d in do_not_specialize
        )
        self._kernels = KernelTable()
        self._last: CompiledKernel | None = None
        self._dispatch: Any = None  # grid -> launcher: the C fast path or _PythonDispatch
        self._compile_lock = threading.Lock()
        functools.update_wrapper(self, fn)
        self.__doc__ = self._doc()

    @functools.cached_property
    def source(self) -> KernelSource:
        return KernelSource(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self.fn.__name__} is a @pypto.jit kernel: launch it over a grid "
            f"with {self.fn.__name__}[grid](...)"
        )

    def __getitem__(self, grid: Grid) -> Callable[..., Any]:
        dispatch = self._dispatch
        if dispatch is None:
            dispatch = self._dispatch = self._make_dispatch()
        return dispatch[grid]

    def _make_dispatch(self) -> Any:
        """The C launch path when it can serve this kernel, else the Python launcher."""
        if self._can_generate_launcher:
            from .runtime import fastpath

            if fastpath.enabled(len(self.arg_names)):
                # The Python launcher is generated on its first use (it costs a new process
                # half a millisecond to compile, and a warm cache hit never needs it).
                return fastpath.dispatcher(self, lambda: self._launcher)
        return _PythonDispatch(self._launcher)

    @property
    def _can_generate_launcher(self) -> bool:
        """False for kernels with ``pl.Out`` parameters or names the launcher reserves."""
        reserved = {"grid", "num_threads", "backend"}
        return not self.outs and not any(
            n in reserved or n.startswith("_L_") for n in self.arg_names
        )

    @functools.cached_property
    def _launcher(self) -> Callable[..., Any]:
        """``run``, or for kernels without ``pl.Out`` parameters a faster equivalent
        generated for this signature (Python binds the arguments; no loops over them)."""
        return _generate_launcher(self) if self._can_generate_launcher else self.run

    # -- signature --------------------------------------------------------------
    @property
    def signature(self) -> str:
        """``name(param: direction dtype[shape], ...)`` of the last specialization compiled.

        Before any compile, tensor directions are unknown (they are read off the IR)
        except for ``pl.Out`` parameters.
        """
        if self._last is not None:
            return self._last.signature
        parts = []
        for i, name in enumerate(self.arg_names):
            if i in self.constexprs:
                parts.append(f"{name}: constexpr")
            elif i in self.outs:
                parts.append(f"{name}: out")
            else:
                parts.append(name)
        return f"{self.fn.__name__}({', '.join(parts)})"

    def __repr__(self) -> str:
        return f"<pypto.jit kernel {self.signature}>"

    def _doc(self) -> str:
        doc = inspect.getdoc(self.fn) or ""
        return f"{self.signature}\n\n{doc}".rstrip()

    # -- launch -----------------------------------------------------------------
    def run(
        self,
        *args: Any,
        grid: Grid,
        num_threads: int | None = None,
        backend: str | None = None,
        **kwargs: Any,
    ) -> Any:
        bound, allocated = args, None
        if kwargs or len(args) != len(self.arg_names):
            try:  # the common case: the trailing parameters (constexprs) given by name
                if len(args) + len(kwargs) != len(self.arg_names):
                    raise KeyError
                bound = [*args, *map(kwargs.__getitem__, self._tails[len(args)])]
            except (KeyError, IndexError):
                bound, allocated = self._bind(args, kwargs)
        backend = backend or self.backend or config.default_backend()
        iargs: list = []
        fargs: list = []
        key = self._key(bound, backend, iargs, fargs)
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._compile(key, bound, backend)
        g = grid(dict(zip(self.arg_names, bound, strict=True))) if callable(grid) else grid
        kernel.launch_slots(g, bound, iargs, fargs, num_threads or 0)
        if allocated:
            outs = tuple(bound[i] for i in allocated)
            return outs[0] if len(outs) == 1 else outs
        return None

    def _resolve(self, bound: tuple, backend: str) -> CompiledKernel:
        """The kernel ``run`` would launch for these bound arguments, compiled if need be
        (the C launch path asks this once per new argument signature)."""
        key = self._key(bound, backend, [], [])
        kernel = self._kernels.get(key)
        return kernel if kernel is not None else self._compile(key, bound, backend)

    def _key(self, bound: Sequence, backend: str, iargs: list, fargs: list) -> tuple:
        """The specialization key of bound arguments; fills their ABI slots on the way."""
        key = [backend]
        for is_constexpr, name, a in zip(self._constexpr_flags, self.arg_names, bound, strict=True):
            key.append((a,) if is_constexpr or a is None else arg_key(name, a, iargs, fargs))
        return tuple(key)

    def _bind(self, args: tuple, kwargs: dict) -> tuple[list, list[int]]:
        bound, allocated = bind_arguments(
            self.fn.__name__, self.arg_names, list(self.outs), args, kwargs, self.defaults
        )
        if allocated:
            allocate_outputs(
                self.fn.__name__, self.arg_names, bound, allocated, self.outs.__getitem__
            )
        return bound, allocated

    def warmup(
        self, *args: Any, grid: Grid | None = None, backend: str | None = None, **kwargs: Any
    ) -> CompiledKernel:
        """Compile for these arguments without launching; returns the ``CompiledKernel``.

        Arguments may be real tensors or ``pypto.TensorSpec(shape, dtype)`` placeholders;
        left-out ``pl.Out`` parameters are described from their annotation.
        """
        del grid  # accepted for symmetry with a launch; compiling does not need it
        bound, allocated = self._bind(args, kwargs)
        if allocated:
            from .arguments import TensorSpec

            for i in allocated:  # keep no data: compile for the allocation's layout only
                a = bound[i]
                bound[i] = TensorSpec(tuple(a.shape), a.dtype, _element_strides(a))
        backend = backend or self.backend or config.default_backend()
        return self._resolve(bound, backend)

    # -- compile ------------------------------------------------------------------
    def specs(self, bound: Sequence, key: tuple) -> list[ArgSpec]:
        specs = []
        for i, a in enumerate(bound):
            if i in self.constexprs or a is None or a is MISSING:
                value = a.value if isinstance(a, lang.constexpr) else a
                specs.append(ArgSpec("constexpr", value=value))
            else:
                specs.append(
                    arg_spec(self.arg_names[i], a, key[i + 1], i not in self.no_specialize)
                )
        return specs

    def _compile(self, key: tuple, bound: Sequence, backend: str) -> CompiledKernel:
        from .compiler import compile_kernel

        with self._compile_lock:
            kernel = self._kernels.get(key)
            if kernel is None:
                kernel = compile_kernel(self, self.specs(bound, key), backend)
                self._kernels[key] = kernel
                self._last = kernel
                self.__doc__ = self._doc()
        return kernel

    @functools.cached_property
    def dependency_digest(self) -> str:
        """Source of this kernel and of every @jit helper and constexpr global it can reach."""
        return dependency_digest(self)


class KernelTable(dict):
    """key -> CompiledKernel. Every change is reported to ``on_change`` listeners: the C
    launch path remembers which signature launches which kernel and must forget it."""

    def __init__(self) -> None:
        super().__init__()
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    def __setitem__(self, key: Any, value: CompiledKernel) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self) -> tuple[Any, CompiledKernel]:
        item = super().popitem()
        self._changed()
        return item

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value


class _PythonDispatch:
    """``dispatch[grid]`` -> the Python launcher with the grid bound."""

    def __init__(self, launcher: Callable[..., Any]):
        self.launcher = launcher

    def __getitem__(self, grid: Grid) -> Callable[..., Any]:
        return functools.partial(self.launcher, grid=grid)


def _generate_launcher(k: JITFunction) -> Callable[..., Any]:
    """A function with the kernel's own signature doing exactly what ``run`` does.

    Triton's launchers are generated the same way: binding through Python's own
    call machinery and one straight-line key expression cost a fraction of a
    generic loop over the arguments. Locals are prefixed ``_L_`` so that they
    cannot shadow a parameter (``_launcher`` falls back to ``run`` if one would).
    """
    names = k.arg_names
    params = ", ".join(n if n not in k.defaults else f"{n}=_L_defaults[{n!r}]" for n in names)
    lines, keys = [], []
    for i, n in enumerate(names):
        if i in k.constexprs:
            keys.append(f"({n},)")
            continue
        # A CPU torch tensor, the common case, is keyed inline; anything else by _L_key.
        lines.append(
            f"    if {n}.__class__ is _L_torch.cls and {n}.is_cpu:\n"
            f"        _L_p = {n}.data_ptr(); _L_s = {n}.shape; _L_st = {n}.stride()\n"
            f"        _L_ia.append(_L_p); _L_ia += _L_s; _L_ia += _L_st\n"
            f"        _L_k{i} = ({n}.dtype, _L_s, _L_st, _L_p & 15 == 0)\n"
            f"    else:\n"
            f"        _L_k{i} = ({n},) if {n} is None else _L_key({n!r}, {n}, _L_ia, _L_fa)"
        )
        keys.append(f"_L_k{i}")
    body = "\n".join(lines)
    args = ", ".join(names) + ("," if len(names) == 1 else "")
    meta = ", ".join(f"{n!r}: {n}" for n in names)
    source = f"""
def {k.fn.__name__}({params}{", " if names else ""}*, grid, num_threads=None, backend=None):
    _L_b = backend or _L_backend or _L_default_backend()
    _L_ia = []
    _L_fa = []
{body}
    _L_key_tuple = (_L_b, {", ".join(keys)})
    _L_kernel = _L_kernels.get(_L_key_tuple)
    if _L_kernel is None:
        _L_kernel = _L_compile(_L_key_tuple, ({args}), _L_b)
    if grid.__class__ is not tuple and callable(grid):
        grid = grid({{{meta}}})
    _L_kernel.launch_slots(grid, ({args}), _L_ia, _L_fa, num_threads or 0)
"""
    namespace = {
        "_L_defaults": k.defaults, "_L_backend": k.backend,
        "_L_default_backend": config.default_backend, "_L_key": arg_key,
        "_L_kernels": k._kernels, "_L_compile": k._compile, "_L_torch": _TorchTensorClass,
    }  # fmt: skip
    exec(compile(source, f"<pypto launcher for {k.fn.__name__}>", "exec"), namespace)
    return namespace[k.fn.__name__]


def _parameters(fn: Callable) -> list[inspect.Parameter]:
    """The parameters, with string annotations (``from __future__ import annotations``)
    evaluated when they can be, so ``pl.Out(...)`` and ``pl.constexpr`` are recognized."""
    try:
        return list(inspect.signature(fn, eval_str=True).parameters.values())
    except Exception:  # an annotation that does not evaluate: keep the strings
        return list(inspect.signature(fn).parameters.values())


def _element_strides(a: Any) -> tuple[int, ...]:
    if hasattr(a, "stride") and callable(a.stride):
        return tuple(a.stride())
    return tuple(s // a.itemsize for s in a.strides)


def jit(
    fn: Callable | None = None,
    *,
    backend: str | None = None,
    do_not_specialize: Sequence[str | int] = (),
    debug: bool = False,
):
    """Decorate a Python function as a kernel: ``@pypto.jit`` or ``@pypto.jit(backend=...)``."""

    def wrap(f: Callable) -> JITFunction:
        return JITFunction(f, backend=backend, do_not_specialize=do_not_specialize, debug=debug)

    return wrap(fn) if fn is not None else wrap
