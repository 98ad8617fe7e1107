"""The interpreter's math and whole-block ops against numpy, torch and exact references:
ERF, TANH, UMULHI, FMA, BITCAST, PERMUTE, REDUCE, SCAN and DOT."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from test_interpreter import (
    INTS,
    TORCH,
    arange,
    assert_same_floats,
    build,
    float_inputs,
    from_storage,
    int_inputs_np,
    int_range,
    launch,
    run_map,
    run_map_np,
    tensor,
    to_storage,
    ulp_distance,
    wrap,
)

from pypto_jit.interpreter.registry import RULES
from pypto_jit.ir import BlockType, Builder, Op
from pypto_jit.ir.ops import TERMINATORS
from pypto_jit.ir.types import SCALARS, i32

SHAPES = [(1, 1), (1, 7), (7, 1), (5, 3), (3, 4, 5)]


def test_every_op_has_a_rule():
    assert set(RULES) | TERMINATORS == set(Op)


def seeded(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- building block kernels -----------------------------------------------------------


def block_offsets(b: Builder, shape: tuple[int, ...]):
    """Row-major element offsets 0..numel-1 as a block of ``shape``."""
    n = math.prod(shape)
    flat = arange(b, n)
    return flat if len(shape) == 1 else b.typed(Op.RESHAPE, flat, declared=BlockType(i32, shape))


def load_block(b: Builder, ptr, shape: tuple[int, ...]):
    off = block_offsets(b, shape)
    return b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(ptr, shape), off))


def store_result(b: Builder, ptr, value) -> None:
    """Store a block row-major from offset 0, or a scalar at offset 0."""
    if isinstance(value.type, BlockType):
        off = block_offsets(b, value.type.shape)
        b.typed(Op.STORE, b.typed(Op.ADDPTR, b.splat(ptr, value.type.shape), off), value)
    else:
        b.typed(Op.STORE, b.typed(Op.ADDPTR, ptr, b.const(0, i32)), value)


def storage_dtype(t: str) -> np.dtype:
    return np.dtype(np.uint16) if t == "bf16" else SCALARS[t].np_dtype


def run_block(inputs: list[tuple[str, np.ndarray, tuple[int, ...]]], t_out: str, fn) -> np.ndarray:
    """out = fn(b, *blocks): each input is (type, storage array, block shape)."""
    result_type: list = []

    def body(b, *args):
        *ptrs, out = args
        blocks = [load_block(b, p, shp) for p, (_, _, shp) in zip(ptrs, inputs, strict=True)]
        value = fn(b, *blocks)
        result_type.append(value.type)
        store_result(b, out, value)

    params = [tensor(f"x{i}", t) for i, (t, _, _) in enumerate(inputs)] + [tensor("out", t_out)]
    module = build("block", params, body)
    shape = result_type[0].shape if isinstance(result_type[0], BlockType) else ()
    out = np.zeros(max(1, math.prod(shape)), storage_dtype(t_out))
    launch(module, *[a.reshape(-1) for _, a, _ in inputs], out)
    return out.reshape(shape)


def torch_out(a: np.ndarray, t: str) -> torch.Tensor:
    return from_storage(a.reshape(-1), t).reshape(a.shape)


# -- ERF, TANH ------------------------------------------------------------------------

TORCH_MATH = {Op.ERF: torch.erf, Op.TANH: torch.tanh}


@pytest.mark.parametrize("t", ["f32", "f64"])
@pytest.mark.parametrize("op", [Op.ERF, Op.TANH], ids=str)
def test_erf_tanh_match_torch(op, t):
    ref = TORCH_MATH[op]
    x = float_inputs(t, n=300, lo=-6, hi=6)
    got = run_map(op, t, [x])
    want = ref(x.double()).to(x.dtype)  # float64, rounded once
    torch.testing.assert_close(
        got, want, rtol=2e-16 if t == "f64" else 1e-7, atol=0, equal_nan=True
    )
    assert got[x == 0].eq(0).all() and (torch.signbit(got) == torch.signbit(x))[x == 0].all()
    assert got[x == math.inf].eq(1).all() and got[x == -math.inf].eq(-1).all()


@pytest.mark.parametrize("t", ["f16", "bf16"])
@pytest.mark.parametrize("op", [Op.ERF, Op.TANH], ids=str)
def test_half_erf_tanh_round_like_torch(op, t):
    ref = TORCH_MATH[op]
    x = float_inputs(t, n=400, lo=-4, hi=4)
    assert ulp_distance(run_map(op, t, [x]), ref(x)).max() <= 1


# -- UMULHI ---------------------------------------------------------------------------


def _umulhi_ref(x: int, y: int, t: str) -> int:
    """Triton's umulhi: the high half of the product of the operands' bits as UNSIGNED,
    reinterpreted in ``t`` (wrapped to the signed range for a signed type)."""
    bits = SCALARS[t].bits
    mask = (1 << bits) - 1
    return wrap(((x & mask) * (y & mask)) >> bits, t)


@pytest.mark.parametrize("t", INTS)
def test_umulhi_is_the_high_half_of_the_unsigned_product(t):
    a, b = int_inputs_np(t, 80), int_inputs_np(t, 80)
    b[:12] = a[0]  # the type's minimum (or 0) times every edge value
    b[12:24] = a[4]  # -1 (all ones; 2**bits - 1 for unsigned) times every edge value
    got = run_map_np(Op.UMULHI, t, [a, b]).tolist()
    want = [_umulhi_ref(int(x), int(y), t) for x, y in zip(a, b, strict=True)]
    assert got == want


def test_umulhi_known_values():
    u = np.array([0xFFFFFFFF, 0xD2511F53, 2**31], np.uint32)
    v = np.array([0xFFFFFFFF, 0xCD9E8D57, 2], np.uint32)  # Philox multipliers
    assert run_map_np(Op.UMULHI, "u32", [u, v]).tolist() == [0xFFFFFFFE, 0xA8ED3844, 1]
    # Signed operands are multiplied as unsigned: 0xFFFFFFFF * 0xFFFFFFFF = 0xFFFFFFFE_00000001.
    i = np.array([-1, -1, -(2**31), 2**31 - 1, -2], np.int32)
    j = np.array([1, -1, -(2**31), 2**31 - 1, 3], np.int32)
    assert run_map_np(Op.UMULHI, "i32", [i, j]).tolist() == [0, -2, 2**30, 2**30 - 1, 2]
    big = np.array([2**64 - 1], np.uint64)
    assert run_map_np(Op.UMULHI, "u64", [big, big]).tolist() == [2**64 - 2]
    m = np.array([-1, -1, -(2**63)], np.int64)
    n = np.array([1, -1, -1], np.int64)
    assert run_map_np(Op.UMULHI, "i64", [m, n]).tolist() == [0, -2, 2**63 - 1]


# -- FMA ------------------------------------------------------------------------------


def exact_fma(a: float, b: float, c: float) -> Fraction:
    return Fraction(a) * Fraction(b) + Fraction(c)


def round_f32(x: Fraction) -> np.float32:
    """Round an exact rational to the nearest f32 (ties to even), from first principles."""
    if x == 0:
        return np.float32(0.0)
    sign, x = (-1 if x < 0 else 1), abs(x)
    e = math.floor(math.log2(x))
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    q = max(e, -126) - 23  # the spacing of f32 values around x
    scaled = x / Fraction(2) ** q
    n = math.floor(scaled)
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    value = n * Fraction(2) ** q
    return np.float32(sign * float(value)) if value < 2**128 else np.float32(sign * math.inf)


def test_f32_fma_is_rounded_once():
    # 4097 * 4097 = 2**24 + 2**13 + 1 lies halfway between two f32 values; c = +-2**-30
    # decides. In f64 the sum rounds to the halfway point, and a second rounding to f32
    # would then go to even (down) in both cases: only a single rounding gets both right.
    a = np.array([4097.0, 4097.0, 4097.0, 1 + 2**-23], np.float32)
    b = np.array([4097.0, 4097.0, 4097.0, 1 - 2**-23], np.float32)
    c = np.array([2**-30, -(2**-30), 0.0, -1.0], np.float32)
    got = run_map_np(Op.FMA, "f32", [a, b, c])
    np.testing.assert_array_equal(got, [16785410.0, 16785408.0, 16785408.0, -(2.0**-46)])
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    assert naive[0] != got[0]  # the test can tell the difference


def fma_inputs(dtype, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random operands, some products cancelling c almost exactly, and special values."""
    a, b = (rng.uniform(-4, 4, n).astype(dtype) for _ in range(2))
    c = rng.uniform(-16, 16, n).astype(dtype)
    near = n // 3
    c[:near] = -(a[:near].astype(np.float64) * b[:near]).astype(dtype)  # heavy cancellation
    c[near : 2 * near] *= dtype(2.0**-30)  # tiny addends
    special = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0]
    k = len(special)
    a[-k * k :] = np.repeat(special, k)
    b[-k * k :] = np.tile(special, k)
    c[-k * k :] = rng.choice(special, k * k)
    return [a, b, c]


def test_f32_fma_matches_exact_rounding():
    a, b, c = fma_inputs(np.float32, 600, seeded(1))
    got = run_map_np(Op.FMA, "f32", [a, b, c])
    with np.errstate(all="ignore"):
        ieee = (a.astype(np.float64) * b + c).astype(np.float32)  # right for non-finite
    for i in range(a.size):
        if np.isfinite([a[i], b[i], c[i]]).all():
            want = round_f32(exact_fma(float(a[i]), float(b[i]), float(c[i])))
            if want == 0:  # the sign of an exact zero follows IEEE
                want = ieee[i]
        else:
            want = ieee[i]
        assert got[i].tobytes() == want.tobytes() or (np.isnan(got[i]) and np.isnan(want)), i


def test_f64_fma_matches_exact_rounding():
    a, b, c = fma_inputs(np.float64, 300, seeded(2))
    a[:3], b[:3], c[:3] = 2.0**512, 2.0**512, [-(2.0**1023), -math.inf, math.inf]
    a[3:5], b[3:5], c[3:5] = 1 + 2**-30, 1 + 2**-30, -(1 + 2**-29)
    got = run_map_np(Op.FMA, "f64", [a, b, c])
    # An overflowing product is still exact: 2**1024 - 2**1023 is finite; c = +-inf wins.
    assert got[:3].tolist() == [2.0**1023, -math.inf, math.inf]
    assert got[3] == 2.0**-60  # a * b + c in two roundings gives 0
    with np.errstate(all="ignore"):
        ieee = a * b + c
    for i in range(3, a.size):
        if np.isfinite([a[i], b[i], c[i]]).all():
            exact = exact_fma(a[i], b[i], c[i])
            want = float(exact) if exact != 0 else ieee[i]
        else:
            want = ieee[i]
        assert got[i].tobytes() == np.float64(want).tobytes() or np.isnan([got[i], want]).all()


@pytest.mark.parametrize("t", ["f16", "bf16"])
def test_half_fma_rounds_the_f32_fma(t):
    x = [float_inputs(t, n=200, lo=-30, hi=30) for _ in range(3)]
    x[2] = x[2][torch.randperm(200, generator=torch.Generator().manual_seed(3))]
    got = run_map(Op.FMA, t, x)
    f32 = [to_storage(v.float()) for v in x]
    want = torch.from_numpy(run_map_np(Op.FMA, "f32", f32)).to(TORCH[t])
    assert_same_floats(got, want)


# -- BITCAST --------------------------------------------------------------------------

BITCASTS = [
    ("f32", "i32"),
    ("f32", "u32"),
    ("i32", "f32"),
    ("f16", "i16"),
    ("i16", "f16"),
    ("bf16", "i16"),
    ("u16", "bf16"),
    ("bf16", "f16"),
    ("f64", "i64"),
    ("u64", "f64"),
    ("i8", "u8"),
]


@pytest.mark.parametrize("src, dst", BITCASTS, ids=str)
def test_bitcast_matches_torch_view(src, dst):
    if src in ("f16", "bf16", "f32", "f64"):
        x = float_inputs(src, n=50)
    else:
        x = torch.from_numpy(int_inputs_np(src, 25))
    n = x.numel()

    def body(b, xp, out):
        v = load_block(b, xp, (n,))
        store_result(b, out, b.typed(Op.BITCAST, v, declared=BlockType(SCALARS[dst], (n,))))

    module = build("bitcast", [tensor("x", src), tensor("out", dst)], body)
    out = np.zeros(n, storage_dtype(dst))
    launch(module, to_storage(x), out)
    got, want = torch_out(out, dst), x.view(TORCH[dst])
    if dst == "bf16":  # storing a bf16 NaN writes the canonical NaN, as torch's rounding does
        nan = torch.isnan(want)
        assert torch.isnan(got[nan]).all()
        got, want = got[~nan], want[~nan]
    assert got.view(torch.uint8).equal(want.view(torch.uint8))


def test_bitcast_keeps_nan_payloads():
    bits = np.array([0x7FC00001, 0xFF800123, 0x7F800000], np.uint32)
    got = run_block(
        [("u32", bits, (3,))],
        "u32",
        lambda b, v: b.typed(
            Op.BITCAST,
            b.typed(Op.BITCAST, v, declared=BlockType(SCALARS["f32"], (3,))),
            declared=BlockType(SCALARS["u32"], (3,)),
        ),
    )
    np.testing.assert_array_equal(got, bits)


# -- PERMUTE --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, order",
    [
        ((1, 7), (1, 0)),
        ((7, 1), (1, 0)),
        ((5, 3), (1, 0)),
        ((1, 1), (0, 1)),
        ((2, 3, 4), (2, 0, 1)),
        ((2, 3, 4), (1, 2, 0)),
        ((6,), (0,)),
    ],
)
def test_permute_matches_numpy(shape, order):
    x = seeded().integers(-100, 100, shape).astype(np.int32)
    got = run_block([("i32", x, shape)], "i32", lambda b, v: b.typed(Op.PERMUTE, v, order=order))
    np.testing.assert_array_equal(got, np.transpose(x, order))


def test_permute_pointer_blocks():
    """Loading through transposed pointers reads the transposed tensor."""
    x = np.arange(15, dtype=np.float32).reshape(3, 5)

    def body(b, xp, out):
        ptrs = b.typed(Op.ADDPTR, b.splat(xp, (3, 5)), block_offsets(b, (3, 5)))
        store_result(b, out, b.typed(Op.LOAD, b.typed(Op.PERMUTE, ptrs, order=(1, 0))))

    out = np.zeros(15, np.float32)
    launch(build("tptr", [tensor("x", "f32"), tensor("out", "f32")], body), x.reshape(-1), out)
    np.testing.assert_array_equal(out.reshape(5, 3), x.T)


# -- REDUCE ---------------------------------------------------------------------------


def reduce_block(x: np.ndarray, t: str, kind: str, axis: int, keep: bool, t_out: str | None = None):
    return run_block(
        [(t, x, x.shape)],
        t_out or t,
        lambda b, v: b.typed(Op.REDUCE, v, kind=kind, axis=axis, keep_dims=keep),
    )


def with_specials(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sprinkle NaN and infinities into a float array (a copy)."""
    x = x.copy().reshape(-1)
    if x.size >= 4:
        idx = rng.choice(x.size, 3, replace=False)
        x[idx] = [np.nan, np.inf, -np.inf]
    return x


TORCH_REDUCE = {
    "sum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "prod": lambda x, d, k: torch.prod(x, d, keepdim=k),
    "max": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "min": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "argmax": lambda x, d, k: torch.argmax(x, d, keepdim=k).int(),
    "argmin": lambda x, d, k: torch.argmin(x, d, keepdim=k).int(),
}


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", list(TORCH_REDUCE))
def test_float_reductions_match_torch(kind, shape, keep):
    rng = seeded(len(shape) * 10 + shape[0])
    x = rng.uniform(-2, 2, shape).astype(np.float32)
    if kind in ("argmax", "argmin"):
        x = np.round(x)  # ties: the first index wins
    cases = [x]
    if x.size >= 4 and kind != "prod":
        cases.append(with_specials(x, rng).reshape(shape))  # NaN wins max/min/argmax/argmin
    for data in cases:
        for axis in range(len(shape)):
            t_out = "i32" if kind.startswith("arg") else "f32"
            got = reduce_block(data, "f32", kind, axis, keep, t_out)
            want = TORCH_REDUCE[kind](torch.from_numpy(data), axis, keep).numpy()
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_argmax_argmin_first_index_and_nan():
    x = np.array([[1, 3, 3, 0], [np.nan, 5, np.nan, 9], [2, -np.inf, 2, -np.inf]], np.float32)
    for kind, want in [("argmax", [[1, 0, 0], [1, 1]]), ("argmin", [[3, 0, 1], [1, 2]])]:
        # axis 1, then axis 0 of the columns [1, nan, 2] and [3, 5, -inf]
        assert reduce_block(x, "f32", kind, 1, False, "i32").tolist() == want[0]
        assert reduce_block(x[:, :2], "f32", kind, 0, False, "i32").tolist() == want[1]


def test_max_min_propagate_nan_and_sum_of_infinities():
    x = np.array([[1, np.nan, 3], [np.inf, -np.inf, 0], [np.inf, 1, 2]], np.float32)
    assert np.isnan(reduce_block(x, "f32", "max", 1, False)).tolist() == [True, False, False]
    assert np.isnan(reduce_block(x, "f32", "min", 0, False)).tolist() == [False, True, False]
    got = reduce_block(x, "f32", "sum", 1, False)
    assert np.isnan(got[:2]).all() and got[2] == np.inf


@pytest.mark.parametrize("t", ["i8", "u8", "i32", "u32", "i64"])
@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min", "and", "or", "xor"])
def test_int_reductions_wrap(kind, t):
    lo, hi = int_range(t)
    x = seeded().integers(max(lo, -(2**40)), min(hi, 2**40), (4, 9), endpoint=True)
    x = x.astype(SCALARS[t].np_dtype)
    ops = {
        "sum": lambda a, b: a + b,
        "prod": lambda a, b: a * b,
        "max": max,
        "min": min,
        "and": lambda a, b: a & b,
        "or": lambda a, b: a | b,
        "xor": lambda a, b: a ^ b,
    }
    for axis in (0, 1):
        got = reduce_block(x, t, kind, axis, False)
        want = []
        for line in np.moveaxis(x, axis, -1).tolist():
            acc = line[0]
            for v in line[1:]:
                acc = wrap(ops[kind](acc, v), t)
            want.append(acc)
        assert got.tolist() == want


def test_reduce_to_a_scalar_and_keep_dims_shapes():
    x = np.array([3, -1, 7, 7, 2], np.int32)
    assert reduce_block(x, "i32", "sum", 0, False).shape == ()
    assert int(reduce_block(x, "i32", "sum", 0, False)) == 18
    assert int(reduce_block(x, "i32", "argmax", 0, False)) == 2
    assert reduce_block(x, "i32", "max", 0, True).tolist() == [7]
    one = np.array([[5.5]], np.float32)
    assert reduce_block(one, "f32", "sum", 1, True).shape == (1, 1)
    assert reduce_block(one, "f32", "min", 0, False).tolist() == [5.5]


def test_i1_reductions():
    x = np.array([[1, 0, 1], [1, 1, 1]], bool)
    assert reduce_block(x, "i1", "and", 1, False).tolist() == [False, True]
    assert reduce_block(x, "i1", "or", 0, False).tolist() == [True, True, True]
    assert reduce_block(x, "i1", "sum", 1, False).tolist() == [False, True]  # modulo 2
    assert reduce_block(x, "i1", "max", 1, False).tolist() == [True, True]
    assert reduce_block(x, "i1", "argmin", 1, False, "i32").tolist() == [1, 0]


@pytest.mark.parametrize("t", ["f16", "bf16"])
def test_half_sum_accumulates_in_f32_and_rounds_once(t):
    big = 2048.0 if t == "f16" else 256.0  # where adding 1 rounds back to big in t
    x = torch.tensor([[big] + [1.0] * 8, [1.0] * 9], dtype=TORCH[t])
    got = torch_out(reduce_block(to_storage(x), t, "sum", 1, False), t)
    want = x.float().sum(1).to(TORCH[t])  # accumulating in t would lose the 1s
    assert_same_floats(got, want)
    assert got.tolist() == [big + 8, 9.0]


def test_bf16_max_and_argmax():
    x = torch.tensor([[0.5, -3.0, 7.0, 7.0], [float("nan"), 1.0, 2.0, 3.0]], dtype=torch.bfloat16)
    got = torch_out(reduce_block(to_storage(x), "bf16", "max", 1, False), "bf16")
    assert_same_floats(got, torch.amax(x, 1))
    assert reduce_block(to_storage(x), "bf16", "argmax", 1, False, "i32").tolist() == [2, 0]


# -- SCAN -----------------------------------------------------------------------------


def scan_block(x: np.ndarray, t: str, kind: str, axis: int, reverse: bool) -> np.ndarray:
    return run_block(
        [(t, x, x.shape)],
        t,
        lambda b, v: b.typed(Op.SCAN, v, kind=kind, axis=axis, reverse=reverse),
    )


def torch_scan(x: torch.Tensor, kind: str, axis: int, reverse: bool) -> torch.Tensor:
    fn = torch.cumsum if kind == "sum" else torch.cumprod
    if reverse:
        return fn(x.flip(axis), axis).flip(axis)
    return fn(x, axis)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["sum", "prod"])
def test_float_scans_match_torch(kind, shape, reverse):
    x = seeded().uniform(0.5, 1.5, shape).astype(np.float32)
    for axis in range(len(shape)):
        got = scan_block(x, "f32", kind, axis, reverse)
        want = torch_scan(torch.from_numpy(x), kind, axis, reverse).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_scan_propagates_nan_and_inf_from_their_position():
    x = np.array([1, 2, np.nan, 4, np.inf], np.float32)
    got = scan_block(x, "f32", "sum", 0, False)
    np.testing.assert_array_equal(got, [1, 3, np.nan, np.nan, np.nan])
    got = scan_block(x, "f32", "sum", 0, True)
    np.testing.assert_array_equal(got, [np.nan, np.nan, np.nan, np.inf, np.inf])


@pytest.mark.parametrize("t", ["i8", "u16", "i32", "u64"])
@pytest.mark.parametrize("kind", ["sum", "prod"])
def test_int_scans_wrap(kind, t):
    x = int_inputs_np(t, 12)[:24].reshape(3, 8)
    for axis, reverse in [(0, False), (1, False), (1, True)]:
        got = scan_block(x, t, kind, axis, reverse)
        lines = np.moveaxis(x, axis, -1).tolist()
        want = []
        for line in lines:
            line = line[::-1] if reverse else line
            acc, out = None, []
            for v in line:
                acc = v if acc is None else wrap(acc + v if kind == "sum" else acc * v, t)
                out.append(acc)
            want.append(out[::-1] if reverse else out)
        assert np.moveaxis(got, axis, -1).tolist() == want


def test_half_cumsum_accumulates_in_f32():
    x = torch.tensor([2048.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float16)
    got = torch_out(scan_block(to_storage(x), "f16", "sum", 0, False), "f16")
    want = torch.cumsum(x.float(), 0).half()
    assert_same_floats(got, want)
    assert got[-1].item() == 2052.0


# -- DOT ------------------------------------------------------------------------------


def dot_block(a: np.ndarray, b: np.ndarray, acc: np.ndarray, t_ab: str, t_acc: str):
    def fn(bb, va, vb, vacc):
        return bb.typed(Op.DOT, va, vb, vacc)

    inputs = [(t_ab, a, a.shape), (t_ab, b, b.shape), (t_acc, acc, acc.shape)]
    return run_block(inputs, t_acc, fn)


DOT_SHAPES = [(1, 1, 1), (1, 5, 1), (3, 7, 2), (4, 1, 6), (16, 32, 8), (5, 13, 9)]


@pytest.mark.parametrize("t", ["f32", "f16", "bf16", "f64"])
@pytest.mark.parametrize("mkn", DOT_SHAPES, ids=str)
def test_float_dot_matches_torch_matmul(mkn, t):
    m, k, n = mkn
    g = torch.Generator().manual_seed(m * 100 + k)
    a, b = torch.randn(m, k, generator=g).to(TORCH[t]), torch.randn(k, n, generator=g).to(TORCH[t])
    t_acc = "f64" if t == "f64" else "f32"
    acc = torch.randn(m, n, generator=g).to(TORCH[t_acc])
    got = dot_block(to_storage(a), to_storage(b), acc.numpy(), t, t_acc)
    want = acc + torch.matmul(a.to(TORCH[t_acc]), b.to(TORCH[t_acc]))  # exact conversions
    tol = 1e-12 if t == "f64" else 1e-5
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=tol, atol=tol)


def test_f32_dot_accumulates_in_k_order():
    """Each product is rounded to f32 and added to the running sum, k ascending."""
    rng = seeded(5)
    a = rng.uniform(-1, 1, (4, 40)).astype(np.float32) * np.float32(2.0) ** rng.integers(
        -20, 20, (4, 40)
    ).astype(np.float32)
    b = rng.uniform(-1, 1, (40, 3)).astype(np.float32)
    acc = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    want = acc.copy()
    for k in range(40):
        want = want + a[:, k : k + 1] * b[k : k + 1, :]
    np.testing.assert_array_equal(dot_block(a, b, acc, "f32", "f32"), want)


def test_bf16_dot_products_are_exact_in_f32():
    # 1 + 2**-7 squared needs 15 bits: exact in f32, and lost if rounded to bf16 first.
    a = torch.full((1, 3), 1 + 2**-7, dtype=torch.bfloat16)
    b = torch.full((3, 1), 1 + 2**-7, dtype=torch.bfloat16)
    got = dot_block(to_storage(a), to_storage(b), np.zeros((1, 1), np.float32), "bf16", "f32")
    assert got[0, 0] == np.float32(3 * (1 + 2**-7) ** 2)


def test_f16_accumulator_rounds_every_step():
    a = np.array([[2048.0, 1.0, 1.0]], np.float16)
    b = np.ones((3, 1), np.float16)
    got = dot_block(a, b, np.zeros((1, 1), np.float16), "f16", "f16")
    assert got[0, 0] == 2048.0  # each +1 is lost against 2048 in f16


@pytest.mark.parametrize("mkn", DOT_SHAPES, ids=str)
def test_int8_dot_accumulates_in_i32(mkn):
    m, k, n = mkn
    rng = seeded(k)
    a, b = (rng.integers(-128, 128, s).astype(np.int8) for s in ((m, k), (k, n)))
    acc = rng.integers(-1000, 1000, (m, n)).astype(np.int32)
    got = dot_block(a, b, acc, "i8", "i32")
    want = acc.astype(np.int64) + a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("t", ["i32", "u32", "i64", "u8"])
def test_int_dot_wraps(t):
    rng = seeded(7)
    lo, hi = int_range(t)
    a, b, acc = (
        rng.integers(lo, hi, s, endpoint=True).astype(SCALARS[t].np_dtype)
        for s in ((3, 6), (6, 4), (3, 4))
    )
    got = dot_block(a, b, acc, t, t)
    want = [
        [
            wrap(int(acc[i, j]) + sum(int(a[i, q]) * int(b[q, j]) for q in range(6)), t)
            for j in range(4)
        ]
        for i in range(3)
    ]
    assert got.tolist() == want


def test_dot_of_a_transposed_block():
    """dot(a, trans(b)) as the matmul tutorial's attention-style kernels use it."""
    rng = seeded(8)
    a, bt = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((3, 5))
    bt = bt.astype(np.float32)

    def fn(bb, va, vb, vacc):
        return bb.typed(Op.DOT, va, bb.typed(Op.PERMUTE, vb, order=(1, 0)), vacc)

    zero = np.zeros((6, 3), np.float32)
    got = run_block(
        [("f32", a, a.shape), ("f32", bt, bt.shape), ("f32", zero, zero.shape)], "f32", fn
    )
    np.testing.assert_allclose(got, a @ bt.T, rtol=1e-5, atol=1e-6)
