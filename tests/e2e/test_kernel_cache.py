"""The on-disk cache with real kernels: reuse across processes, concurrent builds, damage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import needs_cc

from pypto_jit import cache

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import pypto_jit as pypto
    import pypto_jit.language as pl

    @pypto.jit
    def cached_add(x_ptr, y_ptr, out_ptr, n, BLOCK: pl.constexpr):
        offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
        m = offs < n
        pl.store(out_ptr + offs, pl.load(x_ptr + offs, mask=m) + pl.load(y_ptr + offs, mask=m),
                 mask=m)

    x, y = torch.arange(100.0), torch.ones(100)
    out = torch.zeros(100)
    cached_add[(4,)](x, y, out, 100, BLOCK=32, backend=sys.argv[1])
    assert torch.equal(out, x + y), out
    (kernel,) = cached_add._kernels.values()
    print("REUSED" if kernel.cache_hit else "BUILT", kernel.path)
    """
)


def run_script(tmp_path: Path, backend: str) -> tuple[str, str]:
    script = tmp_path / "kernel_script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, str(script), backend], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    status, path = proc.stdout.split()
    return status, path


@needs_cc
@pytest.mark.parametrize("backend", ["cpu", "sim"])
def test_second_process_reuses_the_entry(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(tmp_path / "cache"))
    first = run_script(tmp_path, backend)
    second = run_script(tmp_path, backend)
    assert first[0] == "BUILT"
    assert second == ("REUSED", first[1])
    assert len(cache.list_entries()) == 1


@needs_cc
def test_two_processes_compiling_the_same_new_key_both_succeed(tmp_path, monkeypatch):
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(tmp_path / "cache"))
    script = tmp_path / "kernel_script.py"
    script.write_text(SCRIPT)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "cpu"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    statuses = sorted(o[0].split()[0] for o in outs)
    assert statuses == ["BUILT", "REUSED"]  # one compiled under the lock, the other waited
    assert len(cache.list_entries()) == 1


@needs_cc
def test_truncated_shared_object_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(tmp_path / "cache"))
    _, path = run_script(tmp_path, "cpu")
    so = Path(path) / "kernel.so"
    so.write_bytes(so.read_bytes()[:100])
    status, again = run_script(tmp_path, "cpu")
    assert status == "BUILT" and again == path
    assert so.stat().st_size > 100


# Modules a launch that hits the cache must not load: the compiler proper, the IR
# parser, build-time locking, cffi (the C launch path loads the shim and the kernel
# itself), the cache's build and admin parts, and the compiler probe.
HEAVY = (
    "lark",
    "filelock",
    "cffi",
    "_cffi_backend",
    "pycparser",
    "pypto_jit.frontend.lowering",
    "pypto_jit.ir.builder",
    "pypto_jit.ir.parser",
    "pypto_jit.ir.printer",
    "pypto_jit.passes",
    "pypto_jit.codegen",
    "pypto_jit.cache.build",
    "pypto_jit.cache.admin",
    "pypto_jit.pipeline",
    "pypto_jit.runtime.host_probe",
)

WARM_SCRIPT = SCRIPT + textwrap.dedent(
    f"""
    heavy = [m for m in {HEAVY!r} if m in sys.modules]
    print("HEAVY", ",".join(heavy) or "-")
    """
)


@needs_cc
@pytest.mark.parametrize("backend", ["cpu", "sim"])
def test_a_warm_first_launch_loads_no_compiler_modules(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(tmp_path / "cache"))
    script = tmp_path / "warm_script.py"
    script.write_text(WARM_SCRIPT)
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, str(script), backend], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stdout.split())
    cold, warm = runs
    assert cold[0] == "BUILT" and "pypto_jit.passes" in cold[3]  # the check sees a compile
    assert warm[:2] == ["REUSED", cold[1]]
    assert warm[2:] == ["HEAVY", "-"]
