"""The on-disk cache: hits, cross-process sharing, locking, validation, eviction, security."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pypto_jit import cache
from pypto_jit.cache import CacheWarning

REPO = Path(__file__).resolve().parents[2]

# Any CacheWarning a test does not expect (inside pytest.warns) fails it.
pytestmark = pytest.mark.filterwarnings("error::pypto_jit.cache.CacheWarning")

# A builder that can run in another process: it logs each build (one line per
# call) so tests count builds through the log, not through timing.
CHILD = r"""
import json, os, sys, time
from pathlib import Path
from pypto_jit import cache

key, log, delay = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])

def build(d):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(delay)
    (d / "kernel.so").write_bytes(b"shared object " * 10)
    return {"name": "child_kernel", "signature": "i32", "backend": "cpu"}

path, meta, built = cache.get_or_build(key, build)
print(json.dumps({"built": built, "path": str(path), "created": meta["created"]}))
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(d))
    monkeypatch.delenv("PYPTO_ALWAYS_COMPILE", raising=False)
    monkeypatch.delenv("PYPTO_CACHE_MAX_BYTES", raising=False)
    return d


class Builder:
    """Writes a kernel-like set of files and counts its calls."""

    def __init__(self, name: str = "add_kernel", size: int = 1000):
        self.name, self.size, self.calls = name, size, 0

    def __call__(self, d: Path) -> dict:
        self.calls += 1
        (d / "kernel.py").write_text("def add_kernel(x, y, out): ...\n")
        (d / "kernel.c").write_text("void add_kernel(void) {}\n")
        (d / "kernel.so").write_bytes(bytes(range(256)) * (self.size // 256) + b"x")
        return {"name": self.name, "signature": "*fp32,*fp32,*fp32,i32", "backend": "cpu"}


def child_env(cache_dir: Path) -> dict:
    env = dict(os.environ, PYPTO_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("PYPTO_ALWAYS_COMPILE", None)
    return env


def run_child(cache_dir: Path, key: str, log: Path, delay: float = 0.0) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, key, str(log), str(delay)],
        env=child_env(cache_dir),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def kernels(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in (cache_dir / "kernels").iterdir())


# ---------------------------------------------------------------- hits and builds


def test_build_then_hit(cache_dir):
    build = Builder()
    path, meta, built = cache.get_or_build("k1", build)
    assert built and build.calls == 1
    assert path == cache_dir / "kernels" / "k1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert meta["name"] == "add_kernel" and meta["key"] == "k1"
    assert set(meta["files"]) == {"kernel.py", "kernel.c", "kernel.so"}
    so = meta["files"]["kernel.so"]
    assert so["size"] == (path / "kernel.so").stat().st_size
    assert len(so["sha256"]) == 64
    assert json.loads((path / "meta.json").read_text()) == meta

    path2, meta2, built2 = cache.get_or_build("k1", build)
    assert (path2, meta2, built2) == (path, meta, False)
    assert build.calls == 1
    assert cache.lookup("k1") == (path, meta)
    assert kernels(cache_dir) == ["k1"]  # no temp dir left behind


def test_lookup_missing_is_quiet(cache_dir):
    assert cache.lookup("nothing") is None  # no warning: the filter makes one an error


def test_always_compile_rebuilds_and_publishes(cache_dir, monkeypatch):
    build = Builder()
    cache.get_or_build("k1", build)
    monkeypatch.setenv("PYPTO_ALWAYS_COMPILE", "1")
    _, meta, built = cache.get_or_build("k1", build)
    assert built and build.calls == 2
    assert cache.lookup("k1")[1] == meta
    assert kernels(cache_dir) == ["k1"]


def test_invalid_key_rejected(cache_dir):
    for bad in ("", "../evil", "a/b", "k.tmp-1-ab", "x" * 129):
        with pytest.raises(ValueError, match="invalid cache key"):
            cache.get_or_build(bad, Builder())


def test_second_process_reuses_entry(cache_dir, tmp_path):
    log = tmp_path / "builds.log"
    first = run_child(cache_dir, "shared", log)
    second = run_child(cache_dir, "shared", log)
    assert first["built"] is True and second["built"] is False
    assert second["path"] == first["path"] and second["created"] == first["created"]
    assert len(log.read_text().splitlines()) == 1


def test_concurrent_processes_build_once(cache_dir, tmp_path):
    log = tmp_path / "builds.log"
    cmd = [sys.executable, "-c", CHILD, "racy", str(log), "0.5"]
    env = child_env(cache_dir)
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert len(log.read_text().splitlines()) == 1
    assert sorted(r["built"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    assert results[0]["created"] == results[1]["created"]
    assert kernels(cache_dir) == ["racy"]


# ---------------------------------------------------------------------- validation


def test_truncated_file_is_a_miss_then_rebuilt(cache_dir):
    build = Builder()
    path, _, _ = cache.get_or_build("k1", build)
    data = (path / "kernel.so").read_bytes()
    (path / "kernel.so").write_bytes(data[: len(data) // 2])
    with pytest.warns(CacheWarning, match="kernel.so has .* bytes"):
        assert cache.lookup("k1") is None
    with pytest.warns(CacheWarning, match="rebuilt"):
        path2, _, built = cache.get_or_build("k1", build)
    assert built and build.calls == 2
    assert (path2 / "kernel.so").read_bytes() == data
    assert cache.lookup("k1") is not None
    assert kernels(cache_dir) == ["k1"]


def test_missing_file_is_a_miss(cache_dir):
    path, _, _ = cache.get_or_build("k1", Builder())
    (path / "kernel.c").unlink()
    with pytest.warns(CacheWarning, match="kernel.c is missing"):
        assert cache.lookup("k1") is None


def test_corrupted_content_is_caught_by_a_fresh_process(cache_dir):
    path, _, _ = cache.get_or_build("k1", Builder())
    so = path / "kernel.so"
    data = bytearray(so.read_bytes())
    data[10] ^= 0xFF  # same size: only the sha256 can tell
    so.write_bytes(bytes(data))
    code = "import warnings; from pypto_jit import cache; print(cache.lookup('k1'))"
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        env=child_env(cache_dir),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "None"
    assert "CacheWarning" in out.stderr and "sha256" in out.stderr


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00garbage", b'{"key": "k1", "files": {', b"[1, 2]", b""]
)
def test_unreadable_meta_is_a_miss(cache_dir, content):
    path, _, _ = cache.get_or_build("k1", Builder())
    (path / "meta.json").write_bytes(content)
    with pytest.warns(CacheWarning, match="meta.json"):
        assert cache.lookup("k1") is None


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads mode-000 files anyway"
)
def test_meta_without_read_permission_is_a_miss(cache_dir):
    path, _, _ = cache.get_or_build("k1", Builder())
    (path / "meta.json").chmod(0)
    with pytest.warns(CacheWarning, match="meta.json is unreadable"):
        assert cache.lookup("k1") is None


def test_meta_for_another_key_is_a_miss(cache_dir):
    path, meta, _ = cache.get_or_build("k1", Builder())
    (path / "meta.json").write_text(json.dumps({**meta, "key": "k2"}))
    with pytest.warns(CacheWarning, match="names key 'k2'"):
        assert cache.lookup("k1") is None


def test_failing_builder_leaves_nothing(cache_dir):
    boom = RuntimeError("cc failed")

    def build(d: Path) -> dict:
        (d / "kernel.c").write_text("half written")
        raise boom

    with pytest.raises(RuntimeError) as info:
        cache.get_or_build("k1", build)
    assert info.value is boom
    assert kernels(cache_dir) == []
    assert cache.lookup("k1") is None


def test_builder_must_return_a_dict(cache_dir):
    with pytest.raises(TypeError, match="must return a dict"):
        cache.get_or_build("k1", lambda d: None)
    assert kernels(cache_dir) == []


def test_stale_temp_dir_is_cleaned_up_by_next_build(cache_dir):
    cache.get_or_build("other", Builder())
    stale = cache_dir / "kernels" / "k1.tmp-999999-deadbeef"
    stale.mkdir()
    (stale / "kernel.c").write_text("from a crashed build")
    cache.get_or_build("k1", Builder())
    assert kernels(cache_dir) == ["k1", "other"]


# ------------------------------------------------------------------------ eviction


def test_prune_evicts_least_recently_used_first(cache_dir):
    sizes = {}
    for i, key in enumerate(["a", "b", "c"]):
        path, _, _ = cache.get_or_build(key, Builder())
        os.utime(path, (1000 + i, 1000 + i))  # a oldest, c newest, whatever the clock says
        sizes[key] = sum(p.stat().st_size for p in path.iterdir())
    assert cache.lookup("a") is not None  # a hit makes "a" the most recently used
    assert cache.prune(sizes["a"] + sizes["c"]) == 1
    assert kernels(cache_dir) == ["a", "c"]
    assert cache.prune(sizes["a"]) == 1
    assert kernels(cache_dir) == ["a"]
    assert cache.prune(10**9) == 0


def test_max_bytes_prunes_after_build_but_keeps_new_entry(cache_dir, monkeypatch):
    path, _, _ = cache.get_or_build("old", Builder())
    os.utime(path, (1000, 1000))
    monkeypatch.setenv("PYPTO_CACHE_MAX_BYTES", "1")  # smaller than any entry
    cache.get_or_build("new", Builder())
    assert kernels(cache_dir) == ["new"]


# ------------------------------------------------------------------------ security


def test_group_writable_entry_refused_then_replaced(cache_dir):
    build = Builder()
    path, _, _ = cache.get_or_build("k1", build)
    path.chmod(0o770)
    with pytest.warns(CacheWarning, match="writable by group/others"):
        assert cache.lookup("k1") is None
    with pytest.warns(CacheWarning):
        _, _, built = cache.get_or_build("k1", build)
    assert built and build.calls == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert cache.lookup("k1") is not None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_entry_owned_by_someone_else_refused(cache_dir):
    path, _, _ = cache.get_or_build("k1", Builder())
    os.chown(path, 12345, -1)
    with pytest.warns(CacheWarning, match="owned by uid 12345"):
        assert cache.lookup("k1") is None


def test_insecure_cache_dir_is_not_used(cache_dir):
    build = Builder()
    cache.get_or_build("k1", build)
    cache_dir.chmod(0o777)
    with pytest.warns(CacheWarning, match="writable by group/others"):
        assert cache.lookup("k1") is None
    with pytest.warns(CacheWarning, match="building without the cache"):
        path, meta, built = cache.get_or_build("k1", build)
    assert built and build.calls == 2
    assert cache_dir not in path.parents  # built privately, not published
    assert meta["files"]["kernel.so"]["size"] == (path / "kernel.so").stat().st_size


# ---------------------------------------------------------------------- inspection


def test_list_stats_show_clear(cache_dir):
    cache.get_or_build("abc111", Builder("k_one"))
    cache.get_or_build("abc222", Builder("k_two", size=3000))
    entries = {e["key"]: e for e in cache.list_entries()}
    assert set(entries) == {"abc111", "abc222"}
    assert entries["abc111"]["name"] == "k_one"
    assert entries["abc222"]["size"] > entries["abc111"]["size"] > 1000
    assert entries["abc111"]["path"] == str(cache_dir / "kernels" / "abc111")
    s = cache.stats()
    assert s["count"] == 2 and s["dir"] == str(cache_dir)
    assert s["total_bytes"] == sum(e["size"] for e in entries.values())

    info = cache.show("abc1")
    assert info["key"] == "abc111" and info["name"] == "k_one" and info["valid"]
    assert "kernel.so" in info["files"]
    with pytest.raises(KeyError, match="ambiguous"):
        cache.show("abc")
    with pytest.raises(KeyError, match="no cache entry matches"):
        cache.show("zzz")

    assert cache.clear() == 2
    assert cache.list_entries() == [] and cache.stats()["count"] == 0


def test_show_reports_a_broken_entry(cache_dir):
    path, _, _ = cache.get_or_build("k1", Builder())
    (path / "meta.json").write_text("{not json")
    info = cache.show("k1")
    assert not info["valid"] and "meta.json" in info["problem"]
    assert "kernel.so" in info["files"]


def test_inspection_of_missing_cache_dir(cache_dir):
    assert cache.list_entries() == []
    assert cache.stats()["count"] == 0
    assert cache.clear() == 0
    assert cache.prune(0) == 0


def test_clear_keeps_a_live_builders_temp_dir(cache_dir):
    cache.get_or_build("k1", Builder())
    live = cache_dir / "kernels" / f"k2.tmp-{os.getpid()}-abcd"
    dead = cache_dir / "kernels" / "k3.tmp-4194999-abcd"  # above Linux's pid_max
    live.mkdir()
    dead.mkdir()
    assert cache.clear() == 1
    assert kernels(cache_dir) == [live.name]


def test_meta_returned_on_build_equals_meta_on_hit(cache_dir):
    def build(d: Path) -> dict:
        (d / "kernel.so").write_bytes(b"so")
        return {"name": "k", "signature": ("i32", "fp32"), "backend": "cpu"}

    _, built_meta, _ = cache.get_or_build("k1", build)
    _, hit_meta, built = cache.get_or_build("k1", build)
    assert not built and built_meta == hit_meta and hit_meta["signature"] == ["i32", "fp32"]


HASHED_CHILD = r"""
import sys, warnings
from pypto_jit import cache

def build(d):
    (d / "kernel.so").write_bytes(b"x" * 1000)
    return {}

hashed = None if sys.argv[1] == "all" else tuple(sys.argv[1].split(","))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    path, meta, built = cache.get_or_build("k1", build, hashed=hashed)
print("BUILT" if built else "HIT", *(str(w.message) for w in caught))
"""


def hit_in_new_process(cache_dir, hashed: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", HASHED_CHILD, hashed],
        env=child_env(cache_dir),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize("damaged", ["kernel.so", "kernel.c"])
def test_a_hit_hashes_the_files_it_is_told_to(cache_dir, damaged):
    path, _, _ = cache.get_or_build("k1", Builder())
    f = path / damaged
    data = bytearray(f.read_bytes())
    data[3] ^= 0xFF  # same size: only the sha256 can tell
    f.write_bytes(bytes(data))
    out = hit_in_new_process(cache_dir, "kernel.so")
    if damaged == "kernel.so":
        assert out.startswith("BUILT") and "does not match its sha256" in out
    else:  # a listing the caller does not load right away is not read
        assert out.strip() == "HIT"
        assert hit_in_new_process(cache_dir, "all").startswith("BUILT")


def test_a_hit_checks_every_size_whatever_it_hashes(cache_dir):
    path, _, _ = cache.get_or_build("k1", Builder())
    (path / "kernel.c").write_text("")
    out = hit_in_new_process(cache_dir, "kernel.so")
    assert out.startswith("BUILT") and "kernel.c has 0 bytes" in out
