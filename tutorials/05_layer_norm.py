"""Tutorial 05: layer normalization, forward and backward.

Triton's layer-norm tutorial with only the import changed. The forward kernel
normalizes one row per program (mean, variance, scale and shift in one pass over
memory) and saves mean and 1/std. The backward kernel computes dx per row and
adds the row's contribution to dW and dB into one of GROUP_SIZE_M partial
buffers, taking that buffer's lock with ``atomic_cas`` (rows r, r + G, r + 2G, ...
share a buffer); a second kernel sums the partial buffers. Wrapped in a
``torch.autograd.Function`` and checked against ``torch.nn.functional.layer_norm``
and autograd.

    python tutorials/05_layer_norm.py            # check + benchmark table
    python tutorials/05_layer_norm.py --quick    # small sizes (used by the tests)
"""

from __future__ import annotations

import numpy as np
import torch

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.testing import bench_interleaved as bench
from pypto_jit.testing import print_table, save_table, tutorial_args


@pypto.jit
def _layer_norm_fwd_fused(
    X,  # pointer to the input
    Y,  # pointer to the output
    W,  # pointer to the weights
    B,  # pointer to the biases
    Mean,  # pointer to the mean
    Rstd,  # pointer to the 1/std
    stride,  # how much to increase the pointer when moving by 1 row
    N,  # number of columns in X
    eps,  # epsilon to avoid division by zero
    BLOCK_SIZE: pl.constexpr,
):
    # Map the program id to the row of X and Y it should compute.
    row = pl.program_id(0)
    Y += row * stride
    X += row * stride
    # Compute mean
    mean = 0
    _mean = pl.zeros([BLOCK_SIZE], dtype=pl.float32)
    for off in range(0, N, BLOCK_SIZE):
        cols = off + pl.arange(0, BLOCK_SIZE)
        a = pl.load(X + cols, mask=cols < N, other=0.0).to(pl.float32)
        _mean += a
    mean = pl.sum(_mean, axis=0) / N
    # Compute variance
    _var = pl.zeros([BLOCK_SIZE], dtype=pl.float32)
    for off in range(0, N, BLOCK_SIZE):
        cols = off + pl.arange(0, BLOCK_SIZE)
        x = pl.load(X + cols, mask=cols < N, other=0.0).to(pl.float32)
        x = pl.where(cols < N, x - mean, 0.0)
        _var += x * x
    var = pl.sum(_var, axis=0) / N
    rstd = 1 / pl.sqrt(var + eps)
    # Write mean / rstd
    pl.store(Mean + row, mean)
    pl.store(Rstd + row, rstd)
    # Normalize and apply linear transformation
    for off in range(0, N, BLOCK_SIZE):
        cols = off + pl.arange(0, BLOCK_SIZE)
        mask = cols < N
        w = pl.load(W + cols, mask=mask)
        b = pl.load(B + cols, mask=mask)
        x = pl.load(X + cols, mask=mask, other=0.0).to(pl.float32)
        x_hat = (x - mean) * rstd
        y = x_hat * w + b
        # Write output
        pl.store(Y + cols, y, mask=mask)


@pypto.jit
def _layer_norm_bwd_dx_fused(
    DX,  # pointer to the input gradient
    DY,  # pointer to the output gradient
    DW,  # pointer to the partial sum of weights gradient
    DB,  # pointer to the partial sum of biases gradient
    X,  # pointer to the input
    W,  # pointer to the weights
    Mean,  # pointer to the mean
    Rstd,  # pointer to the 1/std
    Lock,  # pointer to the lock
    stride,  # how much to increase the pointer when moving by 1 row
    N,  # number of columns in X
    GROUP_SIZE_M: pl.constexpr,
    BLOCK_SIZE_N: pl.constexpr,
):
    # Map the program id to the elements of X, DX, and DY it should compute.
    row = pl.program_id(0)
    cols = pl.arange(0, BLOCK_SIZE_N)
    mask = cols < N
    X += row * stride
    DY += row * stride
    DX += row * stride
    # Offset locks and weights/biases gradient pointer for parallel reduction
    lock_id = row % GROUP_SIZE_M
    Lock += lock_id
    Count = Lock + GROUP_SIZE_M
    DW = DW + lock_id * N + cols
    DB = DB + lock_id * N + cols
    # Load data to SRAM
    x = pl.load(X + cols, mask=mask, other=0).to(pl.float32)
    dy = pl.load(DY + cols, mask=mask, other=0).to(pl.float32)
    w = pl.load(W + cols, mask=mask).to(pl.float32)
    mean = pl.load(Mean + row)
    rstd = pl.load(Rstd + row)
    # Compute dx
    xhat = (x - mean) * rstd
    wdy = w * dy
    xhat = pl.where(mask, xhat, 0.0)
    wdy = pl.where(mask, wdy, 0.0)
    c1 = pl.sum(xhat * wdy, axis=0) / N
    c2 = pl.sum(wdy, axis=0) / N
    dx = (wdy - (xhat * c1 + c2)) * rstd
    # Write dx
    pl.store(DX + cols, dx, mask=mask)
    # Accumulate partial sums for dw/db
    partial_dw = (dy * xhat).to(w.dtype)
    partial_db = (dy).to(w.dtype)
    while pl.atomic_cas(Lock, 0, 1) == 1:
        pass
    count = pl.load(Count)
    # First store doesn't accumulate
    if count == 0:
        pl.atomic_xchg(Count, 1)
    else:
        partial_dw += pl.load(DW, mask=mask)
        partial_db += pl.load(DB, mask=mask)
    pl.store(DW, partial_dw, mask=mask)
    pl.store(DB, partial_db, mask=mask)
    # need a barrier to ensure all threads finished before
    # releasing the lock (a no-op here: a pypto program runs on one CPU thread)
    pl.debug_barrier()

    # Release the lock
    pl.atomic_xchg(Lock, 0)


@pypto.jit
def _layer_norm_bwd_dwdb(
    DW,  # pointer to the partial sum of weights gradient
    DB,  # pointer to the partial sum of biases gradient
    FINAL_DW,  # pointer to the weights gradient
    FINAL_DB,  # pointer to the biases gradient
    M,  # GROUP_SIZE_M
    N,  # number of columns
    BLOCK_SIZE_M: pl.constexpr,
    BLOCK_SIZE_N: pl.constexpr,
):
    # Map the program id to the elements of DW and DB it should compute.
    pid = pl.program_id(0)
    cols = pid * BLOCK_SIZE_N + pl.arange(0, BLOCK_SIZE_N)
    dw = pl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=pl.float32)
    db = pl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=pl.float32)
    # Iterate through the rows of DW and DB to sum the partial sums.
    for i in range(0, M, BLOCK_SIZE_M):
        rows = i + pl.arange(0, BLOCK_SIZE_M)
        mask = (rows[:, None] < M) & (cols[None, :] < N)
        offs = rows[:, None] * N + cols[None, :]
        dw += pl.load(DW + offs, mask=mask, other=0.0)
        db += pl.load(DB + offs, mask=mask, other=0.0)
    # Write the final sum to the output.
    sum_dw = pl.sum(dw, axis=0)
    sum_db = pl.sum(db, axis=0)
    pl.store(FINAL_DW + cols, sum_dw, mask=cols < N)
    pl.store(FINAL_DB + cols, sum_db, mask=cols < N)


BACKEND = {"name": None}  # the backend the autograd function launches on (None: default)
# The forward kernel walks a row in BLOCK_SIZE chunks, three times. Triton's tutorial takes
# the whole row as one block (on a GPU the partial sums live in registers); on a CPU a short
# block keeps the loop-carried partial sums in registers and L1 while the row streams
# through. Measured at N = 1024 (interleaved, medians of five runs): 128 and 256 take
# 0.72-0.89 ms, 512 0.85-1.3 ms, one block of 1024 1.1-2.2 ms.
FWD_BLOCK_SIZE = 256


def _forward(x, weight, bias, eps):
    """y, mean, rstd and the feature block size of the forward kernel's launch."""
    # allocate output
    y = torch.empty_like(x)
    # reshape input data into 2D tensor
    x_arg = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    M, N = x_arg.shape
    mean = torch.empty((M,), dtype=torch.float32, device=x.device)
    rstd = torch.empty((M,), dtype=torch.float32, device=x.device)
    # Less than 64KB per feature: enqueue fused kernel
    MAX_FUSED_SIZE = 65536 // x.element_size()
    BLOCK_SIZE = min(MAX_FUSED_SIZE, pypto.next_power_of_2(N))
    if N > BLOCK_SIZE:
        raise RuntimeError("This layer norm doesn't support feature dim >= 64KB.")
    # enqueue kernel
    _layer_norm_fwd_fused[(M,)](
        x_arg,
        y,
        weight,
        bias,
        mean,
        rstd,
        x_arg.stride(0),
        N,
        eps,
        BLOCK_SIZE=min(BLOCK_SIZE, FWD_BLOCK_SIZE),
        backend=BACKEND["name"],
    )
    return y, mean, rstd, BLOCK_SIZE


class LayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, normalized_shape, weight, bias, eps):
        y, mean, rstd, BLOCK_SIZE = _forward(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.BLOCK_SIZE = BLOCK_SIZE
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w, b, m, v = ctx.saved_tensors
        # heuristics for amount of parallel reduction stream for DW/DB
        N = w.shape[0]
        GROUP_SIZE_M = 64
        if N <= 8192:
            GROUP_SIZE_M = 96
        if N <= 4096:
            GROUP_SIZE_M = 128
        if N <= 1024:
            GROUP_SIZE_M = 256
        # allocate output
        locks = torch.zeros(2 * GROUP_SIZE_M, dtype=torch.int32, device=w.device)
        _dw = torch.zeros((GROUP_SIZE_M, N), dtype=x.dtype, device=w.device)
        _db = torch.zeros((GROUP_SIZE_M, N), dtype=x.dtype, device=w.device)
        dw = torch.empty((N,), dtype=w.dtype, device=w.device)
        db = torch.empty((N,), dtype=w.dtype, device=w.device)
        dx = torch.empty_like(dy)
        # enqueue kernel using forward pass heuristics
        # also compute partial sums for DW and DB
        x_arg = x.reshape(-1, x.shape[-1])
        M, N = x_arg.shape
        _layer_norm_bwd_dx_fused[(M,)](
            dx,
            dy.contiguous(),
            _dw,
            _db,
            x_arg,
            w,
            m,
            v,
            locks,
            x_arg.stride(0),
            N,
            BLOCK_SIZE_N=ctx.BLOCK_SIZE,
            GROUP_SIZE_M=GROUP_SIZE_M,
            backend=BACKEND["name"],
        )
        grid = lambda meta: (pypto.cdiv(N, meta["BLOCK_SIZE_N"]),)  # noqa: E731
        # accumulate partial sums in separate kernel
        _layer_norm_bwd_dwdb[grid](
            _dw,
            _db,
            dw,
            db,
            min(GROUP_SIZE_M, M),
            N,
            BLOCK_SIZE_M=32,
            BLOCK_SIZE_N=128,
            backend=BACKEND["name"],
        )
        return dx, None, dw, db, None


def layer_norm(x, normalized_shape, weight, bias, eps):
    """F.layer_norm over the last dimension, differentiable in x, weight and bias."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, weight, bias)):
        return LayerNorm.apply(x, normalized_shape, weight, bias, eps)
    # Nothing to differentiate: no autograd node and no saved tensors, as F.layer_norm does.
    # Going through the autograd.Function anyway can cost more than its few microseconds:
    # the node and saved tensors it allocates beside each 16 MB output can keep glibc from
    # reusing the output's memory. In some processes every call then page-faulted a new
    # output in (4096x1024 under no_grad: 5 ms a call instead of 0.7).
    return _forward(x, weight, bias, eps)[0]


def _inputs(m, n, dtype=torch.float32):
    x_shape = (m, n)
    w_shape = (x_shape[-1],)
    weight = torch.rand(w_shape, dtype=dtype, requires_grad=True)
    bias = torch.rand(w_shape, dtype=dtype, requires_grad=True)
    x = -2.3 + 0.5 * torch.randn(x_shape, dtype=dtype)
    dy = 0.1 * torch.randn_like(x)
    x.requires_grad_(True)
    return x, weight, bias, dy


def check(backends=("cpu", "sim", "interpret")) -> None:
    torch.manual_seed(0)
    eps = 1e-5
    for backend in backends:
        BACKEND["name"] = backend
        try:
            # N=300 rows share GROUP_SIZE_M=256 lock groups; N=1500 uses 96 groups, so
            # several rows contend for each partial buffer
            for m, n in (
                [(300, 100), (200, 1500)] if backend != "interpret" else [(40, 100), (130, 1500)]
            ):
                x, weight, bias, dy = _inputs(m, n)
                y_tri = layer_norm(x, (n,), weight, bias, eps)
                y_ref = torch.nn.functional.layer_norm(x, (n,), weight, bias, eps)
                y_tri.backward(dy, retain_graph=True)
                dx_tri, dw_tri, db_tri = [t.grad.clone() for t in [x, weight, bias]]
                x.grad, weight.grad, bias.grad = None, None, None
                y_ref.backward(dy, retain_graph=True)
                dx_ref, dw_ref, db_ref = [t.grad.clone() for t in [x, weight, bias]]
                torch.testing.assert_close(y_tri, y_ref, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(dx_tri, dx_ref, atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(db_tri, db_ref, atol=1e-4, rtol=1e-4)
                torch.testing.assert_close(dw_tri, dw_ref, atol=1e-4, rtol=1e-4)
                with torch.no_grad():  # inference: the kernel launched without autograd
                    y_inf = layer_norm(x, (n,), weight, bias, eps)
                assert y_inf.grad_fn is None
                torch.testing.assert_close(y_inf, y_ref.detach(), atol=1e-5, rtol=1e-5)
        finally:
            BACKEND["name"] = None
    print(f"layer norm forward and backward match torch (autograd) on {', '.join(backends)}")


def numpy_layer_norm(x, w, b, eps):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def benchmark(m, sizes, rounds=5, out_dir=None) -> str:
    rows = []
    eps = 1e-5
    for n in sizes:
        x, weight, bias, dy = _inputs(m, n)
        xn, wn, bn = x.detach().numpy(), weight.detach().numpy(), bias.detach().numpy()
        nbytes = 2 * x.numel() * x.element_size()  # read x, write y
        y_pp = layer_norm(x, (n,), weight, bias, eps)
        y_th = torch.nn.functional.layer_norm(x, (n,), weight, bias, eps)

        def fwd_pp():
            with torch.no_grad():
                return layer_norm(x, (n,), weight, bias, eps)  # noqa: B023

        def fwd_th():
            with torch.no_grad():
                return torch.nn.functional.layer_norm(x, (n,), weight, bias, eps)  # noqa: B023

        t = bench(
            {
                "pypto": fwd_pp,
                "torch": fwd_th,
                "numpy": lambda: numpy_layer_norm(xn, wn, bn, eps),  # noqa: B023
                "pypto bwd": lambda: y_pp.backward(dy, retain_graph=True),  # noqa: B023
                "torch bwd": lambda: y_th.backward(dy, retain_graph=True),  # noqa: B023
            },
            rounds,
        )
        rows.append(
            [
                n,
                nbytes / t["pypto"] / 1e6,
                nbytes / t["torch"] / 1e6,
                nbytes / t["numpy"] / 1e6,
                t["pypto bwd"],
                t["torch bwd"],
                t["torch"] / t["pypto"],
            ]
        )
    table = print_table(
        f"layer norm fp32, {m} rows (forward GB/s; backward ms; medians of interleaved runs)",
        [
            "N",
            "pypto-jit fwd",
            "torch fwd",
            "numpy fwd",
            "pypto-jit bwd ms",
            "torch bwd ms",
            "pypto/torch fwd",
        ],
        rows,
    )
    save_table(out_dir, "05_layer_norm", table)
    return table


def main(argv=None) -> None:
    args = tutorial_args(__doc__, argv)
    if not args.bench:
        check()
    if args.quick:
        benchmark(64, [256, 1000], rounds=2, out_dir=args.out)
    else:
        benchmark(4096, [512, 1024, 2048, 4096], out_dir=args.out)


if __name__ == "__main__":
    main()
