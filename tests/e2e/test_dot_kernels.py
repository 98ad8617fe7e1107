"""The register-blocked dot kernels (``codegen/gemm.py``) against float64 references.

Two levels:

* the C helper alone, built for each vector width this host can run (AVX-512, AVX2,
  16-byte vectors) and called through cffi over shapes that hit every micro-kernel
  (full tiles, row tails of 4/2/1, ragged last panels of one and two vectors), with
  row strides wider than the rows;
* ``pl.dot`` in kernels on cpu, sim and interpret: tails, 1xN, Nx1, K=1, f16/bf16
  inputs, f64, int8 -> int32 (exact), acc given or not, transposed and strided
  operands, virtual operands, and the in-place accumulator (when it may and may not
  reuse the accumulator's storage).

Floats are checked against a float64 reference with the rigorous bound for a sum of K
products, ``|c - ref| <= gamma(K + 1) * (|a| @ |b| + |acc|)``: the kernels may sum in
any order and fuse multiply-adds, but must stay within it.
"""

from __future__ import annotations

import cffi
import numpy as np
import pytest
import torch
from conftest import needs_cc

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.codegen.prelude import prelude
from pypto_jit.runtime import compiler

_EPS = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def assert_dot_close(got, a, b, acc=None, unit=None) -> None:
    """``got`` is ``acc + a @ b`` within the worst-case rounding of a K-term sum."""
    a64, b64 = (torch.as_tensor(x).double() for x in (a, b))
    acc64 = torch.zeros(a64.shape[0], b64.shape[1], dtype=torch.float64)
    if acc is not None:
        acc64 = torch.as_tensor(acc).double()
    got64 = torch.as_tensor(got).double()
    k = a64.shape[1]
    u = unit if unit is not None else _EPS[torch.as_tensor(got).dtype]
    gamma = (k + 1) * u / (1 - (k + 1) * u)
    bound = gamma * (a64.abs() @ b64.abs() + acc64.abs()) + 1e-300
    err = (got64 - (acc64 + a64 @ b64)).abs()
    worst = (err / bound).max().item()
    assert worst <= 1.0, f"dot error {worst:.3g} x the bound (max error {err.max().item():.3g})"


# -- the C helper, per vector width ------------------------------------------------------

_ISAS = {
    "native": [],  # AVX-512 on a host that has it
    "avx2": ["-mno-avx512f"],
    "vec16": ["-mno-avx"],  # 16-byte vectors (SSE2 here), no FMA instruction
}
_WRAPPERS = """
PYPTO_EXPORT void test_gemm_{s}(int64_t M, int64_t N, int64_t K, const {t} *a, int64_t lda,
                               const {t} *b, int64_t ldb, {t} *c, int64_t ldc, {t} *pack) {{
  pypto_gemm_{s}(M, N, K, a, lda, b, ldb, c, ldc, pack);
}}
"""
_CDEF = """
void test_gemm_{s}(int64_t M, int64_t N, int64_t K, const {t} *a, int64_t lda,
                   const {t} *b, int64_t ldb, {t} *c, int64_t ldc, {t} *pack);
"""
_TYPES = {"f32": ("float", np.float32), "f64": ("double", np.float64)}
_built: dict[str, object] = {}


def _runnable(isa: str) -> bool:
    """A narrower build runs here when the host's flags name what it turns off."""
    flags = set(compiler.host_isa_flags())
    need = {"native": set(), "avx2": {"-mavx512f", "-mavx2", "-mfma"}, "vec16": {"-mavx"}}
    return need[isa] <= flags


def _helper_lib(isa: str, tmp_path_factory):
    """The gemm helpers built with ``isa``'s flags, with run-time shapes (so every
    micro-kernel is compiled), loaded through cffi."""
    if isa in _built:
        return _built[isa]
    if not _runnable(isa):
        pytest.skip(f"this host/compiler cannot build and run the {isa} variant")
    wrappers = "".join(_WRAPPERS.format(s=s, t=t) for s, (t, _) in _TYPES.items())
    src = prelude(wrappers) + wrappers
    d = tmp_path_factory.mktemp(f"gemm-{isa}")
    (d / "gemm.c").write_text(src)
    compiler.compile_shared(d / "gemm.c", d / "gemm.so", "cpu", extra_flags=_ISAS[isa])
    ffi = cffi.FFI()
    ffi.cdef("".join(_CDEF.format(s=s, t=t) for s, (t, _) in _TYPES.items()))
    lib = ffi.dlopen(str(d / "gemm.so"))
    _built[isa] = (ffi, lib)
    return _built[isa]


def _call(isa, tmp_path_factory, s, m, n, k, pad=3, seed=0):
    """c0 + a @ b through the helper, every operand with ``pad`` extra columns per row."""
    ffi, lib = _helper_lib(isa, tmp_path_factory)
    t, dt = _TYPES[s]
    rng = np.random.default_rng(seed + 1000 * m + 100 * n + k)
    a = rng.standard_normal((m, k + pad)).astype(dt)
    b = rng.standard_normal((k, n + pad)).astype(dt)
    c = rng.standard_normal((m, n + pad)).astype(dt)
    c0 = c.copy()
    pack = np.full((k + m) * 32, np.nan, dtype=dt)  # NaN: the padding must be written
    ptr = lambda x: ffi.cast(f"{t} *", ffi.from_buffer(x))  # noqa: E731
    fn = getattr(lib, f"test_gemm_{s}")
    fn(m, n, k, ptr(a), k + pad, ptr(b), n + pad, ptr(c), n + pad, ptr(pack))
    assert np.array_equal(c[:, n:], c0[:, n:]), "wrote outside the result"
    return c[:, :n], a[:, :k], b[:, :n], c0[:, :n]


# Every micro-tile height of every variant (8/6/4 full, 4/2/1 tails) and every panel
# kind (full 2W, ragged of one vector, ragged of two) for W = 16, 8, 4 (f32) and 8, 4, 2.
HELPER_SHAPES = [
    (m, n, k)
    for m in (1, 2, 3, 5, 7, 8, 13, 15, 19)
    for n in (1, 3, 8, 16, 17, 33, 40, 64, 520)  # rows of b of 520 + pad: repacked panels
    for k in (1, 5, 64)
]


@needs_cc
@pytest.mark.parametrize("s", ["f32", "f64"])
@pytest.mark.parametrize("isa", list(_ISAS))
def test_gemm_helper_every_micro_kernel(isa, s, tmp_path_factory):
    for m, n, k in HELPER_SHAPES:
        got, a, b, c0 = _call(isa, tmp_path_factory, s, m, n, k)
        assert_dot_close(got, a, b, c0, unit=2.0**-24 if s == "f32" else 2.0**-53)


@needs_cc
@pytest.mark.parametrize("s", ["f32", "f64"])
def test_gemm_helper_same_bits_on_every_vector_width(s, tmp_path_factory):
    """Each element is acc, then fma(a, b, .) for k ascending (an exact fused multiply-add,
    also where the build has no FMA instruction): the result does not depend on the
    register block or the vector width."""
    others = [isa for isa in ("avx2", "vec16") if _runnable(isa)]
    if not others:
        pytest.skip("only the native build runs on this host")
    for m, n, k in [(13, 40, 37), (8, 33, 64), (1, 17, 5), (19, 64, 1), (10, 600, 3)]:
        native = _call("native", tmp_path_factory, s, m, n, k)[0]
        for isa in others:
            assert np.array_equal(native, _call(isa, tmp_path_factory, s, m, n, k)[0]), isa


# -- pl.dot in kernels ------------------------------------------------------------------


@pypto.jit
def dot_kernel(a, b, acc0, c, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr, ACC: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m[:, None] * a.stride(0) + k[None, :] * a.stride(1))
    y = pl.load(b + k[:, None] * b.stride(0) + n[None, :] * b.stride(1))
    if ACC:
        acc = pl.load(acc0 + m[:, None] * acc0.stride(0) + n[None, :] * acc0.stride(1))
        r = pl.dot(x, y, acc)
    else:
        r = pl.dot(x, y)
    pl.store(c + m[:, None] * c.stride(0) + n[None, :] * c.stride(1), r)


def run_dot(backend, a, b, acc=None, out_dtype=torch.float32):
    (m, k), n = a.shape, b.shape[1]
    c = torch.full((m, n), -7, dtype=out_dtype)
    acc0 = acc if acc is not None else torch.zeros(1, 1, dtype=out_dtype)
    dot_kernel[(1,)](a, b, acc0, c, M=m, N=n, K=k, ACC=acc is not None, backend=backend)
    return c


E2E_SHAPES = [
    (1, 1, 1),
    (1, 40, 9),  # 1 x N
    (23, 1, 17),  # N x 1
    (9, 33, 1),  # K = 1
    (8, 32, 16),  # one full AVX-512 micro-tile
    (15, 17, 8),  # rows 8 + 4 + 2 + 1, a ragged panel of two vectors (W = 8) or one
    (13, 56, 31),
    (64, 48, 24),
    (10, 512, 3),  # rows of b 2 KiB apart: panels repacked
]


@pytest.mark.parametrize("m,n,k", E2E_SHAPES, ids=str)
@pytest.mark.parametrize("with_acc", [False, True], ids=["no_acc", "acc"])
def test_dot_f32_shapes(backend, m, n, k, with_acc):
    torch.manual_seed(m * 1000 + n * 10 + k)
    a, b = torch.randn(m, k), torch.randn(k, n)
    acc = torch.randn(m, n) if with_acc else None
    assert_dot_close(run_dot(backend, a, b, acc), a, b, acc)


@needs_cc
@pytest.mark.parametrize("m,n,k", [(15, 17, 8), (13, 56, 31)], ids=str)
def test_cpu_and_sim_agree_bit_for_bit(m, n, k):
    torch.manual_seed(3)
    a, b, acc = torch.randn(m, k), torch.randn(k, n), torch.randn(m, n)
    assert torch.equal(run_dot("cpu", a, b, acc), run_dot("sim", a, b, acc))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_dot_half_inputs_f32_accumulation(backend, dtype):
    torch.manual_seed(5)
    a, b = torch.randn(19, 40).to(dtype), torch.randn(40, 35).to(dtype)
    acc = torch.randn(19, 35)
    got = run_dot(backend, a, b, acc)
    assert_dot_close(got, a.float(), b.float(), acc)  # products of halves are exact in f32


def test_dot_f64(backend):
    torch.manual_seed(6)
    a, b = torch.randn(11, 29, dtype=torch.float64), torch.randn(29, 21, dtype=torch.float64)
    acc = torch.randn(11, 21, dtype=torch.float64)
    assert_dot_close(run_dot(backend, a, b, acc, torch.float64), a, b, acc)


def test_dot_int8_to_int32_exact(backend):
    g = torch.Generator().manual_seed(7)
    a = torch.randint(-128, 128, (9, 70), dtype=torch.int8, generator=g)
    b = torch.randint(-128, 128, (70, 33), dtype=torch.int8, generator=g)
    acc = torch.randint(-1000, 1000, (9, 33), dtype=torch.int32, generator=g)
    got = run_dot(backend, a, b, acc, torch.int32)
    assert torch.equal(got, acc + a.int() @ b.int())


def test_dot_int32_wraps(backend):
    g = torch.Generator().manual_seed(8)
    a = torch.randint(-(2**31), 2**31 - 1, (5, 6), dtype=torch.int32, generator=g)
    b = torch.randint(-(2**31), 2**31 - 1, (6, 3), dtype=torch.int32, generator=g)
    got = run_dot(backend, a, b, out_dtype=torch.int32)
    ref = (a.numpy().astype(np.int64) @ b.numpy().astype(np.int64)).astype(np.int32)
    assert np.array_equal(got.numpy(), ref)


def test_dot_strided_and_transposed_operands(backend):
    torch.manual_seed(9)
    a = torch.randn(21, 13).t()  # (13, 21), column-major
    b = torch.randn(21, 70)[:, ::2]  # (21, 35), every other column
    acc = torch.randn(35, 13).t()  # (13, 35), transposed
    assert_dot_close(run_dot(backend, a, b, acc), a, b, acc)


@pypto.jit
def dot_trans_virtual(a, b, c, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m[:, None] * K + k[None, :])
    bt = pl.load(b + n[:, None] * K + k[None, :])  # b is [N, K]
    r = pl.dot(x * 2.0, pl.trans(bt), pl.zeros((M, N), dtype=pl.float32) + 1.0)
    pl.store(c + m[:, None] * N + n[None, :], r)


def test_dot_of_trans_and_virtual_operands(backend):
    torch.manual_seed(10)
    a, b = torch.randn(10, 12), torch.randn(37, 12)
    c = torch.zeros(10, 37)
    dot_trans_virtual[(1,)](a, b, c, M=10, N=37, K=12, backend=backend)
    assert_dot_close(c, 2 * a, b.t(), torch.ones(10, 37))


@pypto.jit
def dot_acc_not_in_place(a, b, acc0, c1, c2, c3, M: pl.constexpr, N: pl.constexpr, K: pl.constexpr):
    m = pl.arange(0, M)
    n = pl.arange(0, N)
    k = pl.arange(0, K)
    x = pl.load(a + m[:, None] * K + k[None, :])
    y = pl.load(b + k[:, None] * N + n[None, :])
    flat = pl.load(acc0 + pl.arange(0, M * N))
    acc = pl.reshape(flat, (M, N))  # shares storage with flat, which is stored below
    r1 = pl.dot(x, y, acc)
    pl.store(c1 + m[:, None] * N + n[None, :], r1)
    pl.store(c2 + pl.arange(0, M * N), flat)  # must still be acc0
    acc2 = pl.load(acc0 + m[:, None] * N + n[None, :])
    total = pl.zeros((M, N), dtype=pl.float32)
    for _ in range(3):  # acc2's one use, but inside a loop: three dots from the same acc2
        total += pl.dot(x, y, acc2)
    pl.store(c3 + m[:, None] * N + n[None, :], total)


def test_dot_accumulator_reused_is_not_overwritten(backend):
    torch.manual_seed(11)
    m, n, k = 9, 20, 7
    a, b, acc0 = torch.randn(m, k), torch.randn(k, n), torch.randn(m, n)
    c1, c2, c3 = torch.zeros(m, n), torch.zeros(m * n), torch.zeros(m, n)
    dot_acc_not_in_place[(1,)](a, b, acc0.reshape(-1), c1, c2, c3, M=m, N=n, K=k, backend=backend)
    assert_dot_close(c1, a, b, acc0)
    assert torch.equal(c2, acc0.reshape(-1))
    torch.testing.assert_close(c3, 3 * (acc0 + a @ b), rtol=1e-5, atol=1e-4)


@pypto.jit
def k_loop(a, b, c, M, N, K, BM: pl.constexpr, BN: pl.constexpr, BK: pl.constexpr):
    rm = pl.program_id(0) * BM + pl.arange(0, BM)
    rn = pl.program_id(1) * BN + pl.arange(0, BN)
    rk = pl.arange(0, BK)
    acc = pl.zeros((BM, BN), dtype=pl.float32)
    for k0 in range(0, K, BK):  # acc is carried: the dot updates it in place
        kk = k0 + rk
        x = pl.load(a + rm[:, None] * K + kk[None, :], mask=(rm[:, None] < M) & (kk[None, :] < K))
        y = pl.load(b + kk[:, None] * N + rn[None, :], mask=(kk[:, None] < K) & (rn[None, :] < N))
        acc = pl.dot(x, y, acc)
    pl.store(c + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


@pytest.mark.parametrize("bm,bn,bk", [(16, 32, 8), (12, 24, 5), (32, 64, 16)], ids=str)
def test_k_loop_with_carried_accumulator(backend, bm, bn, bk):
    torch.manual_seed(12)
    m, n, k = 45, 70, 37
    a, b = torch.randn(m, k), torch.randn(k, n)
    c = torch.full((m, n), -1.0)
    grid = (pypto.cdiv(m, bm), pypto.cdiv(n, bn))
    k_loop[grid](a, b, c, m, n, k, BM=bm, BN=bn, BK=bk, backend=backend)
    assert_dot_close(c, a, b)


@needs_cc
def test_k_loop_in_place_in_the_generated_c():
    """The carried accumulator is the dot's own storage: no copy of it per step."""
    a, b, c = torch.zeros(64, 64), torch.zeros(64, 64), torch.zeros(64, 64)
    ck = k_loop.warmup(a, b, c, 64, 64, 64, BM=32, BN=32, BK=16, grid=(1,))
    src = ck.asm["c"]
    assert "pypto_gemm_f32(32, 32, 16," in src
    assert "memcpy" not in src.split("pypto_program", 1)[1]


@pypto.jit
def k_loop_mod(a, b, c, M, N, K, sbk, sbn, BM: pl.constexpr, BN: pl.constexpr, BK: pl.constexpr):
    """Triton's tutorial idiom: the ragged edge of B wraps around with ``% N``."""
    rm = pl.program_id(0) * BM + pl.arange(0, BM)
    cn = pl.program_id(1) * BN + pl.arange(0, BN)
    rn = cn % N
    rk = pl.arange(0, BK)
    acc = pl.zeros((BM, BN), dtype=pl.float32)
    b_ptrs = b + rk[:, None] * sbk + rn[None, :] * sbn
    for k0 in range(0, K, BK):
        kk = k0 + rk
        x = pl.load(a + rm[:, None] * K + kk[None, :], mask=(rm[:, None] < M) & (kk[None, :] < K))
        y = pl.load(b_ptrs, mask=kk[:, None] < K, other=0.0)
        acc = pl.dot(x, y, acc)
        b_ptrs += BK * sbk
    pl.store(c + rm[:, None] * N + cn[None, :], acc, mask=(rm[:, None] < M) & (cn[None, :] < N))


def _b_layout(k: int, n: int, layout: str) -> torch.Tensor:
    if layout == "transposed":
        return torch.randn(n, k).t()
    if layout == "strided":
        return torch.randn(k, 2 * n)[:, ::2]
    return torch.randn(k, n)


# N a multiple of BN (no block wraps: the contiguous branch), not one (the last column of
# programs wraps: the gather branch), smaller than BN (every block wraps).
@pytest.mark.parametrize("n,bn", [(64, 32), (70, 32), (20, 32), (48, 16)], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_k_loop_with_wrapping_columns(backend, n, bn, layout):
    torch.manual_seed(13)
    m, k, bm, bk = 37, 29, 16, 8
    a, b = torch.randn(m, k), _b_layout(k, n, layout)
    c = torch.full((m, n), -1.0)
    grid = (pypto.cdiv(m, bm), pypto.cdiv(n, bn))
    args = (a, b, c, m, n, k, b.stride(0), b.stride(1))
    k_loop_mod[grid](*args, BM=bm, BN=bn, BK=bk, backend=backend)
    assert_dot_close(c, a, b)


@needs_cc
def test_k_loop_with_wrapping_columns_reads_rows_of_b_when_they_do_not_wrap():
    a, b, c = torch.zeros(64, 64), torch.zeros(64, 64), torch.zeros(64, 64)
    ck = k_loop_mod.warmup(a, b, c, 64, 64, 64, 64, 1, BM=32, BN=32, BK=16, grid=(1,))
    b_loads = [
        line for line in ck.asm["opt_ir"].splitlines() if " load " in line and "param=1" in line
    ]
    assert len(b_loads) == 2  # the checked branch and the original
    assert sum("contig=true" in line for line in b_loads) == 1
