"""What ``import pypto_jit`` loads: the launch machinery, not the compiler."""

from __future__ import annotations

import subprocess
import sys

NOT_AT_IMPORT = (
    "numpy",
    "torch",
    "lark",
    "filelock",
    "cffi",
    "pypto_jit.frontend.lowering",
    "pypto_jit.ir.nodes",
    "pypto_jit.ir.builder",
    "pypto_jit.passes",
    "pypto_jit.codegen",
)


def test_importing_the_package_loads_neither_the_compiler_nor_numpy():
    code = (
        "import sys, pypto_jit, pypto_jit.language\n"
        f"print(*[m for m in {NOT_AT_IMPORT!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_the_ir_and_language_names_still_resolve_on_use():
    import pypto_jit.ir as ir
    import pypto_jit.language as pl

    assert ir.Module.__name__ == "Module" and ir.Op.LOAD.name == "LOAD"
    assert pl.float32.ir.np_dtype.itemsize == 4
