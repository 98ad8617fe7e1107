"""Random numbers: Philox 4x32-10, written in the kernel language and inlined when called.

The stream is Triton's, bit for bit: for a ``seed`` scalar and a block of
``offset``s, each lane runs Philox on the counter
``(offset_lo, offset_hi, 0, 0)`` with the key ``(seed_lo, seed_hi)`` and gets
four uint32 words. ``randint`` is the first word, ``rand`` maps it to
``[0, 1)`` and ``randn`` turns the first two into a normal sample
(Box-Muller). Every backend runs this same code, so every backend produces
the same numbers.

This module imports ``pypto_jit.jit``; ``pypto_jit.language`` loads it on
first use (``pl.rand``), after the package has finished importing.
"""

import pypto_jit.language as pl

from ..jit import jit

# Philox 4x32 constants (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
PHILOX_KEY_A = pl.constexpr(0x9E3779B9)  # the key schedule ("Weyl sequence") increments
PHILOX_KEY_B = pl.constexpr(0xBB67AE85)
PHILOX_ROUND_A = pl.constexpr(0xD2511F53)  # the two multipliers of a round
PHILOX_ROUND_B = pl.constexpr(0xCD9E8D57)
N_ROUNDS_DEFAULT = pl.constexpr(10)

# The largest float32 below 2**-31 such that (2**31 - 1) * scale still rounds below 1.0.
_UNIFORM_SCALE_32 = pl.constexpr(4.6566127342e-10)
_UNIFORM_SCALE_64 = pl.constexpr(1.0842020432385337e-19)


@jit
def philox_impl(c0, c1, c2, c3, k0, k1, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """``n_rounds`` Philox rounds on the uint32 counter (c0..c3) with the key (k0, k1)."""
    pl.static_assert(c0.dtype == pl.uint32, "philox_impl works on uint32 counters")
    for _ in pl.static_range(n_rounds):
        # One round: two 32x32->64 multiplications; the high halves are mixed with the
        # other counter words and the key, the low halves become the new odd words.
        hi_b = pl.umulhi(PHILOX_ROUND_B, c2)
        hi_a = pl.umulhi(PHILOX_ROUND_A, c0)
        lo_b = c2 * PHILOX_ROUND_B
        lo_a = c0 * PHILOX_ROUND_A
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0 = k0 + PHILOX_KEY_A
        k1 = k1 + PHILOX_KEY_B
    return c0, c1, c2, c3


@jit
def philox(seed, c0, c1, c2, c3, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """Philox on 32-bit counters; the 64-bit ``seed`` is split into the two key words."""
    seed = pl.to_tensor(seed)
    pl.static_assert(seed.dtype.is_int(), "the Philox seed must be an integer")
    seed = seed.to(pl.uint64)
    key_lo = (seed & 0xFFFFFFFF).to(pl.uint32)
    key_hi = ((seed >> 32) & 0xFFFFFFFF).to(pl.uint32)
    c0 = pl.to_tensor(c0)
    pl.static_assert(c0.dtype.primitive_bitwidth == 32, "philox takes 32-bit counters")
    c0 = c0.to(pl.uint32, bitcast=True)
    c1 = pl.to_tensor(c1).to(pl.uint32, bitcast=True)
    c2 = pl.to_tensor(c2).to(pl.uint32, bitcast=True)
    c3 = pl.to_tensor(c3).to(pl.uint32, bitcast=True)
    return philox_impl(c0, c1, c2, c3, key_lo, key_hi, n_rounds)


@jit
def randint4x(seed, offset, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """Four blocks of random uint32 for ``seed`` and the block of ``offset``s."""
    offset = pl.to_tensor(offset)
    pl.static_assert(offset.dtype.is_int(), "random offsets must be integers")
    counter_lo = offset.to(pl.uint32)
    zero = pl.zeros_like(counter_lo)
    counter_hi = zero
    if offset.dtype.primitive_bitwidth > 32:
        counter_hi = (offset >> 32).to(pl.uint32)
    return philox(seed, counter_lo, counter_hi, zero, zero, n_rounds)


@jit
def randint(seed, offset, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """A block of random uint32 (the first of ``randint4x``'s four)."""
    first, _, _, _ = randint4x(seed, offset, n_rounds)
    return first


@jit
def uint_to_uniform_float(x):
    """Random 32- or 64-bit integers to float32 in [0, 1).

    The bits are read as a signed integer, folded onto [0, 2**(bits-1)) and scaled;
    this keeps more low-order randomness than dividing the unsigned value.
    """
    if x.dtype == pl.uint32 or x.dtype == pl.int32:
        x = x.to(pl.int32, bitcast=True)
        scale = _UNIFORM_SCALE_32
    else:
        pl.static_assert(
            x.dtype == pl.uint64 or x.dtype == pl.int64,
            "uint_to_uniform_float takes 32- or 64-bit integers",
        )
        x = x.to(pl.int64, bitcast=True)
        scale = _UNIFORM_SCALE_64
    x = pl.where(x < 0, -x - 1, x)
    return x * scale


@jit
def rand(seed, offset, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """A block of float32 uniform in [0, 1)."""
    return uint_to_uniform_float(randint(seed, offset, n_rounds))


@jit
def rand4x(seed, offset, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """Four independent blocks of float32 uniform in [0, 1)."""
    i1, i2, i3, i4 = randint4x(seed, offset, n_rounds)
    return (
        uint_to_uniform_float(i1),
        uint_to_uniform_float(i2),
        uint_to_uniform_float(i3),
        uint_to_uniform_float(i4),
    )


@jit
def pair_uniform_to_normal(u1, u2):
    """Box-Muller: two uniform samples to two independent standard normal samples."""
    u1 = pl.maximum(1.0e-7, u1)  # log(0) would give -inf
    theta = 6.283185307179586 * u2
    radius = pl.sqrt(-2.0 * pl.log(u1))
    return radius * pl.cos(theta), radius * pl.sin(theta)


@jit
def randn(seed, offset, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """A block of float32 from the standard normal distribution."""
    i1, i2, _, _ = randint4x(seed, offset, n_rounds)
    n1, _ = pair_uniform_to_normal(uint_to_uniform_float(i1), uint_to_uniform_float(i2))
    return n1


@jit
def randn4x(seed, offset, n_rounds: pl.constexpr = N_ROUNDS_DEFAULT):
    """Four blocks of float32 from the standard normal distribution."""
    u1, u2, u3, u4 = rand4x(seed, offset, n_rounds)
    n1, n2 = pair_uniform_to_normal(u1, u2)
    n3, n4 = pair_uniform_to_normal(u3, u4)
    return n1, n2, n3, n4
