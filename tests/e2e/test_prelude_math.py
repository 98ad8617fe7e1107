"""The prelude's own exp and erf, checked in C over the floats themselves.

A small C program built from the kernel prelude runs the vector code (``pypto_expf_n``, and
``pypto_erff``'s 16-lane variant where the host has AVX-512) and the scalar functions
(``pypto_expf``, ``pypto_erff``) over every ``STRIDE``-th float bit pattern -- both signs,
subnormals, infinities and NaNs included. They must agree bit for bit, and stay within
their ulp bounds of libm's double ``exp`` and ``erf`` rounded to float. Set
PYPTO_EXHAUSTIVE=1 to check every float (about a minute per build).

Hosts with AVX-512 build it twice: as is, and with AVX-512 turned off, which is the
erf that machines without it get (a polynomial rather than the table).
"""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import needs_cc

from pypto_jit.codegen.prelude import prelude
from pypto_jit.runtime import compiler

pytestmark = needs_cc

STRIDE = 1 if os.environ.get("PYPTO_EXHAUSTIVE") == "1" else 251
# Worst over every float: exp 1.01 ulp; erf 0.98 with AVX-512 (the table), 1.73 without.
BOUNDS = {"exp": 1.01, "erf": {True: 0.98, False: 1.73}}

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>

static float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void erf_array(float *x, int n) {
  int i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, _ZGVeN16v_pypto_erff(_mm512_loadu_ps(x + i)));
#endif
  for (; i < n; ++i) x[i] = pypto_erff(x[i]);
}

/* |got - want| in ulps of want rounded to float (the spacing above it, at least the
   smallest subnormal's); where want rounds to inf or is NaN, got must be the same. */
static double ulps(float got, double want) {
  float w = (float)want;
  if (isnan(w) || isinf(w)) return (isnan(w) ? isnan(got) : got == w) ? 0.0 : INFINITY;
  if (isnan(got)) return INFINITY;
  float a = fabsf(w);
  double spacing = (double)nextafterf(a, INFINITY) - (double)a;
  return fabs((double)got - want) / spacing;
}

int main(int argc, char **argv) {
  const uint64_t stride = strtoull(argv[1], 0, 10), end = UINT64_C(1) << 32;
  enum { N = 253 }; /* odd: the last, partial vector of the array functions in every run */
  float x[N], e[N], r[N];
  double worst_exp = 0, worst_erf = 0;
  unsigned long long differ = 0;
  for (uint64_t start = 0; start < end; start += stride * N) {
    int n = 0;
    for (; n < N && start + (uint64_t)n * stride < end; ++n)
      x[n] = bits_to_float((uint32_t)(start + (uint64_t)n * stride));
    memcpy(e, x, sizeof x);
    memcpy(r, x, sizeof x);
    pypto_expf_n(e, n);
    erf_array(r, n);
    for (int i = 0; i < n; ++i) {
      float se = pypto_expf(x[i]), sr = pypto_erff(x[i]);
      differ += memcmp(&se, &e[i], 4) != 0 || memcmp(&sr, &r[i], 4) != 0;
      double ue = ulps(e[i], exp((double)x[i])), ur = ulps(r[i], erf((double)x[i]));
      if (!(ue <= worst_exp)) worst_exp = ue;
      if (!(ur <= worst_erf)) worst_erf = ur;
    }
  }
  printf("%.4f %.4f %llu\n", worst_exp, worst_erf, differ);
  return 0;
}
"""


def _build(tmp_path, avx512: bool):
    src = tmp_path / "math_check.c"
    body = "pypto_expf_n pypto_expf pypto_erff"
    src.write_text(prelude(body) + DRIVER)
    exe = tmp_path / "math_check"
    # not vectorized: the scalar calls must stay scalar, the vector code is explicit
    flags = ["-std=gnu11", "-O2", "-fno-tree-vectorize", *compiler.host_isa_flags()]
    flags += ["-fno-math-errno", "-fwrapv"]
    if not avx512:
        flags.append("-mno-avx512f")
    flags += ["-I", str(compiler.include_dir())]
    subprocess.run([*compiler.cc_command(), *flags, str(src), "-o", str(exe), "-lm"], check=True)
    return exe


@pytest.mark.parametrize("avx512", [True, False], ids=["host", "no-avx512"])
def test_exp_and_erf_over_the_floats(tmp_path, avx512):
    if avx512 and not compiler.host_has_avx512():
        pytest.skip("the host has no AVX-512: the other build is its own")
    exe = _build(tmp_path, avx512)
    out = subprocess.run([str(exe), str(STRIDE)], capture_output=True, text=True, check=True)
    worst_exp, worst_erf, differ = out.stdout.split()
    assert int(differ) == 0, "the array functions and the scalar ones disagree"
    assert float(worst_exp) <= BOUNDS["exp"], f"exp: {worst_exp} ulp"
    assert float(worst_erf) <= BOUNDS["erf"][avx512], f"erf: {worst_erf} ulp"
