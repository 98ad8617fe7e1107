"""Tutorial 01: vector addition.

The Triton tutorial kernel with only the import changed. Launch it over a grid
of programs, each handling BLOCK_SIZE elements; the mask keeps the last program
inside the vectors. Checked against torch on torch tensors and numpy arrays,
then benchmarked beside torch and numpy.

    python tutorials/01_vector_add.py            # check + benchmark table
    python tutorials/01_vector_add.py --quick    # small sizes (used by the tests)
"""

from __future__ import annotations

import numpy as np
import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import Benchmark, do_bench, per_call, perf_report, save_table, tutorial_args


@pypto.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: pl.constexpr):
    pid = pl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + pl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = pl.load(x_ptr + offsets, mask=mask)
    y = pl.load(y_ptr + offsets, mask=mask)
    pl.store(out_ptr + offsets, x + y, mask=mask)


def add(x, y, out=None, backend=None, block=1024):
    """out = x + y with the kernel; torch tensors or numpy arrays."""
    if out is None:
        out = torch.empty_like(x) if isinstance(x, torch.Tensor) else np.empty_like(x)
    n = x.shape[0]
    grid = lambda meta: (pypto.cdiv(n, meta["BLOCK_SIZE"]),)  # noqa: E731
    add_kernel[grid](x, y, out, n, BLOCK_SIZE=block, backend=backend)
    return out


def check(backends=("cpu", "sim", "interpret")) -> None:
    for backend in backends:
        x, y = torch.rand(98432), torch.rand(98432)
        torch.testing.assert_close(add(x, y, backend=backend), x + y, rtol=0, atol=0)
        xn, yn = x.numpy(), y.numpy()
        np.testing.assert_array_equal(add(xn, yn, backend=backend), xn + yn)
    print(f"vector add matches torch and numpy on {', '.join(backends)}")


def benchmark(sizes, out_dir=None) -> None:
    @perf_report(
        Benchmark(
            x_names=["size"], x_vals=sizes, line_arg="provider",
            line_vals=["pypto", "torch", "numpy"], line_names=["pypto-jit", "torch", "numpy"],
            plot_name="01_vector_add", xlabel="elements", ylabel="GB/s, median", x_log=True,
        )
    )  # fmt: skip
    def bench(size, provider):
        x, y = torch.rand(size), torch.rand(size)
        out = torch.empty_like(x)
        run = {
            "pypto": lambda: add(x, y, out),
            "torch": lambda: torch.add(x, y, out=out),
            "numpy": lambda: np.add(x.numpy(), y.numpy(), out=out.numpy()),
        }[provider]
        ms = do_bench(run)
        return 3 * size * 4 / ms / 1e6  # GB/s: two reads and one write of fp32

    bench.run(print_data=True, save_path=out_dir)
    x, y = torch.rand(16), torch.rand(16)
    out = torch.empty_like(x)
    add_kernel[(1,)](x, y, out, 16, BLOCK_SIZE=16)
    launch = per_call(lambda: add_kernel[(1,)](x, y, out, 16, BLOCK_SIZE=16))
    torch_launch = per_call(lambda: torch.add(x, y, out=out))
    line = (
        f"launch, cache hit (16 elements, grid (1,)): pypto-jit {launch * 1e6:.2f} us, "
        f"torch.add(out=) {torch_launch * 1e6:.2f} us"
    )
    print(line)
    save_table(out_dir, "01_vector_add", line, append=True)


def main(argv=None) -> None:
    args = tutorial_args(__doc__, argv)
    if not args.bench:
        check()
    sizes = [2**k for k in (range(12, 15) if args.quick else range(12, 25, 2))]
    benchmark(sizes, args.out)


if __name__ == "__main__":
    main()
