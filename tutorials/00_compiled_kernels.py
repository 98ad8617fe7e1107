"""Tutorial 00: compiled kernels as objects.

A kernel compiles once per specialization into a ``CompiledKernel``: an object
you can launch, that is also the path of its cache entry, that shows every
compile stage and its parameters' directions, and that another process can
load without the kernel's source.

    python tutorials/00_compiled_kernels.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import per_call, print_table, tutorial_args


@pypto.jit
def axpy(x, y, out: pl.Out(like="x"), n, alpha, BLOCK: pl.constexpr):
    """out = alpha * x + y"""
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    mask = offs < n
    pl.store(
        out + offs, alpha * pl.load(x + offs, mask=mask) + pl.load(y + offs, mask=mask), mask=mask
    )


def main(argv=None) -> None:
    tutorial_args(__doc__, argv)  # the common flags; nothing here depends on them
    n, block = 10_000, 1024
    grid = (pypto.cdiv(n, block),)

    # 1. Compile ahead of time, without data: TensorSpec placeholders.
    spec = pypto.TensorSpec((n,), pl.float32)
    ck = axpy.warmup(spec, spec, spec, n, 2.0, BLOCK=block)
    print("signature:", ck.signature)
    print("cache entry:", os.fspath(ck), "(the object is path-like)")
    print("stages:", ", ".join(ck.asm), "- the optimized IR:")
    print(textwrap.indent(ck.asm["opt_ir"], "    "))

    # 2. Both calling styles: in place (returns None) and return style (allocates `out`).
    x, y = torch.randn(n), torch.randn(n)
    out = torch.empty(n)
    assert axpy[grid](x, y, out, n, 2.0, BLOCK=block) is None
    returned = axpy[grid](x, y, n, 2.0, BLOCK=block)
    torch.testing.assert_close(out, 2.0 * x + y)
    torch.testing.assert_close(returned, out)
    # The compiled object launches too, and checks its specialization.
    torch.testing.assert_close(ck[grid](x, y, n, 2.0), out)
    try:
        ck[grid](x.double(), y, n, 2.0)
    except TypeError as e:
        print("a mismatched launch is refused:", e)

    # 3. Reload in a new process that never imports this file.
    script = (
        "import sys, torch, pypto_jit as p; ck = p.load_compiled(sys.argv[1]); "
        "x = torch.ones(10000); print(ck[(10,)](x, x, 10000, 2.0)[:3].tolist())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, os.fspath(ck)], capture_output=True, text=True, check=True
    )
    print("reloaded in a new process:", result.stdout.strip())

    rows = [
        [p["name"], p["kind"], p.get("dtype", ""), p.get("direction") or ""]
        for p in ck.metadata["params"]
    ]
    print_table(
        "pypto-jit parameters (directions read off the IR)",
        ["name", "kind", "dtype", "direction"],
        rows,
    )
    launch = per_call(lambda: axpy[grid](x, y, out, n, 2.0, BLOCK=block))
    print(f"pypto-jit launch, cache hit: {launch * 1e6:.2f} us")


if __name__ == "__main__":
    main()
