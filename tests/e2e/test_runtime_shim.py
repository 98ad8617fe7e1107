"""The C runtime shim, driven by hand-written kernels (no IR or codegen involved).

Every kernel here is compiled with the real driver (``compile_shared``) against the real
header, so these tests pin the ABI the code generator writes to: argument passing, program
ids, grid shapes, thread counts, error records, stacks, fork and thread safety, and the
floating-point environment.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pypto_jit.runtime import compiler, shim


def _have_cc() -> bool:
    try:
        compiler.find_cc()
    except RuntimeError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _have_cc(), reason="needs a C compiler")

PRELUDE = """
#include "pypto_runtime.h"
#include <stdio.h>
#include <string.h>
int64_t pypto_stack_bytes(void) { return STACK_BYTES; }
int32_t pypto_kernel_abi(void) { return KERNEL_ABI; }
"""

KERNELS = {
    # iargs: x, y, out (float32*), n, block. One block of elements per program.
    "vadd": """
int pypto_program(const int64_t *ia, const double *fa, int64_t p0, int64_t p1, int64_t p2,
                  const pypto_ctx *ctx) {
  const float *x = (const float *)ia[0], *y = (const float *)ia[1];
  float *out = (float *)ia[2];
  int64_t n = ia[3], block = ia[4], lo = p0 * block, hi = lo + block < n ? lo + block : n;
  for (int64_t i = lo; i < hi; i++) out[i] = x[i] * (float)fa[0] + y[i];
  return 0;
}""",
    # iargs: out (int64* [total][6]), count (int64* [total]). Records pids and the grid.
    "pids": """
int pypto_program(const int64_t *ia, const double *fa, int64_t p0, int64_t p1, int64_t p2,
                  const pypto_ctx *ctx) {
  int64_t *out = (int64_t *)ia[0], *count = (int64_t *)ia[1];
  int64_t f = p0 + ctx->grid[0] * (p1 + ctx->grid[1] * p2);
  int64_t row[6] = {p0, p1, p2, ctx->grid[0], ctx->grid[1], ctx->grid[2]};
  memcpy(out + 6 * f, row, sizeof row);
  __atomic_fetch_add(&count[f], 1, __ATOMIC_RELAXED);
  return 0;
}""",
    # iargs: ran (int64*), bad_a, bad_b, silent. Programs bad_a and bad_b report OOB;
    # program `silent` fails without filling the record.
    "oob": """
int pypto_program(const int64_t *ia, const double *fa, int64_t p0, int64_t p1, int64_t p2,
                  const pypto_ctx *ctx) {
  ((int64_t *)ia[0])[p0] = 1;
  if (p0 == ia[3]) return 7;
  if (p0 != ia[1] && p0 != ia[2]) return 0;
  pypto_error *e = ctx->err;
  e->kind = PYPTO_ERR_OOB;
  e->line = 7;
  e->col = 3;
  e->param = 1;
  e->index = p0 * 10;
  e->extent = 42;
  snprintf(e->message, sizeof e->message, "bad access in program %lld", (long long)p0);
  return 1;
}""",
    # iargs: out (int64*). Uses 8 MiB of stack and touches every page of it.
    "bigstack": """
int pypto_program(const int64_t *ia, const double *fa, int64_t p0, int64_t p1, int64_t p2,
                  const pypto_ctx *ctx) {
  volatile char buf[8 << 20];
  int64_t sum = 0;
  for (int64_t i = 0; i < (int64_t)sizeof buf; i += 4096) buf[i] = (char)(p0 + 1);
  for (int64_t i = 0; i < (int64_t)sizeof buf; i += 4096) sum += buf[i];
  ((int64_t *)ia[0])[p0] = sum;
  return 0;
}""",
    # iargs: x, y, out (float32*), n. Elementwise product in one program.
    "mul": """
int pypto_program(const int64_t *ia, const double *fa, int64_t p0, int64_t p1, int64_t p2,
                  const pypto_ctx *ctx) {
  const float *x = (const float *)ia[0], *y = (const float *)ia[1];
  float *out = (float *)ia[2];
  for (int64_t i = p0; i < ia[3]; i += ctx->grid[0]) out[i] = x[i] * y[i];
  return 0;
}""",
    # iargs: who (int64* [total]), stall_ms. Records which thread ran each program (the
    # address of a thread-local); program 0 first spins for stall_ms of wall time.
    "who": """
#include <time.h>
static __thread char here;
int pypto_program(const int64_t *ia, const double *fa, int64_t p0, int64_t p1, int64_t p2,
                  const pypto_ctx *ctx) {
  if (p0 == 0) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ia[1]);
  }
  ((int64_t *)ia[0])[p0] = (int64_t)(intptr_t)&here;
  return 0;
}""",
}
STACKS = {"bigstack": 8 << 20}
MIB = 1 << 20


def _build(tmp, name: str, body: str, stack: int, abi: int = shim.ABI_VERSION) -> str:
    src = tmp / f"{name}.c"
    src.write_text(f"#define STACK_BYTES {stack}LL\n#define KERNEL_ABI {abi}\n{PRELUDE}{body}\n")
    out = tmp / f"{name}.so"
    compiler.compile_shared(src, out, "cpu")
    return str(out)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A runtime built into a private cache, and every test kernel, compiled in parallel."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYPTO_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    tmp = tmp_path_factory.mktemp("kernels")
    jobs = {name: (name, body, STACKS.get(name, 0)) for name, body in KERNELS.items()}
    jobs["huge"] = ("huge", KERNELS["vadd"], 61 * MIB)
    jobs["oldabi"] = ("oldabi", KERNELS["vadd"], 0, 0)
    with ThreadPoolExecutor(4) as pool:
        paths = dict(zip(jobs, pool.map(lambda j: _build(tmp, *j), jobs.values()), strict=True))
    rt = shim.Runtime(shim.build_runtime())
    kernels = {name: rt.load_kernel(p) for name, p in paths.items() if name != "oldabi"}
    yield rt, kernels, paths
    mp.undo()


def ptr(rt, arr: np.ndarray) -> int:
    return int(rt.ffi.cast("int64_t", rt.ffi.from_buffer(arr)))


def vadd(rt, k, n: int, block: int, num_threads: int = 0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    out = np.full(n, -1.0, dtype=np.float32)
    grid = (-(-n // block),)
    iargs = [ptr(rt, x), ptr(rt, y), ptr(rt, out), n, block]
    assert rt.launch(k["vadd"], grid, iargs, [2.0], num_threads=num_threads) == 0
    np.testing.assert_array_equal(out, x * np.float32(2.0) + y)


def run_pids(rt, k, grid, num_threads: int = 0, mode: int = 0):
    total = int(np.prod(grid))
    out = np.full((max(total, 1), 6), -1, dtype=np.int64)
    count = np.zeros(max(total, 1), dtype=np.int64)
    rc = rt.launch(
        k["pids"], grid, [ptr(rt, out), ptr(rt, count)], num_threads=num_threads, mode=mode
    )
    return rc, out, count


def test_runtime_identity(env):
    rt, _, _ = env
    assert rt.lib.pypto_abi_version() == shim.ABI_VERSION
    assert rt.ffi.sizeof("pypto_error") == 256 and rt.ffi.sizeof("pypto_ctx") == 32
    assert rt.num_cores() >= 1
    assert rt.path.name == shim.LIB_NAME and rt.path.is_file()
    assert (shim.runtime_source_dir() / "include" / "pypto_runtime.h").is_file()


def test_runtime_singleton_and_rebuild_is_cached(env):
    rt, _, _ = env
    assert shim.build_runtime() == rt.path  # same key, no second build
    assert shim.runtime() is shim.runtime()


@pytest.mark.parametrize("n,block", [(1, 16), (1000, 64), (100_003, 1024)])
def test_vector_add_matches_numpy(env, n, block):
    rt, k, _ = env
    vadd(rt, k, n, block)


@pytest.mark.parametrize("grid", [(3, 4, 5), (7, 1, 2), (1, 1, 9), (17,)])
@pytest.mark.parametrize("mode", [0, 1])
def test_grid_pids_exact(env, grid, mode):
    rt, k, _ = env
    rc, out, count = run_pids(rt, k, grid, mode=mode)
    assert rc == 0
    g = (*grid, 1, 1)[:3]
    f = np.arange(g[0] * g[1] * g[2])
    expect = np.stack(
        [f % g[0], (f // g[0]) % g[1], f // (g[0] * g[1])] + [np.full_like(f, d) for d in g], 1
    )
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(count, 1)


@pytest.mark.parametrize("grid", [(0,), (4, 0, 2), (3, 5, 0)])
def test_empty_grid_touches_nothing(env, grid):
    rt, k, _ = env
    err = rt.new_error()
    err.kind = 99  # success leaves the record alone
    out = np.full((4, 6), -1, dtype=np.int64)
    count = np.zeros(4, dtype=np.int64)
    rc = rt.launch(k["pids"], grid, [ptr(rt, out), ptr(rt, count)], err=err)
    assert rc == 0 and err.kind == 99
    assert (out == -1).all() and (count == 0).all()


@pytest.mark.parametrize("num_threads", [1, 2, 3, 64, 0, -1])
def test_thread_counts(env, num_threads):
    rt, k, _ = env
    for grid in [(5,), (2, 3), (64, 2)]:
        rc, _, count = run_pids(rt, k, grid, num_threads=num_threads)
        assert rc == 0
        np.testing.assert_array_equal(count, 1)
    vadd(rt, k, 4099, 128, num_threads=num_threads)


@pytest.mark.parametrize("num_threads", [2, 3, 8])
@pytest.mark.parametrize("total", [1, 2, 7, 64, 1000, 100_003])
def test_every_program_runs_once_whatever_the_chunking(env, num_threads, total):
    rt, k, _ = env
    rc, out, count = run_pids(rt, k, (total,), num_threads=num_threads)
    assert rc == 0
    np.testing.assert_array_equal(count, 1)
    np.testing.assert_array_equal(out[:, 0], np.arange(total))


def test_a_stalled_thread_holds_back_one_chunk_not_half_the_grid(env):
    """Program 0 keeps its thread busy for 300 ms; the other thread takes the programs that
    are left meanwhile (chunks come from a shared counter), instead of waiting out a static
    half of the grid behind it."""
    rt, k, _ = env
    who = np.zeros(256, dtype=np.int64)
    assert rt.launch(k["who"], (256,), [ptr(rt, who), 300], num_threads=2) == 0
    assert (who != 0).all()
    stalled = int((who == who[0]).sum())
    assert len(set(who.tolist())) == 2
    assert stalled < 128, f"the stalled thread ran {stalled} of 256 programs"


@pytest.mark.parametrize("mode,num_threads", [(1, 0), (0, 1), (0, 2), (0, 3), (0, 0), (0, 12)])
def test_error_record_is_lowest_failing_program(env, mode, num_threads):
    rt, k, _ = env
    ran = np.zeros(12, dtype=np.int64)
    err = rt.new_error()
    rc = rt.launch(
        k["oob"], (12,), [ptr(rt, ran), 5, 9, -1], mode=mode, num_threads=num_threads, err=err
    )
    assert rc == rt.lib.PYPTO_ERR_OOB
    rec = rt.error_record(err)
    assert rec == {
        "kind": "oob",
        "line": 7,
        "col": 3,
        "param": 1,
        "pid": (5, 0, 0),
        "index": 50,
        "extent": 42,
        "message": "bad access in program 5",
    }
    assert ran[:6].all()  # every program below the failure ran
    if mode == 1 or num_threads == 1:
        assert not ran[6:].any()  # sequential: nothing after the first failure


def test_error_without_record_and_pid_from_runtime(env):
    rt, k, _ = env
    ran = np.zeros(6, dtype=np.int64)
    err = rt.new_error()
    rc = rt.launch(k["oob"], (2, 3), [ptr(rt, ran), -1, -1, 1], mode=1, err=err)
    rec = rt.error_record(err)
    assert rc == rt.lib.PYPTO_ERR_OTHER and rec["kind"] == "other"
    assert rec["pid"] == (1, 0, 0) and rec["param"] == -1 and "returned 7" in rec["message"]


def test_bad_launches_are_refused(env):
    rt, k, _ = env
    err = rt.new_error()
    out = np.zeros(4, dtype=np.float32)
    args = [ptr(rt, out)] * 3 + [4, 4]
    assert rt.launch(k["huge"], (1,), args, [1.0], err=err) == rt.lib.PYPTO_ERR_OTHER
    assert "stack" in rt.error_record(err)["message"] and (out == 0).all()
    assert rt.launch(k["vadd"], (-1,), args, [1.0], err=err) == rt.lib.PYPTO_ERR_OTHER
    assert rt.launch(k["vadd"], (1,), args, [1.0], mode=2, err=err) == rt.lib.PYPTO_ERR_OTHER
    assert rt.launch(k["vadd"], (1 << 40, 1 << 40), args, [1.0], err=err) == rt.lib.PYPTO_ERR_OTHER


@pytest.mark.parametrize("loader", ["cffi", "extension"])
def test_kernel_with_wrong_abi_is_rejected(env, tmp_path, loader):
    rt, _, paths = env
    load = rt.load_kernel
    if loader == "extension":  # what the C launch path loads kernels with
        from pypto_jit.runtime import fastpath

        if fastpath.module() is None:
            pytest.skip("the C launch path could not be built here")
        load = fastpath.load_kernel
    with pytest.raises(RuntimeError, match="kernel ABI 0"):
        load(paths["oldabi"])
    not_a_kernel = tmp_path / "plain.so"
    (tmp_path / "plain.c").write_text("int f(void) { return 1; }\n")
    compiler.compile_shared(tmp_path / "plain.c", not_a_kernel, "sim")
    with pytest.raises(RuntimeError, match="not a pypto kernel"):
        load(not_a_kernel)
    with pytest.raises(OSError):
        load(tmp_path / "missing.so")


def _in_child(fn, timeout: float = 30.0) -> int:
    """Run fn in a forked child; return its exit status (a crash shows as a signal).

    A child that hangs (e.g. waiting on a pool inherited from the parent) is killed and
    reported as a failure instead of hanging the test session."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork" (3.12)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report anything, then leave
            print(f"child failed: {exc!r}", file=sys.stderr)
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child process hung for {timeout} s")


def test_big_stack_program(env):
    rt, k, _ = env
    assert k["bigstack"].stack_bytes == 8 * MIB

    def body():
        for grid, mode, nt in [((1,), 0, 0), ((3,), 1, 0), ((5,), 0, 2)]:
            out = np.zeros(grid[0], dtype=np.int64)
            assert rt.launch(k["bigstack"], grid, [ptr(rt, out)], mode=mode, num_threads=nt) == 0
            np.testing.assert_array_equal(out, (np.arange(grid[0]) + 1) * (8 * MIB // 4096))

    # In a child: running such a program on too small a stack is a segfault, not an exception.
    assert _in_child(body) == 0


def test_parked_pool_wakes_up(env):
    rt, k, _ = env

    def body():
        for i in range(6):
            time.sleep(0.003)  # long enough for every worker to stop spinning and park
            rc, _, count = run_pids(rt, k, (16, 2), num_threads=(8, 16, 3)[i % 3])
            assert rc == 0 and (count == 1).all()

    # In a child with a timeout: a lost wake-up is a hang, not an exception.
    assert _in_child(body) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_dropping_a_runtime_does_not_unload_running_pool(env, tmp_path):
    rt, _, paths = env
    # A private copy of the shim (a second dlopen of the same path would share one handle).
    copy = tmp_path / "copy" / shim.LIB_NAME
    shutil.copytree(rt.path.parent, copy.parent)

    def body():
        other = shim.Runtime(copy)
        k = other.load_kernel(paths["pids"])
        out, count = np.zeros((8, 6), dtype=np.int64), np.zeros(8, dtype=np.int64)
        assert other.launch(k, (8,), [ptr(other, out), ptr(other, count)], num_threads=2) == 0
        del other, k
        gc.collect()  # cffi dlcloses with the FFI; the pool threads are still in the shim
        time.sleep(0.05)
        assert str(copy) in open("/proc/self/maps").read()

    assert _in_child(body) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_gets_a_fresh_pool(env):
    rt, k, _ = env
    vadd(rt, k, 10_000, 100, num_threads=2)  # the parent's pool exists now
    assert _in_child(lambda: (vadd(rt, k, 10_000, 100, num_threads=2), vadd(rt, k, 77, 8))) == 0
    vadd(rt, k, 10_000, 100, num_threads=2)  # and the parent's still works


def test_concurrent_launches_from_threads(env):
    rt, k, _ = env
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(50):
                vadd(rt, k, 3000 + seed, 64, num_threads=(i % 3), seed=seed * 100 + i)
                rc, _, count = run_pids(rt, k, (seed + 2, 3))
                assert rc == 0 and (count == 1).all()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("num_threads", [1, 2])
def test_denormals_survive(env, num_threads):
    rt, k, _ = env
    vadd(rt, k, 100, 10, num_threads=num_threads)  # loaded and launched: FTZ must still be off
    assert np.float32(1e-39) * np.float32(1.0) != 0
    x = np.array([1e-39, 3e-40, 1e-45, 1.5e-38, -2e-39, 1.0] * 3, dtype=np.float32)
    y = np.array([1.0, 0.5, 1.0, 0.25, 3.0, 1e-39] * 3, dtype=np.float32)
    out = np.zeros_like(x)
    args = [ptr(rt, x), ptr(rt, y), ptr(rt, out), len(x)]
    assert rt.launch(k["mul"], (num_threads,), args, num_threads=num_threads) == 0
    np.testing.assert_array_equal(out, x * y)
    assert (out[:5] != 0).all()
