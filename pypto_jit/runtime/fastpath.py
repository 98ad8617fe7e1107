"""The C launch path: build and load ``runtime_c/pyext/fastlaunch.c``, make dispatchers.

On a cache hit ``kernel[grid](*args)`` is argument binding, a key, one dict lookup and a call
into the shim. In Python that is ~4 us (each torch tensor attribute read goes through the
interpreter); the extension does the same steps in C, sharing the JITFunction's dict of
compiled kernels and its key format, and hands everything unusual back to Python.

The extension is built like the shim: once per source/compiler/Python version into the
cache's ``runtime/`` directory. If it cannot be built (no Python headers, no compiler) or
``PYPTO_FAST_LAUNCH=0``, launches use the Python path; both give the same results and errors.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypto_jit import config
from pypto_jit.runtime import compiler, shim

_SOURCE = "pyext/fastlaunch.c"  # includes the other files of pyext/
MAX_PARAMS = 64  # as fastlaunch.c; kernels with more launch through Python
_FLAGS = ("-std=c11", "-O2", "-fPIC", "-shared", "-fvisibility=hidden")
_lock = threading.Lock()
_module: Any = None
_failed = False


def module() -> Any:
    """The loaded extension, or None when the fast path is off or could not be built."""
    global _module, _failed
    if _module is None and not _failed:
        with _lock:
            if _module is None and not _failed:
                try:
                    _module = _load(build_extension())
                except Exception as exc:  # only slower: say why under PYPTO_DEBUG=launch
                    _failed = True
                    if "launch" in config.debug_flags():
                        print(f"[pypto] C launch path unavailable: {exc}", file=sys.stderr)
    return _module


def enabled(num_params: int) -> bool:
    return num_params <= MAX_PARAMS and config.fast_launch() and module() is not None


def build_extension() -> Path:
    """Path of the extension for the current sources, compiler and Python, built if needed.

    On the warm path this reads three small files and stats one: the Python headers are
    only looked up (``sysconfig`` costs a millisecond) when there is something to build.
    """
    src = shim.runtime_source_dir()
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    name = f"_fastlaunch{suffix}"
    h = hashlib.sha256()
    h.update(f"cc={compiler.cc_identity()}\0py={sys.version}\0{suffix}\0".encode())
    h.update("\0".join(_FLAGS).encode())
    for path in [*sorted((src / "pyext").iterdir()), src / "include" / "pypto_runtime.h"]:
        h.update(b"\0" + path.read_bytes())
    root = config.cache_dir() / "runtime"
    final = root / f"ext-{h.hexdigest()[:20]}"
    if not (final / name).is_file():
        shim.publish(root, final, name, lambda tmp: _compile(src, tmp / name))
    shim.check_private(final / name)
    return final / name


def _compile(src: Path, out: Path) -> None:
    import sysconfig

    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        raise RuntimeError(f"Python.h not found under {include}")
    flags = [*_FLAGS, "-I", include, "-I", str(src / "include")]
    cmd = [*compiler.cc_command(), *flags, "-o", str(out), str(src / _SOURCE), "-ldl"]
    compiler.run_compiler(cmd)


def _load(path: Path) -> Any:
    loader = importlib.machinery.ExtensionFileLoader("pypto_jit._fastlaunch", str(path))
    spec = importlib.util.spec_from_file_location("pypto_jit._fastlaunch", path, loader=loader)
    if spec is None:
        raise ImportError(path)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    if mod.abi_version() != shim.ABI_VERSION:
        raise RuntimeError(f"{path}: ABI {mod.abi_version()}, expected {shim.ABI_VERSION}")
    from pypto_jit.arguments import _TorchTensorClass

    _TorchTensorClass.listeners.append(mod.set_tensor_type)
    if _TorchTensorClass.cls is not None:
        mod.set_tensor_type(_TorchTensorClass.cls)
    else:  # so that the first launch on torch tensors already runs in C
        _TorchTensorClass.probe()
    return mod


def launch_address() -> int:
    """Where ``pypto_launch`` is, the shim loaded by the extension (no cffi needed)."""
    library = shim.runtime_library()
    address, abi = module().runtime_info(str(library))
    shim.check_abi(library, "runtime", abi)
    return address


def load_kernel(so: Path) -> tuple[int, int] | None:
    """dlopen a kernel through the extension: (address of its pypto_program, the stack one
    program needs); None where there is no C launch path (load it through cffi then)."""
    if not config.fast_launch() or module() is None:
        return None
    address, stack, abi = _module.kernel_info(str(Path(so).absolute()))
    shim.check_abi(so, "kernel", abi)
    return address, stack


def dispatcher(k: Any, launcher: Callable[[], Any]) -> Any:
    """The C dispatcher of JITFunction ``k``; ``launcher()`` returns its Python launch path."""
    from pypto_jit.compiled import check_grid

    missing = object()
    names = tuple(sys.intern(n) for n in k.arg_names)

    def slow(grid: Any, *args: Any, **kwargs: Any) -> Any:
        return launcher()(*args, grid=grid, **kwargs)

    d = module().Dispatcher(
        names,
        tuple(k._constexpr_flags),
        tuple(k.defaults.get(n, missing) for n in names),
        missing,
        k.backend,
        k._resolve,
        slow,
        check_grid,
        launch_address(),
    )
    k._kernels.on_change.append(d.forget)  # its signature table must follow the dict
    return d
