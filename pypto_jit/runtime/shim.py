"""Build, load and bind the C runtime shim (``runtime_c/``) and generated kernel objects.

The shim is compiled on first use into ``cache_dir()/runtime/<key>/libpypto_runtime.so``,
where the key hashes its sources, the compiler identity and the flags, so an edited shim or
a new compiler gets a fresh build and old processes keep the file they loaded. Binding is
cffi in ABI mode (``ffi.dlopen``): no Python extension has to be compiled, and a call costs
well under a microsecond. cffi releases the GIL around every call, so kernels run while other
Python threads go on; the shim serializes concurrent launches itself.

Kernel objects do not link against the shim. ``load_kernel`` dlopens one with the same
``ffi`` and hands back its ``pypto_program`` as a ``pypto_program_fn`` that can be passed
straight to ``lib.pypto_launch``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypto_jit import config
from pypto_jit.runtime import compiler

ABI_VERSION = 2
LIB_NAME = "libpypto_runtime.so"
# The cdef, pre-parsed by cffi into a small Python module ("out-of-line ABI mode"): parsing
# CDEF with pycparser costs ~15 ms per process, importing the module ~0.3 ms.
FFI_MODULE = "_pypto_runtime_ffi"

# Mirrors runtime_c/include/pypto_runtime.h. Any change there bumps the ABI version.
CDEF = """
#define PYPTO_ABI_VERSION 2
enum pypto_status { PYPTO_OK = 0, PYPTO_ERR_OOB = 1, PYPTO_ERR_RACE = 2, PYPTO_ERR_ASSERT = 3,
                    PYPTO_ERR_OTHER = 4 };
typedef struct pypto_error {
  int32_t kind;
  int32_t line;
  int32_t col;
  int32_t param;
  int64_t pid[3];
  int64_t index;
  int64_t extent;
  char message[200];
} pypto_error;
typedef struct pypto_ctx {
  int64_t grid[3];
  pypto_error *err;
} pypto_ctx;
typedef int (*pypto_program_fn)(const int64_t *iargs, const double *fargs, int64_t pid0,
                                int64_t pid1, int64_t pid2, const pypto_ctx *ctx);

/* the shim */
int pypto_launch(pypto_program_fn fn, const int64_t *iargs, const double *fargs,
                 int64_t g0, int64_t g1, int64_t g2, int32_t num_threads, int32_t mode,
                 int64_t stack_bytes, pypto_error *err);
int32_t pypto_num_cores(void);
int32_t pypto_abi_version(void);

/* every kernel object */
int pypto_program(const int64_t *iargs, const double *fargs, int64_t pid0, int64_t pid1,
                  int64_t pid2, const pypto_ctx *ctx);
int64_t pypto_stack_bytes(void);
int32_t pypto_kernel_abi(void);
"""

# The shim does not need the host ISA (it only dispatches), so it is built portable. It is
# never unloaded (see compiler.NODELETE_FLAGS): its pool threads run its code until exit.
_SHIM_FLAGS = (
    "-std=c11",
    "-O2",
    "-fPIC",
    "-shared",
    "-pthread",
    "-fvisibility=hidden",
    *compiler.NODELETE_FLAGS,
)
_ERROR_KINDS = {0: "ok", 1: "oob", 2: "race", 3: "assert", 4: "other"}
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def runtime_source_dir() -> Path:
    """``<repo>/runtime_c`` in a source checkout, else the copy a wheel carries."""
    in_tree = _PACKAGE_DIR.parent / "runtime_c"
    if (in_tree / "include" / "pypto_runtime.h").is_file():
        return in_tree
    return _PACKAGE_DIR / "_runtime_c"


def check_abi(path: str | os.PathLike[str], what: str, abi: int) -> None:
    """A RuntimeError unless the loaded ``what`` ("runtime" or "kernel") speaks this ABI."""
    if abi != ABI_VERSION:
        raise RuntimeError(f"{path}: {what} ABI {abi}, this package speaks {ABI_VERSION}")


class LoadedKernel:
    """A dlopened kernel object. Keep it alive as long as ``fn`` may be called."""

    # A plain class: creating a dataclass costs a new process half a millisecond.
    __slots__ = ("path", "lib", "fn", "stack_bytes")

    def __init__(self, path: Path, lib: Any, fn: Any, stack_bytes: int):
        self.path = path
        self.lib = lib  # the cffi library handle
        self.fn = fn  # cdata pypto_program_fn, an argument of lib.pypto_launch
        self.stack_bytes = stack_bytes


class Runtime:
    """The loaded shim: ``ffi`` and ``lib`` for fast paths, helpers for everything else."""

    def __init__(self, path: Path):
        self.path = path
        import _cffi_backend

        self.ffi = _load_ffi(path.parent / _ffi_module_name(_cffi_backend.__version__))
        self.lib = self.ffi.dlopen(str(path), self.ffi.RTLD_NOW | self.ffi.RTLD_LOCAL)
        check_abi(path, "runtime", self.lib.pypto_abi_version())
        self._null_i = self.ffi.cast("int64_t *", 0)
        self._null_f = self.ffi.cast("double *", 0)

    def num_cores(self) -> int:
        return int(self.lib.pypto_num_cores())

    def load_kernel(self, so_path: str | os.PathLike[str]) -> LoadedKernel:
        """dlopen a generated kernel and check that it speaks this ABI."""
        path = Path(so_path).absolute()  # dlopen would search LD_LIBRARY_PATH for a bare name
        lib = self.ffi.dlopen(str(path), self.ffi.RTLD_NOW | self.ffi.RTLD_LOCAL)
        try:
            abi = int(lib.pypto_kernel_abi())
            stack = int(lib.pypto_stack_bytes())
            fn = self.ffi.cast("pypto_program_fn", lib.pypto_program)
        except (AttributeError, self.ffi.error) as exc:  # a missing symbol
            raise RuntimeError(f"{path} is not a pypto kernel object: {exc}") from exc
        check_abi(path, "kernel", abi)
        return LoadedKernel(path=path, lib=lib, fn=fn, stack_bytes=stack)

    def new_error(self) -> Any:
        """A fresh ``pypto_error *`` (owned by the returned cdata)."""
        return self.ffi.new("pypto_error *")

    def error_record(self, err: Any) -> dict[str, Any]:
        """The fields of a ``pypto_error`` as plain Python values."""
        return {
            "kind": _ERROR_KINDS.get(int(err.kind), "other"),
            "line": int(err.line),
            "col": int(err.col),
            "param": int(err.param),
            "pid": (int(err.pid[0]), int(err.pid[1]), int(err.pid[2])),
            "index": int(err.index),
            "extent": int(err.extent),
            "message": self.ffi.string(err.message).decode("utf-8", "replace"),
        }

    def launch(
        self,
        kernel: LoadedKernel,
        grid: tuple[int, ...],
        iargs: Any = (),
        fargs: Any = (),
        *,
        num_threads: int = 0,
        mode: int = 0,
        err: Any = None,
    ) -> int:
        """Convenience launch (the jit layer has its own fast path); returns the status code.

        ``iargs``/``fargs`` are sequences of ints/floats or ready cdata arrays; ``grid`` has
        1 to 3 entries. On failure the record is in ``err`` (pass one from ``new_error``).
        """
        if not 1 <= len(grid) <= 3:
            raise ValueError(f"grid must have 1 to 3 entries, not {len(grid)}")
        g = (*grid, 1, 1)[:3]
        ia = self._array("int64_t[]", iargs, self._null_i)
        fa = self._array("double[]", fargs, self._null_f)
        err = self.ffi.NULL if err is None else err
        return int(
            self.lib.pypto_launch(
                kernel.fn, ia, fa, g[0], g[1], g[2], num_threads, mode, kernel.stack_bytes, err
            )
        )

    def _array(self, ctype: str, values: Any, null: Any) -> Any:
        if isinstance(values, self.ffi.CData):
            return values
        values = list(values)
        return self.ffi.new(ctype, values) if values else null


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The process-wide shim through cffi, built on first use."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime(runtime_library())
    return _runtime


_library: Path | None = None


def runtime_library() -> Path:
    """The shim library for this process (``build_runtime`` once)."""
    global _library
    if _library is None:
        _library = build_runtime()
    return _library


def build_runtime() -> Path:
    """Path of the shim library for the current sources and compiler, building it if needed."""
    src = runtime_source_dir()
    sources = _listed(src / "src", ".c")
    if not sources:
        raise RuntimeError(f"runtime sources not found under {src}")
    cmd_flags = [*_SHIM_FLAGS, "-I", str(src / "include")]
    key = _build_key(src, sources, cmd_flags)
    root = config.cache_dir() / "runtime"
    final = root / key
    lib = final / LIB_NAME
    if not lib.is_file():
        _build_locked(root, final, sources, cmd_flags)
    check_private(lib)
    return lib


def _build_key(src: Path, sources: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    h.update(f"abi={ABI_VERSION}\0cc={compiler.cc_identity()}\0".encode())
    h.update(CDEF.encode())
    h.update("\0".join(flags[: len(_SHIM_FLAGS)]).encode())  # not the -I path: moves with venvs
    for path in [*_listed(src / "include", ".h"), *_listed(src / "src", ".h"), *sources]:
        h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def _listed(directory: Path, suffix: str) -> list[Path]:
    """The files in ``directory`` ending in ``suffix``, sorted. Path.glob would compile a
    pattern into a regex first, which costs a new process more than the listing."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [directory / n for n in sorted(names) if n.endswith(suffix)]


def _build_locked(root: Path, final: Path, sources: list[Path], flags: list[str]) -> None:
    def build(tmp: Path) -> None:
        cmd = [*compiler.cc_command(), *flags, "-o", str(tmp / LIB_NAME)]
        compiler.run_compiler([*cmd, *map(str, sources)])
        _emit_ffi_module(tmp)

    publish(root, final, LIB_NAME, build)


def publish(root: Path, final: Path, artifact: str, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp)`` in a temp dir beside ``final`` and publish it with one rename.

    The file lock keeps concurrent processes from compiling the same thing twice; the
    rename keeps a reader from ever seeing a half-written library. ``artifact`` is the file
    whose presence means "already built".
    """
    import filelock  # imported here: a warm start never needs it

    root.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(root / f"{final.name}.lock")):
        if (final / artifact).is_file():
            return  # another process built it while we waited
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
        try:
            build(tmp)
            if final.exists():  # a half-published leftover; replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)


def check_private(path: Path) -> None:
    """Refuse to load a library that someone else owns or that anyone may rewrite."""
    for p in (path, path.parent):
        st = p.stat()
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise RuntimeError(f"refusing to load {path}: {p} is owned by another user")
        if st.st_mode & stat.S_IWOTH:
            raise RuntimeError(f"refusing to load {path}: {p} is writable by everyone")


def _ffi_module_name(cffi_version: str) -> str:
    """The pre-parsed ffi module is per cffi version: named for it, so that the shim's key
    need not import cffi (a warm C launch path never does)."""
    return f"{FFI_MODULE}_{cffi_version.replace('.', '_')}.py"


def _emit_ffi_module(directory: Path) -> None:
    import cffi

    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(FFI_MODULE, None)
    with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating ..."
        builder.emit_python_code(str(directory / _ffi_module_name(cffi.__version__)))


def _load_ffi(module_path: Path) -> Any:
    """The pre-parsed ffi from the build directory, or a freshly parsed one if it is missing
    (the shim was built under another cffi) or unusable."""
    try:
        spec = importlib.util.spec_from_file_location(FFI_MODULE, module_path)
        if spec is None or spec.loader is None:
            raise ImportError(module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.ffi
    except Exception:  # missing, truncated, or from another cffi: parsing is only slower
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        return ffi
