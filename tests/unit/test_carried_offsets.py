"""The carried_offsets pass: a pointer block a FOR advances by a splat is carried as an
i64 offset. The interpreter must compute the same before and after, including the
pointer after the loop, a step read again inside the body and a step that changes
from one iteration to the next."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pypto_jit.ir import Module, Op
from pypto_jit.ir.parser import parse_module
from pypto_jit.ir.types import i64
from pypto_jit.ir.verifier import verify
from pypto_jit.passes import annotate_addresses, carry_offsets

interpreter = pytest.importorskip("pypto_jit.interpreter")

HEAD = """kernel @k(
  %x: ptr<f32> tensor(shape=[4096], strides=[1]),
  %out: ptr<f32> tensor(shape=[64], strides=[1]),
  %n: i32 scalar,
  %s: i32 scalar
) {
"""

# p = 2048 + j; acc = sum over n steps of x[p] + x[p + s * (k + 1)], p += s * (k + 1);
# then out[j] = acc + x[p_final].
LOOP = """
  %0 = arange {end=16, start=0} : block<i32,[16]>
  %1 = splat %x : block<ptr<f32>,[16]>
  %30 = const {value=2048} : i32
  %31 = splat %30 : block<i32,[16]>
  %32 = add %0, %31 : block<i32,[16]>
  %2 = addptr %1, %32 : block<ptr<f32>,[16]>
  %3 = const {value=0.0} : f32
  %4 = splat %3 : block<f32,[16]>
  %5 = const {value=0} : i32
  %6 = const {value=1} : i32
  %7, %8 = for %5, %n, %6, %4, %2 : block<f32,[16]>, block<ptr<f32>,[16]> {
  ^(%9: i32, %10: block<f32,[16]>, %11: block<ptr<f32>,[16]>):
    %12 = load %11 : block<f32,[16]>
    %13 = add %10, %12 : block<f32,[16]>
    %14 = add %9, %6 : i32
    %15 = mul %14, %s : i32
    %16 = splat %15 : block<i32,[16]>
    %17 = addptr %11, %16 : block<ptr<f32>,[16]>
    %18 = load %17 : block<f32,[16]>
    %19 = add %13, %18 : block<f32,[16]>
    yield %19, %17
  }
  %20 = load %8 : block<f32,[16]>
  %21 = add %7, %20 : block<f32,[16]>
  %22 = splat %out : block<ptr<f32>,[16]>
  %23 = addptr %22, %0 : block<ptr<f32>,[16]>
  store %23, %21
"""


def kernel(body: str) -> Module:
    m = parse_module(HEAD + textwrap.dedent(body).strip() + "\n}\n")
    verify(m)
    return m


def run(m: Module, n: int, s: int) -> np.ndarray:
    x = np.arange(4096, dtype=np.float32) * 0.25
    out = np.full(64, -1.0, dtype=np.float32)
    interpreter.run(m, [x, out, None, None], [0, 4096, 1, 0, 64, 1, n, s], [], (1, 1, 1))
    return out


def carried_types(m: Module) -> list:
    (loop,) = [op for op in m.walk() if op.op is Op.FOR]
    return [v.type for v in loop.results]


def test_stepped_pointer_block_is_carried_as_an_offset():
    m = kernel(LOOP)
    out = carry_offsets(m)
    verify(out)
    assert carried_types(m)[1] != i64 and carried_types(out)[1] == i64
    loads = [op for op in annotate_addresses(out).walk() if op.op is Op.LOAD]
    assert len(loads) == 3 and all(op.attr("contig") is True for op in loads)


@pytest.mark.parametrize("n,s", [(0, 3), (1, 5), (4, 7), (6, -2), (3, 0)], ids=str)
def test_offsets_compute_what_the_carried_block_computes(n, s):
    m = kernel(LOOP)
    got, want = run(carry_offsets(m), n, s), run(m, n, s)
    np.testing.assert_array_equal(got, want)
    # independently: the pointer moves by s * (1 + 2 + ... + k) after k steps
    pos = [2048 + s * k * (k + 1) // 2 for k in range(n + 1)]
    ref = sum((np.arange(16) + p) * 0.25 for p in pos[:-1]) + sum(
        (np.arange(16) + p) * 0.25 for p in pos[1:]
    )
    ref = (ref if n else np.zeros(16)) + (np.arange(16) + pos[-1]) * 0.25
    np.testing.assert_allclose(got[:16], ref, rtol=1e-6)


def test_i64_steps_are_not_widened_again():
    body = LOOP.replace(
        "%16 = splat %15 : block<i32,[16]>",
        "%24 = cast %15 : i64\n    %16 = splat %24 : block<i64,[16]>",
    )
    m = kernel(body)
    out = carry_offsets(m)
    verify(out)
    assert carried_types(out)[1] == i64
    np.testing.assert_array_equal(run(out, 4, 3), run(m, 4, 3))


def test_a_step_that_is_not_uniform_keeps_the_block():
    m = kernel(
        LOOP.replace("%16 = splat %15 : block<i32,[16]>", "%16 = add %0, %0 : block<i32,[16]>")
    )
    assert carry_offsets(m) == m
