"""``x % d`` in addresses: the ``nowrap`` versioning pass and the MOD/IDIV facts.

The pass splits the code after a MOD whose rows would be unit-stride if they did not
wrap into a checked fast branch (contiguous accesses) and the original gather branch;
the interpreter must compute the same on both sides of every edge: rows that wrap,
rows that do not, negative dividends, zero and negative divisors.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pypto_jit.ir import Module, Op
from pypto_jit.ir.parser import parse_module
from pypto_jit.ir.verifier import verify
from pypto_jit.passes import annotate_addresses, version_nowrap
from pypto_jit.passes.address import analyze

interpreter = pytest.importorskip("pypto_jit.interpreter")

HEAD = """kernel @k(
  %x: ptr<f32> tensor(shape=[1024], strides=[1]),
  %out: ptr<f32> tensor(shape=[1024], strides=[1]),
  %n: i32 scalar,
  %s: i32 scalar
) {
"""

# out[pid * 64 + j] = x[(pid * 64 + s + j) % n + 512]: the offsets of one program's row.
ROW = """
  %0 = program_id {axis=0} : i32
  %1 = const {value=64} : i32
  %2 = mul %0, %1 : i32
  %3 = add %2, %s : i32
  %4 = splat %3 : block<i32,[64]>
  %5 = arange {end=64, start=0} : block<i32,[64]>
  %6 = add %4, %5 : block<i32,[64]>
  %7 = splat %n : block<i32,[64]>
  %8 = mod %6, %7 : block<i32,[64]>
  %9 = const {value=512} : i32
  %10 = splat %9 : block<i32,[64]>
  %11 = add %8, %10 : block<i32,[64]>
  %12 = splat %x : block<ptr<f32>,[64]>
  %13 = addptr %12, %11 : block<ptr<f32>,[64]>
  %14 = load %13 : block<f32,[64]>
  %15 = splat %2 : block<i32,[64]>
  %16 = add %15, %5 : block<i32,[64]>
  %17 = splat %out : block<ptr<f32>,[64]>
  %18 = addptr %17, %16 : block<ptr<f32>,[64]>
  store %18, %14
"""

# The same as a 4 x 16 tile whose rows start 16 * (pid * 4 + r) + s, in a loop of 2 steps
# that yields the loaded tile (the split sits inside the loop body, with a result).
TILE = """
  %0 = program_id {axis=0} : i32
  %1 = const {value=64} : i32
  %2 = mul %0, %1 : i32
  %3 = arange {end=4, start=0} : block<i32,[4]>
  %4 = const {value=16} : i32
  %5 = splat %4 : block<i32,[4]>
  %6 = mul %3, %5 : block<i32,[4]>
  %7 = expand_dims %6 {axis=1} : block<i32,[4,1]>
  %8 = broadcast %7 : block<i32,[4,16]>
  %9 = arange {end=16, start=0} : block<i32,[16]>
  %10 = expand_dims %9 {axis=0} : block<i32,[1,16]>
  %11 = broadcast %10 : block<i32,[4,16]>
  %12 = add %8, %11 : block<i32,[4,16]>
  %13 = add %2, %s : i32
  %14 = splat %13 : block<i32,[4,16]>
  %15 = add %12, %14 : block<i32,[4,16]>
  %16 = splat %n : block<i32,[4,16]>
  %17 = const {value=512} : i32
  %18 = splat %17 : block<i32,[4,16]>
  %19 = splat %x : block<ptr<f32>,[4,16]>
  %20 = const {value=0.0} : f32
  %21 = splat %20 : block<f32,[4,16]>
  %22 = const {value=0} : i32
  %23 = const {value=2} : i32
  %24 = const {value=1} : i32
  %25 = for %22, %23, %24, %21 : block<f32,[4,16]> {
  ^(%26: i32, %27: block<f32,[4,16]>):
    %28 = mod %15, %16 : block<i32,[4,16]>
    %29 = add %28, %18 : block<i32,[4,16]>
    %30 = addptr %19, %29 : block<ptr<f32>,[4,16]>
    %31 = load %30 : block<f32,[4,16]>
    %32 = add %27, %31 : block<f32,[4,16]>
    yield %32
  }
  %33 = splat %2 : block<i32,[4,16]>
  %34 = add %33, %12 : block<i32,[4,16]>
  %35 = splat %out : block<ptr<f32>,[4,16]>
  %36 = addptr %35, %34 : block<ptr<f32>,[4,16]>
  store %36, %25
"""


def kernel(body: str) -> Module:
    m = parse_module(HEAD + textwrap.dedent(body).strip() + "\n}\n")
    verify(m)
    return m


def loads(m: Module) -> list:
    return [op for op in annotate_addresses(m).walk() if op.op is Op.LOAD]


def run(m: Module, n: int, s: int, programs: int = 8) -> np.ndarray:
    x = np.arange(1024, dtype=np.float32) * 0.5 - 100.0
    out = np.full(1024, -1.0, dtype=np.float32)
    slots = [0, 1024, 1]  # per tensor: base, shape, strides
    interpreter.run(m, [x, out, None, None], [*slots, *slots, n, s], [], (programs, 1, 1))
    return out


@pytest.mark.parametrize("body", [ROW, TILE], ids=["row", "tile"])
def test_versioned_branch_reads_rows_the_original_gathers(body):
    m = kernel(body)
    (before,) = loads(m)
    assert before.attr("contig") is None  # x % n may wrap: a gather
    out = version_nowrap(m)
    verify(out)
    fast, slow = loads(out)
    assert fast.attr("contig") is True and slow.attr("contig") is None
    assert sum(op.op is Op.IF for op in out.walk()) == 1


# n: a multiple of the rows (no row wraps), not one (some wrap), smaller than a row
# (every row wraps), zero (x % 0 is 0), negative; s: aligned, unaligned, negative.
EDGES = [(512, 0), (512, 7), (200, 0), (200, 13), (40, 3), (0, 0), (-96, 5), (512, -150)]


@pytest.mark.parametrize("body", [ROW, TILE], ids=["row", "tile"])
@pytest.mark.parametrize("n,s", EDGES, ids=str)
def test_versioning_computes_what_the_original_computes(body, n, s):
    m = kernel(body)
    got, want = run(version_nowrap(m), n, s), run(m, n, s)
    np.testing.assert_array_equal(got, want)
    assert (want != -1.0).any()


def test_reference_semantics_of_the_row_kernel():
    """Independent of the pass: C remainder (sign of the dividend), x % 0 == 0."""
    for n, s in EDGES:
        offs = np.arange(8 * 64) + s
        rem = np.zeros_like(offs) if n == 0 else np.fmod(offs, n)
        want = (rem + 512) * 0.5 - 100.0
        np.testing.assert_array_equal(run(version_nowrap(kernel(ROW)), n, s)[:512], want)


def test_mod_that_no_access_needs_is_left_alone():
    """Offsets along a non-last axis (rows of a tile): their contiguity does not matter."""
    body = ROW.replace("%11 = add %8, %10", "%11 = mul %8, %10")  # scaled: never unit-stride
    m = kernel(body)
    assert version_nowrap(m) is m


def test_mod_by_a_non_uniform_divisor_is_left_alone():
    body = ROW.replace("%7 = splat %n : block<i32,[64]>", "%7 = add %4, %5 : block<i32,[64]>")
    m = kernel(body)
    assert version_nowrap(m) is m


def test_mod_and_idiv_keep_constancy():
    m = kernel(ROW.replace("%8 = mod %6, %7", "%8 = mod %4, %7"))
    info = analyze(m)
    (mod,) = [op for op in m.walk() if op.op is Op.MOD]
    assert info[mod.result].const == 64 and info[mod.result].contig == 1
