"""Tutorial 02: fused softmax.

Triton's fused-softmax tutorial with only the import changed. Each row is read
once, its max subtracted, exponentiated, normalized and written once -- torch
eager reads and writes the matrix several times for the same result. Two
kernels: one program per row, and a persistent one where a few programs stride
over the rows with ``pl.num_programs(0)`` and ``pl.range``. The row is one block
of ``next_power_of_2(n_cols)`` lanes; the lanes past the row read ``-inf`` so that
they vanish from the max and the sum.

    python tutorials/02_fused_softmax.py            # check + benchmark table
    python tutorials/02_fused_softmax.py --quick    # small sizes (used by the tests)
"""

from __future__ import annotations

import os

import numpy as np
import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import bench_interleaved as bench
from pypto_jit.testing import print_table, save_table, tutorial_args


@pypto.jit
def softmax_row_kernel(
    output_ptr, input_ptr, input_row_stride, output_row_stride, n_cols, BLOCK_SIZE: pl.constexpr
):
    # one program per row
    row_idx = pl.program_id(0)
    row_start_ptr = input_ptr + row_idx * input_row_stride
    col_offsets = pl.arange(0, BLOCK_SIZE)
    input_ptrs = row_start_ptr + col_offsets
    row = pl.load(input_ptrs, mask=col_offsets < n_cols, other=-float("inf"))
    row_minus_max = row - pl.max(row, axis=0)
    numerator = pl.exp(row_minus_max)
    denominator = pl.sum(numerator, axis=0)
    softmax_output = numerator / denominator
    output_row_start_ptr = output_ptr + row_idx * output_row_stride
    output_ptrs = output_row_start_ptr + col_offsets
    pl.store(output_ptrs, softmax_output, mask=col_offsets < n_cols)


@pypto.jit
def softmax_kernel(
    output_ptr,
    input_ptr,
    input_row_stride,
    output_row_stride,
    n_rows,
    n_cols,
    BLOCK_SIZE: pl.constexpr,
    num_stages: pl.constexpr,
):
    # persistent: a few programs, each striding over the rows
    row_start = pl.program_id(0)
    row_step = pl.num_programs(0)
    for row_idx in pl.range(row_start, n_rows, row_step, num_stages=num_stages):
        row_start_ptr = input_ptr + row_idx * input_row_stride
        col_offsets = pl.arange(0, BLOCK_SIZE)
        input_ptrs = row_start_ptr + col_offsets
        mask = col_offsets < n_cols
        row = pl.load(input_ptrs, mask=mask, other=-float("inf"))
        row_minus_max = row - pl.max(row, axis=0)
        numerator = pl.exp(row_minus_max)
        denominator = pl.sum(numerator, axis=0)
        softmax_output = numerator / denominator
        output_row_start_ptr = output_ptr + row_idx * output_row_stride
        output_ptrs = output_row_start_ptr + col_offsets
        pl.store(output_ptrs, softmax_output, mask=mask)


def softmax(x, persistent=False, programs=None, backend=None):
    """Row-wise softmax of a 2-D tensor (any row stride) with one of the two kernels."""
    n_rows, n_cols = x.shape
    y = torch.empty_like(x)
    block = pypto.next_power_of_2(n_cols)
    if persistent:
        programs = programs or min(n_rows, 2 * (os.cpu_count() or 1))
        softmax_kernel[(programs,)](
            y,
            x,
            x.stride(0),
            y.stride(0),
            n_rows,
            n_cols,
            BLOCK_SIZE=block,
            num_stages=2,
            backend=backend,
        )
    else:
        softmax_row_kernel[(n_rows,)](
            y, x, x.stride(0), y.stride(0), n_cols, BLOCK_SIZE=block, backend=backend
        )
    return y


def naive_softmax(x):
    """torch eager, op by op: what the fused kernel saves."""
    x_max = x.max(dim=1)[0]
    z = x - x_max[:, None]
    numerator = torch.exp(z)
    denominator = numerator.sum(dim=1)
    return numerator / denominator[:, None]


def numpy_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def check(backends=("cpu", "sim", "interpret")) -> None:
    torch.manual_seed(0)
    for backend in backends:
        rows = 123 if backend != "interpret" else 37
        x = torch.randn(rows, 781) * 4
        ref = torch.softmax(x, dim=1)
        torch.testing.assert_close(softmax(x, backend=backend), ref)
        torch.testing.assert_close(softmax(x, persistent=True, programs=5, backend=backend), ref)
        wide = torch.randn(rows, 1030)[:, 3:1003]  # a row stride that is not the row length
        torch.testing.assert_close(softmax(wide, backend=backend), torch.softmax(wide, dim=1))
        one = torch.randn(4, 1)  # one column: every output is exactly 1
        assert torch.equal(softmax(one, persistent=True, backend=backend), torch.ones(4, 1))
        big = torch.tensor([[1000.0, 0.0, -1000.0]])  # large inputs do not overflow exp
        torch.testing.assert_close(softmax(big, backend=backend), torch.softmax(big, dim=1))
    print(f"fused softmax (both kernels) matches torch.softmax on {', '.join(backends)}")


def benchmark(n_rows, col_sizes, rounds=5, out_dir=None) -> str:
    rows = []
    for n_cols in col_sizes:
        x = torch.randn(n_rows, n_cols)
        xn = x.numpy()
        nbytes = 2 * x.numel() * x.element_size()  # one read and one write
        t = bench(
            {
                "row": lambda: softmax(x),  # noqa: B023
                "persistent": lambda: softmax(x, persistent=True),  # noqa: B023
                "torch": lambda: torch.softmax(x, dim=1),  # noqa: B023
                "naive": lambda: naive_softmax(x),  # noqa: B023
                "numpy": lambda: numpy_softmax(xn),  # noqa: B023
            },
            rounds,
        )
        gbps = [nbytes / t[k] / 1e6 for k in ("row", "persistent", "torch", "naive", "numpy")]
        rows.append([n_cols, *gbps, t["torch"] / t["row"]])
    table = print_table(
        f"softmax fp32, {n_rows} rows (GB/s, medians of interleaved runs)",
        ["N", "pypto-jit", "pypto-jit persistent", "torch", "torch naive", "numpy", "pypto/torch"],
        rows,
    )
    save_table(out_dir, "02_fused_softmax", table)
    return table


def main(argv=None) -> None:
    args = tutorial_args(__doc__, argv)
    if not args.bench:
        check()
    if args.quick:
        benchmark(64, [256, 781], rounds=2, out_dir=args.out)
    else:
        benchmark(4096, [256, 781, 1024, 2048, 4096], out_dir=args.out)


if __name__ == "__main__":
    main()
