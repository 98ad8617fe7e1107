"""Tutorial 03: matrix multiplication.

Triton's matmul tutorial with only the import changed: each program computes one
BLOCK_SIZE_M x BLOCK_SIZE_N tile of C with 2-D pointer arithmetic, walking K in
BLOCK_SIZE_K steps with masks for the ragged end, and the programs are ordered in
groups of GROUP_SIZE_M rows of tiles ("super-grouping") so that neighbouring
programs reuse the same tiles of A and B. fp32 and fp16 inputs (fp16 accumulates
in fp32), any strides (B may be a transposed view), an optional fused leaky ReLU.

    python tutorials/03_matmul.py            # check + benchmark of every block config
    python tutorials/03_matmul.py --quick    # small sizes, default config (the tests)

pl.dot compiles to a register-blocked micro-kernel (8x32 fp32 tiles in AVX-512
registers); what a program spends besides that is copying its A and B tiles, per
element, so big blocks pay. The tiles are copied row by row: ``% N`` is checked at run
time not to wrap inside a block (else the block is gathered), and the pointer blocks
advance as one scalar offset.
"""

from __future__ import annotations

import numpy as np
import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import bench_interleaved as bench
from pypto_jit.testing import print_table, save_table, tutorial_args


@pypto.jit
def matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_SIZE_M: pl.constexpr,
    BLOCK_SIZE_N: pl.constexpr,
    BLOCK_SIZE_K: pl.constexpr,
    GROUP_SIZE_M: pl.constexpr,
    ACTIVATION: pl.constexpr,
):
    """C = A @ B with A (M, K) and B (K, N)."""
    # program id -> the tile of C it computes, in grouped order
    pid = pl.program_id(axis=0)
    num_pid_m = pl.cdiv(M, BLOCK_SIZE_M)
    num_pid_n = pl.cdiv(N, BLOCK_SIZE_N)
    num_pid_in_group = GROUP_SIZE_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_SIZE_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_SIZE_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    # pointers to the first blocks of A and B; the modulo keeps the ragged edge in bounds
    offs_am = (pid_m * BLOCK_SIZE_M + pl.arange(0, BLOCK_SIZE_M)) % M
    offs_bn = (pid_n * BLOCK_SIZE_N + pl.arange(0, BLOCK_SIZE_N)) % N
    offs_k = pl.arange(0, BLOCK_SIZE_K)
    a_ptrs = a_ptr + (offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak)
    b_ptrs = b_ptr + (offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn)

    # accumulate a tile of C in fp32, advancing the pointers along K
    accumulator = pl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=pl.float32)
    for k in range(0, pl.cdiv(K, BLOCK_SIZE_K)):
        a = pl.load(a_ptrs, mask=offs_k[None, :] < K - k * BLOCK_SIZE_K, other=0.0)
        b = pl.load(b_ptrs, mask=offs_k[:, None] < K - k * BLOCK_SIZE_K, other=0.0)
        accumulator = pl.dot(a, b, accumulator)
        a_ptrs += BLOCK_SIZE_K * stride_ak
        b_ptrs += BLOCK_SIZE_K * stride_bk
    if ACTIVATION == "leaky_relu":
        accumulator = leaky_relu(accumulator)
    c = accumulator.to(c_ptr.dtype)

    # write back the tile of C, masked at the edges
    offs_cm = pid_m * BLOCK_SIZE_M + pl.arange(0, BLOCK_SIZE_M)
    offs_cn = pid_n * BLOCK_SIZE_N + pl.arange(0, BLOCK_SIZE_N)
    c_ptrs = c_ptr + stride_cm * offs_cm[:, None] + stride_cn * offs_cn[None, :]
    c_mask = (offs_cm[:, None] < M) & (offs_cn[None, :] < N)
    pl.store(c_ptrs, c, mask=c_mask)


@pypto.jit
def leaky_relu(x):
    return pl.where(x >= 0, x, 0.01 * x)


def _config(bm: int, bn: int, bk: int, group: int) -> dict:
    return dict(BLOCK_SIZE_M=bm, BLOCK_SIZE_N=bn, BLOCK_SIZE_K=bk, GROUP_SIZE_M=group)


# Block configs the benchmark tries at each size (it prints them all and uses the best);
# the first is the default.
CONFIGS = [
    _config(256, 128, 64, 4),
    _config(128, 128, 64, 8),
    _config(256, 256, 32, 4),
    _config(64, 128, 64, 8),
]
CONFIG = CONFIGS[0]


def _name(cfg: dict) -> str:
    blocks = "x".join(str(cfg[f"BLOCK_SIZE_{d}"]) for d in "MNK")
    return f"{blocks}/g{cfg['GROUP_SIZE_M']}"


def matmul(a, b, activation="", backend=None, config=None):
    """a @ b (fp32 or fp16 inputs; the result has a's dtype), any strides."""
    assert a.shape[1] == b.shape[0], "incompatible dimensions"
    M, K = a.shape
    K, N = b.shape
    c = torch.empty((M, N), dtype=a.dtype)
    cfg = dict(CONFIG, **(config or {}))
    grid = lambda META: (  # noqa: E731
        pypto.cdiv(M, META["BLOCK_SIZE_M"]) * pypto.cdiv(N, META["BLOCK_SIZE_N"]),
    )
    matmul_kernel[grid](
        a,
        b,
        c,
        M,
        N,
        K,
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        c.stride(0),
        c.stride(1),
        ACTIVATION=activation,
        backend=backend,
        **cfg,
    )
    return c


def check(backends=("cpu", "sim", "interpret")) -> None:
    torch.manual_seed(0)
    for backend in backends:
        small = backend == "interpret"
        m, n, k = (45, 37, 70) if small else (129, 97, 200)  # nothing divides the blocks
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.testing.assert_close(matmul(a, b, backend=backend), a @ b, rtol=1e-4, atol=1e-4)
        bt = torch.randn(n, k).t()  # a transposed (non-contiguous) B
        torch.testing.assert_close(matmul(a, bt, backend=backend), a @ bt, rtol=1e-4, atol=1e-4)
        ah, bh = a.half(), b.half()
        ref = (ah.float() @ bh.float()).half()  # fp16 inputs, fp32 accumulation
        torch.testing.assert_close(matmul(ah, bh, backend=backend), ref, rtol=1e-3, atol=1e-2)
        ref = torch.nn.functional.leaky_relu(a @ b, 0.01)
        got = matmul(
            a,
            b,
            activation="leaky_relu",
            backend=backend,
            config=dict(BLOCK_SIZE_M=16, BLOCK_SIZE_N=24, BLOCK_SIZE_K=8, GROUP_SIZE_M=3),
        )
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    print(
        f"matmul (fp32, fp16, transposed B, leaky ReLU) matches torch.matmul on "
        f"{', '.join(backends)}"
    )


def benchmark(sizes, configs=CONFIGS, rounds=5, out_dir=None) -> str:
    rows = []
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        an, bn = a.numpy(), b.numpy()
        ah, bh = a.half(), b.half()
        gflops = lambda t: 2 * n**3 / t / 1e6  # noqa: B023, E731 - t in ms
        fns = {_name(c): (lambda c=c: matmul(a, b, config=c)) for c in configs}  # noqa: B023
        fns["torch"] = lambda: torch.matmul(a, b)  # noqa: B023
        fns["numpy"] = lambda: np.matmul(an, bn)  # noqa: B023
        t = bench(fns, rounds)
        best = min(configs, key=lambda c: t[_name(c)])
        if len(configs) > 1:
            tried = ", ".join(f"{_name(c)} {gflops(t[_name(c)]):.0f}" for c in configs)
            print(f"n={n}: block configs (GFLOP/s) {tried}; best {_name(best)}")
        t_half = bench({"fp16": lambda: matmul(ah, bh, config=best)}, max(rounds // 2, 1))  # noqa: B023
        t_pp, t_th = t[_name(best)], t["torch"]
        rows.append(
            [
                n,
                _name(best),
                gflops(t_pp),
                gflops(t_th),
                gflops(t["numpy"]),
                gflops(t_half["fp16"]),
                t_th / t_pp,
            ]
        )
    table = print_table(
        "matmul, square (GFLOP/s, medians of interleaved runs)",
        [
            "M=N=K",
            "best config",
            "pypto-jit fp32",
            "torch fp32",
            "numpy fp32",
            "pypto-jit fp16",
            "pypto/torch fp32",
        ],
        rows,
    )
    save_table(out_dir, "03_matmul", table)
    return table


def main(argv=None) -> None:
    args = tutorial_args(__doc__, argv)
    if not args.bench:
        check()
    if args.quick:  # the default config only: one compile per dtype
        benchmark([128, 256], configs=CONFIGS[:1], rounds=3, out_dir=args.out)
    else:
        benchmark([256, 512, 1024, 2048], rounds=7, out_dir=args.out)


if __name__ == "__main__":
    main()
