"""``python -m pypto_jit``: the cache commands on a populated cache, and `runtime build`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pypto_jit import cache
from pypto_jit.cli import human_age, human_size, main, parse_size

REPO = Path(__file__).resolve().parents[2]
KEY_A = "a1b2c3d4e5f6a7b8c9d0"
KEY_B = "a1b2ffffffffffffffff"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(d))
    monkeypatch.delenv("PYPTO_CACHE_MAX_BYTES", raising=False)
    monkeypatch.delenv("PYPTO_ALWAYS_COMPILE", raising=False)
    return d


def builder(name: str, signature: str, size: int):
    def build(d: Path) -> dict:
        (d / "kernel.c").write_text(f"void {name}(void) {{}}\n")
        (d / "kernel.so").write_bytes(b"\0" * size)
        return {"name": name, "signature": signature, "backend": "cpu"}

    return build


@pytest.fixture
def populated(cache_dir):
    cache.get_or_build(KEY_A, builder("add_kernel", "*fp32,*fp32,i32", 12_000))
    cache.get_or_build(KEY_B, builder("softmax_kernel", "*fp16,i32,BLOCK=1024", 500))
    return cache_dir


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_human_units():
    assert human_size(512) == "512 B"
    assert human_size(12_595) == "12.3 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"
    assert [human_age(s) for s in (7, 300, 7200, 3 * 86400)] == ["7s", "5m", "2h", "3d"]
    assert parse_size("1000") == 1000
    assert parse_size("64M") == 64 << 20 and parse_size("2GiB") == 2 << 30


def test_cache_path(capsys, cache_dir):
    assert run(capsys, "cache", "path") == (0, f"{cache_dir}\n", "")


def test_cache_list(capsys, populated):
    rc, out, _ = run(capsys, "cache", "list")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "NAME", "BACKEND", "SIGNATURE", "SIZE", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {KEY_A[:12], KEY_B[:12]}
    a = rows[KEY_A[:12]]
    assert a[1:4] == ["add_kernel", "cpu", "*fp32,*fp32,i32"]
    size = next(e["size"] for e in cache.list_entries() if e["key"] == KEY_A)
    assert 12_000 < size < 13_000  # the .so plus a small .c and meta.json
    assert " ".join(a[4:6]) == human_size(size) == f"{size / 1024:.1f} KiB"
    assert re.fullmatch(r"\d+[smhd]", a[6])
    assert rows[KEY_B[:12]][1] == "softmax_kernel"


def test_cache_list_empty(capsys, cache_dir):
    rc, out, _ = run(capsys, "cache", "list")
    assert rc == 0 and "no cached kernels" in out


def test_cache_show(capsys, populated):
    rc, out, _ = run(capsys, "cache", "show", KEY_A[:6])
    assert rc == 0
    assert re.search(r"^name:\s+add_kernel$", out, re.M)
    assert re.search(rf"^key:\s+{KEY_A}$", out, re.M)
    assert re.search(r"^valid:\s+true$", out, re.M)
    assert re.search(r"^\s+kernel\.so\s+11\.7 KiB$", out, re.M)

    rc, out, _ = run(capsys, "cache", "show", "--json", KEY_B)
    assert rc == 0 and '"name": "softmax_kernel"' in out


def test_cache_show_bad_key(capsys, populated):
    rc, out, err = run(capsys, "cache", "show", "a1b2")
    assert rc == 1 and "ambiguous" in err and out == ""
    rc, _, err = run(capsys, "cache", "show", "nope")
    assert rc == 1 and "no cache entry matches 'nope'" in err


def test_cache_stats(capsys, populated):
    rc, out, _ = run(capsys, "cache", "stats")
    assert rc == 0
    assert f"dir:      {populated}" in out
    assert re.search(r"^entries:\s+2$", out, re.M)
    total = cache.stats()["total_bytes"]
    assert f"({total} bytes)" in out


def test_cache_clear(capsys, populated):
    rc, out, _ = run(capsys, "cache", "clear")
    assert rc == 0 and out.startswith("removed 2 entries")
    assert cache.list_entries() == []


def test_cache_prune(capsys, populated):
    entries = {e["key"]: e for e in cache.list_entries()}
    os.utime(entries[KEY_A]["path"], (1000, 1000))  # A is least recently used
    rc, out, _ = run(capsys, "cache", "prune", "--max-bytes", str(entries[KEY_B]["size"]))
    assert rc == 0 and out.startswith("removed 1 entry; 1 left")
    assert [e["key"] for e in cache.list_entries()] == [KEY_B]


def test_cache_prune_size_from_environment(capsys, populated, monkeypatch):
    monkeypatch.setenv("PYPTO_CACHE_MAX_BYTES", "0")
    rc, out, _ = run(capsys, "cache", "prune")
    assert rc == 0 and out.startswith("removed 2 entries; 0 left")


def test_cache_prune_needs_a_size(capsys, populated):
    rc, _, err = run(capsys, "cache", "prune")
    assert rc == 2 and "--max-bytes" in err and "PYPTO_CACHE_MAX_BYTES" in err
    assert len(cache.list_entries()) == 2


def test_bad_usage_exits_2(capsys):
    for argv in ([], ["cache"], ["cache", "bogus"], ["cache", "prune", "--max-bytes", "lots"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_runtime_build_calls_the_shim(capsys, monkeypatch):
    # The real shim needs a C compiler; stand-ins check the command's wiring.
    import pypto_jit.runtime as package

    fake = types.ModuleType("pypto_jit.runtime.shim")
    fake.runtime = lambda: types.SimpleNamespace(path="/somewhere/libpypto_runtime.so")
    fast = types.ModuleType("pypto_jit.runtime.fastpath")
    fast.build_extension = lambda: "/somewhere/_fastlaunch.so"
    monkeypatch.setitem(sys.modules, "pypto_jit.runtime.shim", fake)
    monkeypatch.setitem(sys.modules, "pypto_jit.runtime.fastpath", fast)
    monkeypatch.setattr(package, "fastpath", fast, raising=False)
    out = "/somewhere/libpypto_runtime.so\n/somewhere/_fastlaunch.so\n"
    assert run(capsys, "runtime", "build") == (0, out, "")


def test_runtime_build_without_the_launch_extension(capsys, monkeypatch):
    import pypto_jit.runtime as package

    fake = types.ModuleType("pypto_jit.runtime.shim")
    fake.runtime = lambda: types.SimpleNamespace(path="/somewhere/libpypto_runtime.so")
    fast = types.ModuleType("pypto_jit.runtime.fastpath")

    def no_headers():
        raise RuntimeError("Python.h not found")

    fast.build_extension = no_headers
    monkeypatch.setitem(sys.modules, "pypto_jit.runtime.shim", fake)
    monkeypatch.setitem(sys.modules, "pypto_jit.runtime.fastpath", fast)
    monkeypatch.setattr(package, "fastpath", fast, raising=False)
    rc, out, _ = run(capsys, "runtime", "build")
    assert rc == 0 and "Python.h not found" in out and "launches use Python" in out


def test_python_dash_m(cache_dir):
    env = dict(os.environ, PYPTO_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-m", "pypto_jit", "cache", "path"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == f"{cache_dir}\n"
