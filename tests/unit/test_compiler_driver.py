"""The C compiler driver, against fake compilers (shell scripts): no real C compiler needed.

The fakes print what gcc and clang print for ``-march=native -###`` and log every call, so
these tests pin the parsing of the host ISA, the flags per mode, the on-disk host cache
(a warm process must not run the compiler) and the error raised when compiling fails.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pypto_jit.runtime import compiler, shim

GCC_CC1 = (
    ' /usr/lib/gcc/x86_64-linux-gnu/12/cc1 -E -quiet -imultiarch x86_64-linux-gnu - "-march=znver3"'
    ' -mmmx -mavx2 -mno-xop -mavx512f --param "l1-cache-size=32" "-mtune=znver3" -dumpbase -'
)
CLANG_CC1 = (
    ' "/usr/lib/llvm-15/bin/clang" "-cc1" "-triple" "x86_64-pc-linux-gnu" "-E" "-target-cpu"'
    ' "skylake" "-target-feature" "+avx2" "-target-feature" "-avx512f" "-x" "c" "/dev/null"'
)


def fake_cc(tmp_path: Path, name: str, native_stderr: str | None, version: str) -> Path:
    """A compiler stand-in: answers --version and -###, fails any real compile with 'boom'."""
    log = tmp_path / f"{name}.log"
    native = (
        f"cat >&2 <<'EOF'\nCOLLECT_GCC_OPTIONS='-march=native'\n{native_stderr}\nEOF\nexit 0"
        if native_stderr is not None
        else "echo \"error: unknown option '-march=native'\" >&2; exit 1"
    )
    script = tmp_path / name
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'case "$*" in\n'
        f'  *--version*) echo "{version}"; echo "Copyright"; exit 0;;\n'
        f"  *-###*) {native};;\n"
        '  *) echo "boom: this is not C" >&2; exit 1;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def calls(script: Path) -> list[str]:
    log = script.with_name(script.name + ".log")
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(tmp_path / "cache"))
    compiler._host_record.cache_clear()
    yield
    compiler._host_record.cache_clear()


def test_cc_env_wins(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "mycc", GCC_CC1, "mycc (Fake) 12.2.0")
    monkeypatch.setenv("CC", str(cc))
    assert compiler.find_cc() == str(cc)
    assert compiler.cc_command() == [str(cc)]


def test_cc_env_with_wrapper_words(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "mycc", GCC_CC1, "mycc (Fake) 12.2.0")
    monkeypatch.setenv("CC", f"{cc} --some-flag")
    assert compiler.cc_command() == [str(cc), "--some-flag"]


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    with pytest.raises(RuntimeError, match="no-such-compiler-xyz"):
        compiler.find_cc()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="no C compiler found"):
        compiler.find_cc()


def test_gcc_native_is_resolved_to_concrete_flags(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "gcc", GCC_CC1, "gcc (Fake) 12.2.0")
    monkeypatch.setenv("CC", str(cc))
    isa = ["-march=znver3", "-mmmx", "-mavx2", "-mno-xop", "-mavx512f", "-mtune=znver3"]
    assert compiler.host_isa_flags() == [*isa, "--param=l1-cache-size=32"]
    assert "-march=znver3" in compiler.host_features_key()
    assert compiler.cc_identity() == f"{os.path.realpath(cc)} gcc (Fake) 12.2.0"

    cpu = compiler.compile_flags("cpu")
    for flag in ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-fwrapv"]:
        assert flag in cpu
    assert "-fno-strict-aliasing" in cpu and "-mprefer-vector-width=512" in cpu
    assert not any("fast-math" in f for f in cpu)
    inc = Path(cpu[cpu.index("-I") + 1])
    assert (inc / "pypto_runtime.h").is_file()
    sim = compiler.compile_flags("sim")
    assert "-O3" not in sim and ("-O1" in sim or "-O2" in sim)
    with pytest.raises(ValueError, match="gpu"):
        compiler.compile_flags("gpu")


def test_clang_keeps_native_but_keys_on_features(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "clang", CLANG_CC1, "clang version 15.0.6")
    monkeypatch.setenv("CC", str(cc))
    assert compiler.host_isa_flags() == ["-march=native"]
    assert compiler.host_features_key() == "cpu=skylake +avx2 -avx512f"
    assert "-mprefer-vector-width=512" not in compiler.compile_flags("cpu")


def test_compiler_without_native_gets_no_isa_flags(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "oldcc", None, "oldcc 1.0")
    monkeypatch.setenv("CC", str(cc))
    assert compiler.host_isa_flags() == []
    assert compiler.host_features_key().startswith("generic-")


def test_host_probe_is_cached_on_disk(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "gcc", GCC_CC1, "gcc (Fake) 12.2.0")
    monkeypatch.setenv("CC", str(cc))
    first = (compiler.host_isa_flags(), compiler.host_features_key(), compiler.cc_identity())
    probes = len(calls(cc))
    assert probes >= 2  # --version and -###
    assert list((tmp_path / "cache" / "host").glob("*.json"))

    compiler._host_record.cache_clear()  # as in a new process
    again = (compiler.host_isa_flags(), compiler.host_features_key(), compiler.cc_identity())
    assert again == first and len(calls(cc)) == probes  # the compiler was not run again

    for f in (tmp_path / "cache" / "host").glob("*.json"):
        f.write_text("{ truncated")
    compiler._host_record.cache_clear()
    assert compiler.host_isa_flags() == first[0] and len(calls(cc)) > probes


def test_compile_failure_names_command_and_stderr(monkeypatch, tmp_path):
    cc = fake_cc(tmp_path, "gcc", GCC_CC1, "gcc (Fake) 12.2.0")
    monkeypatch.setenv("CC", str(cc))
    src, out = tmp_path / "k.c", tmp_path / "k.so"
    src.write_text("not C\n")
    with pytest.raises(compiler.CCompilerError) as info:
        compiler.compile_shared(src, out, "cpu", extra_flags=["-DFOO=1"])
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "boom: this is not C" in msg and str(src) in msg and "-DFOO=1" in msg
    assert info.value.cmd[0] == str(cc) and info.value.returncode == 1


def test_runtime_sources_are_found():
    src = shim.runtime_source_dir()
    assert (src / "include" / "pypto_runtime.h").is_file()
    assert list((src / "src").glob("*.c"))
