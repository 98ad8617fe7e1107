"""Tutorial 04: low-memory dropout.

Triton's dropout tutorial with only the import changed. The first kernel is
plain dropout with a keep-mask computed on the host and stored in memory. The
second draws its randomness in the kernel with ``pl.rand(seed, offsets)`` (Philox
4x32-10, Triton's stream): the mask is never stored, the same seed always gives
the same result (on every backend), and the backward pass can regenerate the
mask from the seed alone.

    python tutorials/04_dropout.py            # check + benchmark table
    python tutorials/04_dropout.py --quick    # small sizes (used by the tests)
"""

from __future__ import annotations

import numpy as np
import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import do_bench, print_table, save_table, tutorial_args


@pypto.jit
def _dropout(
    x_ptr,  # pointer to the input
    x_keep_ptr,  # pointer to a mask of 0s and 1s
    output_ptr,  # pointer to the output
    n_elements,  # number of elements in the `x` tensor
    p,  # probability that an element of `x` is changed to zero
    BLOCK_SIZE: pl.constexpr,
):
    pid = pl.program_id(axis=0)
    block_start = pid * BLOCK_SIZE
    offsets = block_start + pl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    # Load data
    x = pl.load(x_ptr + offsets, mask=mask)
    x_keep = pl.load(x_keep_ptr + offsets, mask=mask)
    # The line below is the crucial part: kept elements are rescaled by 1 / (1 - p)
    output = pl.where(x_keep, x / (1 - p), 0.0)
    # Write-back output
    pl.store(output_ptr + offsets, output, mask=mask)


@pypto.jit
def _seeded_dropout(
    x_ptr,
    output_ptr,
    n_elements,
    p,
    seed,
    BLOCK_SIZE: pl.constexpr,
):
    # compute memory offsets of elements handled by this instance
    pid = pl.program_id(axis=0)
    block_start = pid * BLOCK_SIZE
    offsets = block_start + pl.arange(0, BLOCK_SIZE)
    # load data from x
    mask = offsets < n_elements
    x = pl.load(x_ptr + offsets, mask=mask)
    # randomly prune it
    random = pl.rand(seed, offsets)
    x_keep = random > p
    # write-back
    output = pl.where(x_keep, x / (1 - p), 0.0)
    pl.store(output_ptr + offsets, output, mask=mask)


def dropout(x, x_keep, p, backend=None):
    output = torch.empty_like(x)
    assert x.is_contiguous()
    n_elements = x.numel()
    grid = lambda meta: (pypto.cdiv(n_elements, meta["BLOCK_SIZE"]),)  # noqa: E731
    _dropout[grid](x, x_keep, output, n_elements, p, BLOCK_SIZE=1024, backend=backend)
    return output


def seeded_dropout(x, p, seed, backend=None):
    output = torch.empty_like(x)
    assert x.is_contiguous()
    n_elements = x.numel()
    grid = lambda meta: (pypto.cdiv(n_elements, meta["BLOCK_SIZE"]),)  # noqa: E731
    _seeded_dropout[grid](x, output, n_elements, p, seed, BLOCK_SIZE=1024, backend=backend)
    return output


def check(backends=("cpu", "sim", "interpret")) -> None:
    torch.manual_seed(0)
    p = 0.3
    n = 20_000
    x = torch.randn(n) + 10.0  # never 0: a zero in the output means "dropped"
    scaled = x / (1 - p)
    keep = (torch.rand(n) > p).to(torch.int32)
    reference = None
    for backend in backends:
        out = dropout(x, keep, p, backend=backend)
        torch.testing.assert_close(out, torch.where(keep.bool(), scaled, 0.0))

        a = seeded_dropout(x, p, seed=123, backend=backend)
        b = seeded_dropout(x, p, seed=123, backend=backend)
        c = seeded_dropout(x, p, seed=512, backend=backend)
        assert torch.equal(a, b), "the same seed must give the same mask"
        assert not torch.equal(a, c), "different seeds must give different masks"
        kept = a != 0
        torch.testing.assert_close(a[kept], scaled[kept])  # kept elements are x / (1 - p)
        drop = 1.0 - kept.float().mean().item()
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(drop - p) < 5 * sigma, f"dropped {drop:.4f} of the elements, expected ~{p}"
        assert 0.2 < ((a == 0) & (c == 0)).float().mean() / (p * p) < 5  # seeds independent
        if reference is None:
            reference = a
        assert torch.equal(a, reference), "every backend draws the same numbers"
    print(f"dropout and seeded dropout check out on {', '.join(backends)}")


def numpy_dropout(x, p, rng):
    keep = rng.random(x.shape[0], dtype=np.float32) > p
    return np.where(keep, x / np.float32(1 - p), np.float32(0))


def benchmark(sizes, out_dir=None) -> str:
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        x = torch.randn(n)
        xn = x.numpy()
        nbytes = 2 * n * 4  # read x, write the output: no mask in memory (GB/s = B / ms / 1e6)
        t_pp = do_bench(lambda: seeded_dropout(x, 0.5, 123))  # noqa: B023
        t_th = do_bench(lambda: torch.nn.functional.dropout(x, 0.5, training=True))  # noqa: B023
        t_np = do_bench(lambda: numpy_dropout(xn, 0.5, rng))  # noqa: B023
        rows.append(
            [
                f"2^{n.bit_length() - 1}",
                nbytes / t_pp / 1e6,
                nbytes / t_th / 1e6,
                nbytes / t_np / 1e6,
                t_th / t_pp,
            ]
        )
    table = print_table(
        "seeded dropout fp32, p=0.5 (GB/s of x in + out, median)",
        ["size", "pypto-jit", "torch", "numpy", "pypto/torch"],
        rows,
    )
    save_table(out_dir, "04_dropout", table)
    return table


def main(argv=None) -> None:
    args = tutorial_args(__doc__, argv)
    if not args.bench:
        check()
    sizes = [2**k for k in ((12, 16) if args.quick else range(12, 25, 2))]
    benchmark(sizes, args.out)


if __name__ == "__main__":
    main()
