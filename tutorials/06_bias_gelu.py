"""Tutorial 06: fused bias + GELU.

``y = gelu(x + b)`` with the exact GELU, ``0.5 * z * (1 + erf(z / sqrt(2)))``, for a
matrix ``x`` and a bias row ``b``. torch eager runs it as two kernels and writes the
intermediate ``x + b`` to memory; here it is one elementwise kernel: every element is
read once, written once, and everything between stays in registers. The compiler fuses
the chain (loads, add, erf, multiplies) into the loop of the store, and ``pl.erf`` has
vector code of its own (a table of polynomials, under 1 ulp). The store writes each
full chunk of 16 columns in vector form, with that code inlined and its table kept in
registers; the scalar loop does the rest of the row.

A program handles ``BLOCK_SIZE`` columns of one row (a 2-D grid), so rows of any
length and row stride work.

    python tutorials/06_bias_gelu.py            # check + benchmark table
    python tutorials/06_bias_gelu.py --quick    # small sizes (used by the tests)
"""

from __future__ import annotations

import math

import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import bench_interleaved as bench
from pypto_jit.testing import print_table, save_table, tutorial_args

SQRT1_2 = pl.constexpr(1.0 / math.sqrt(2.0))


@pypto.jit
def bias_gelu_kernel(
    x_ptr, b_ptr, out_ptr, n_cols, x_row_stride, out_row_stride, BLOCK_SIZE: pl.constexpr
):
    row = pl.program_id(0)
    cols = pl.program_id(1) * BLOCK_SIZE + pl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = pl.load(x_ptr + row * x_row_stride + cols, mask=mask)
    b = pl.load(b_ptr + cols, mask=mask)
    z = x + b
    y = 0.5 * z * (1.0 + pl.erf(z * SQRT1_2))
    pl.store(out_ptr + row * out_row_stride + cols, y, mask=mask)


def bias_gelu(x, b, out=None, block=1024, backend=None):
    """gelu(x + b) for a 2-D ``x`` (any row stride, unit column stride) and a row ``b``."""
    n_rows, n_cols = x.shape
    if out is None:
        out = torch.empty_like(x)
    grid = (n_rows, pypto.cdiv(n_cols, block))
    bias_gelu_kernel[grid](
        x, b, out, n_cols, x.stride(0), out.stride(0), BLOCK_SIZE=block, backend=backend
    )
    return out


def reference(x, b):
    return torch.nn.functional.gelu(x + b)


def check(backends=("cpu", "sim", "interpret")) -> None:
    torch.manual_seed(0)
    for backend in backends:
        rows = 37 if backend == "interpret" else 123
        x, b = torch.randn(rows, 781) * 3, torch.randn(781)  # no block divides 781
        torch.testing.assert_close(bias_gelu(x, b, backend=backend), reference(x, b))
        wide = torch.randn(rows, 1300)[:, 5:1205]  # a row stride that is not the row length
        b = torch.randn(1200)
        got = bias_gelu(wide, b, block=512, backend=backend)
        torch.testing.assert_close(got, reference(wide, b))
        tails = torch.tensor([[-10.0, -4.0, -0.5, 0.0, 0.5, 4.0, 10.0, float("nan")]])
        zero = torch.zeros(8)
        torch.testing.assert_close(
            bias_gelu(tails, zero, backend=backend), reference(tails, zero), equal_nan=True
        )
    print(f"fused bias + GELU matches torch gelu(x + b) on {', '.join(backends)}")


def benchmark(shapes, rounds=5, out_dir=None) -> str:
    rows = []
    for n_rows, n_cols in shapes:
        x, b = torch.randn(n_rows, n_cols), torch.randn(n_cols)
        out = torch.empty_like(x)
        nbytes = 2 * x.numel() * x.element_size()  # read x, write the output
        t = bench(
            {
                "pypto": lambda: bias_gelu(x, b, out),  # noqa: B023
                "torch": lambda: reference(x, b),  # noqa: B023
            },
            rounds,
        )
        gbps = {k: nbytes / v / 1e6 for k, v in t.items()}
        rows.append([f"{n_rows}x{n_cols}", gbps["pypto"], gbps["torch"], t["torch"] / t["pypto"]])
    table = print_table(
        "bias + GELU(erf) fp32 (GB/s of x in + out, medians of interleaved runs)",
        ["M x N", "pypto-jit", "torch gelu(x + b)", "pypto/torch"],
        rows,
    )
    save_table(out_dir, "06_bias_gelu", table)
    return table


def main(argv=None) -> None:
    args = tutorial_args(__doc__, argv)
    if not args.bench:
        check()
    if args.quick:
        benchmark([(64, 1000), (128, 1024)], rounds=2, out_dir=args.out)
    else:
        benchmark([(1024, 1024), (4096, 1024), (4096, 4096), (16384, 1024)], out_dir=args.out)


if __name__ == "__main__":
    main()
