"""pl.randint / randint4x / rand / randn against a plain-numpy Philox 4x32-10.

The reference below follows Triton's random.py: the counter is (offset, 0, 0, 0) as
uint32, the key is (seed low 32 bits, seed high 32 bits), ten rounds with Triton's
constants; rand maps the first word to [0, 1) through int32 and a fixed scale; randn
is Box-Muller on the first two words. Integers must be bit-identical on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl

PHILOX_KEY_A = 0x9E3779B9
PHILOX_KEY_B = 0xBB67AE85
PHILOX_ROUND_A = 0xD2511F53
PHILOX_ROUND_B = 0xCD9E8D57
M32 = np.uint64(0xFFFFFFFF)


def _mul_hi_lo(a: int, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prod = np.uint64(a) * b.astype(np.uint64)  # < 2^64: exact
    return (prod >> np.uint64(32)).astype(np.uint32), (prod & M32).astype(np.uint32)


def philox_rounds(c0, c1, c2, c3, k0: int, k1: int, rounds: int = 10):
    """Philox 4x32 on uint32 arrays, exactly Triton's philox_impl."""
    for _ in range(rounds):
        hi_b, lo_b = _mul_hi_lo(PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mul_hi_lo(PHILOX_ROUND_A, c0)
        c0, c2 = hi_b ^ c1 ^ np.uint32(k0), hi_a ^ c3 ^ np.uint32(k1)
        c1, c3 = lo_b, lo_a
        k0 = (k0 + PHILOX_KEY_A) & 0xFFFFFFFF
        k1 = (k1 + PHILOX_KEY_B) & 0xFFFFFFFF
    return c0, c1, c2, c3


def philox_ref(seed: int, offsets: np.ndarray, rounds: int = 10):
    """Triton's randint4x: counters (offsets, 0, 0, 0), key = the 64-bit seed."""
    c0 = np.asarray(offsets).astype(np.int64).astype(np.uint32)  # bitcast of the i32 offsets
    zero = np.zeros_like(c0)
    seed &= 2**64 - 1
    return philox_rounds(c0, zero, zero, zero, seed & 0xFFFFFFFF, seed >> 32, rounds)


def uniform_ref(words: np.ndarray) -> np.ndarray:
    x = words.view(np.int32).astype(np.int64)
    x = np.where(x < 0, -x - 1, x).astype(np.int32)
    return x.astype(np.float32) * np.float32(4.6566127342e-10)


def normal_ref(w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    u1 = np.maximum(np.float32(1.0e-7), uniform_ref(w0))
    u2 = uniform_ref(w1)
    th = np.float32(6.283185307179586) * u2
    r = np.sqrt(np.float32(-2.0) * np.log(u1))
    return r * np.cos(th)


@pytest.mark.parametrize(
    "ctr,key,expected",
    [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
            [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ],
)
def test_reference_matches_random123_known_answers(ctr, key, expected):
    words = philox_rounds(*(np.array([c], np.uint32) for c in ctr), *key)
    assert [int(w[0]) for w in words] == expected


@pypto.jit(do_not_specialize=["seed"])  # one compile for every 32-bit seed
def randint4x_kernel(o0, o1, o2, o3, one, seed, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = offs < n
    r0, r1, r2, r3 = pl.randint4x(seed, offs)
    pl.store(o0 + offs, r0, mask=m)
    pl.store(o1 + offs, r1, mask=m)
    pl.store(o2 + offs, r2, mask=m)
    pl.store(o3 + offs, r3, mask=m)
    pl.store(one + offs, pl.randint(seed, offs), mask=m)


SEEDS = [0, 1234, 2**31 - 1, 2**40 + 77]  # the last one is an i64 with a high key word


@pytest.mark.parametrize("seed", SEEDS)
def test_randint4x_bit_identical_to_reference(backend, seed):
    n = 1000
    outs = [np.zeros(n, np.uint32) for _ in range(5)]
    randint4x_kernel[(pypto.cdiv(n, 256),)](*outs, seed, n, BLOCK=256, backend=backend)
    ref = philox_ref(seed, np.arange(n))
    for i in range(4):
        np.testing.assert_array_equal(outs[i], ref[i], err_msg=f"word {i}")
    np.testing.assert_array_equal(outs[4], ref[0], err_msg="randint")


@pypto.jit(do_not_specialize=["seed"])
def rand_kernel(u_out, z_out, seed, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = offs < n
    pl.store(u_out + offs, pl.rand(seed, offs), mask=m)
    pl.store(z_out + offs, pl.randn(seed, offs), mask=m)


@pytest.mark.parametrize("seed", [7, 2**40 + 77])
def test_rand_randn_match_reference(backend, seed):
    n = 3000
    u, z = np.zeros(n, np.float32), np.zeros(n, np.float32)
    rand_kernel[(pypto.cdiv(n, 512),)](u, z, seed, n, BLOCK=512, backend=backend)
    w0, w1, _, _ = philox_ref(seed, np.arange(n))
    np.testing.assert_array_equal(u, uniform_ref(w0))  # exact: one conversion, one multiply
    assert (u >= 0).all() and (u < 1).all()
    np.testing.assert_allclose(z, normal_ref(w0, w1), rtol=1e-5, atol=1e-5)
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1


@pypto.jit
def rand2d(out, seed, M: pl.constexpr, N: pl.constexpr):
    offs = pl.arange(0, M)[:, None] * N + pl.arange(0, N)[None, :]
    pl.store(out + offs, pl.randint(seed, offs))  # a 2-D block of offsets


def test_randint_on_a_2d_block(backend):
    out = np.zeros((6, 7), np.uint32)
    rand2d[(1,)](out, 99, M=6, N=7, backend=backend)
    np.testing.assert_array_equal(out.reshape(-1), philox_ref(99, np.arange(42))[0])


def test_streams_identical_across_backends():
    n = 700
    results = []
    for backend in ("cpu", "sim", "interpret"):
        outs = [np.zeros(n, np.uint32) for _ in range(5)]
        randint4x_kernel[(pypto.cdiv(n, 128),)](*outs, 5, n, BLOCK=128, backend=backend)
        u, z = np.zeros(n, np.float32), np.zeros(n, np.float32)
        rand_kernel[(pypto.cdiv(n, 128),)](u, z, 5, n, BLOCK=128, backend=backend)
        results.append((outs, u))
    for outs, u in results[1:]:
        for a, b in zip(outs, results[0][0], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(u, results[0][1])


def test_different_seeds_and_offsets_differ(backend):
    n = 512
    a, b = np.zeros(n, np.float32), np.zeros(n, np.float32)
    z = np.zeros(n, np.float32)
    rand_kernel[(1,)](a, z, 1, n, BLOCK=512, backend=backend)
    rand_kernel[(1,)](b, z, 2, n, BLOCK=512, backend=backend)
    assert (a != b).mean() > 0.99
    assert len(np.unique(a)) > 0.99 * n
    torch.manual_seed(0)  # keep torch's global RNG untouched by the kernels
