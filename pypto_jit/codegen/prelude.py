"""The short C prelude emitted at the top of every kernel: only the helpers it uses.

Helpers are ``static inline`` C functions named ``pypto_*``. The renderer writes the
kernel body first, then scans it for helper names and emits those snippets (and the
snippets they depend on) in dependency order, so a kernel that uses no f16 pays
nothing to compile for f16.

The f16/bf16 conversions are branch-free bit manipulations (selects, not ``if``) so
that gcc vectorizes loops containing them; they round to nearest even and agree
bit-for-bit with the F16C instructions on every non-NaN input.
"""

from __future__ import annotations

import re

# Each IR op rounds its result: no contraction of a mul and a later add into an FMA
# (gcc contracts across statements by default in gnu modes). No jump threading: it splits the
# paths of a select whose arm is a constant (a masked load's `other`) inside a loop body into
# control flow that if-conversion then cannot undo, and the loop stays scalar. No loops turned
# into memset/memcpy calls: for the few KB of a block, the call costs more than the loop.
HEADER = """\
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "no-thread-jumps", "no-tree-loop-distribute-patterns")
#endif
#include "pypto_runtime.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
"""

# Per-op loops carry no dependences between iterations (each writes one fresh array or
# one memory access per lane); saying so spares gcc its runtime alias checks. PYPTO_LANES
# marks the loop over the lanes of a reduction's partial results: it must stay a loop (one
# vector) rather than be unrolled into scalars, so that the loop around it vectorizes.
_IVDEP = """\
#if defined(__clang__)
#define PYPTO_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#define PYPTO_LANES _Pragma("clang loop vectorize(assume_safety) unroll(disable)")
#elif defined(__GNUC__)
#define PYPTO_IVDEP _Pragma("GCC ivdep")
#define PYPTO_LANES _Pragma("GCC ivdep") _Pragma("GCC unroll 1")
#else
#define PYPTO_IVDEP
#define PYPTO_LANES
#endif
"""

# glibc's libmvec has SIMD versions of these; declaring them lets gcc vectorize loops
# that call them without -ffast-math. Opt-in: the object then needs -lmvec, which only
# the compiler driver knows it can give (it defines PYPTO_USE_LIBMVEC when it links it).
_MVEC_FUNCS = ("exp", "exp2", "log", "log2", "sin", "cos", "erf", "tanh")
_MVEC = (
    "#if defined(PYPTO_USE_LIBMVEC) && defined(__x86_64__) && defined(__GLIBC__)\n"
    + "".join(
        f'__attribute__((simd("notinbranch"))) float {f}f(float);\n'
        f'__attribute__((simd("notinbranch"))) double {f}(double);\n'
        for f in _MVEC_FUNCS
    )
    + "#endif\n"
)

# name -> (C text, names it depends on)
_SNIPPETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pypto_f2u": (
        "static inline uint32_t pypto_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }\n",
        (),
    ),
    "pypto_u2f": (
        "static inline float pypto_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }\n",
        (),
    ),
    "pypto_d2u": (
        "static inline uint64_t pypto_d2u(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }\n",
        (),
    ),
    "pypto_u2d": (
        "static inline double pypto_u2d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }\n",
        (),
    ),
    # F. Giesen's float_to_half_fast3_rtne, as selects: overflow/NaN, subnormal (the FPU
    # rounds an add of 0.5f), normal (rebias exponent, round the mantissa to even).
    "pypto_f32_to_f16": (
        """\
static inline uint16_t pypto_f32_to_f16(float f) {
  uint32_t x = pypto_f2u(f), sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  uint32_t big = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
  uint32_t sub = pypto_f2u(pypto_u2f(x) + 0.5f) - 0x3f000000u;
  uint32_t norm = (x + 0xc8000fffu + ((x >> 13) & 1u)) >> 13;
  return (uint16_t)((x >= 0x47800000u ? big : x < 0x38800000u ? sub : norm) | sign);
}
""",
        ("pypto_f2u", "pypto_u2f"),
    ),
    "pypto_f16_to_f32": (
        """\
static inline float pypto_f16_to_f32(uint16_t h) {
  uint32_t m = (uint32_t)(h & 0x7fffu) << 13, e = m & 0x0f800000u;
  uint32_t sub = pypto_f2u(pypto_u2f(m + 0x38800000u) - pypto_u2f(0x38800000u));
  uint32_t inf = (m + 0x70000000u) | (m > 0x0f800000u ? 0x00400000u : 0u);
  uint32_t o = e == 0x0f800000u ? inf : e == 0 ? sub : m + 0x38000000u;
  return pypto_u2f(o | (uint32_t)(h & 0x8000u) << 16);
}
""",
        ("pypto_f2u", "pypto_u2f"),
    ),
    "pypto_f32_to_bf16": (
        """\
static inline uint16_t pypto_f32_to_bf16(float f) {
  uint32_t x = pypto_f2u(f);
  uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : r); /* NaN: torch's qNaN */
}
""",
        ("pypto_f2u",),
    ),
    "pypto_bf16_to_f32": (
        "static inline float pypto_bf16_to_f32(uint16_t b) "
        "{ return pypto_u2f((uint32_t)b << 16); }\n",
        ("pypto_u2f",),
    ),
    "pypto_round_f16": (
        "static inline float pypto_round_f16(float f) "
        "{ return pypto_f16_to_f32(pypto_f32_to_f16(f)); }\n",
        ("pypto_f16_to_f32", "pypto_f32_to_f16"),
    ),
    "pypto_round_bf16": (
        "static inline float pypto_round_bf16(float f) "
        "{ return pypto_bf16_to_f32(pypto_f32_to_bf16(f)); }\n",
        ("pypto_bf16_to_f32", "pypto_f32_to_bf16"),
    ),
    # Vector math: branch-free C without libm calls, so that the loops around them vectorize
    # (inline, unlike libmvec, whose calls spill every vector register); f32, and f16/bf16
    # through f32. Coefficients fitted to the functions in float64 (exhaustive tests: ulps).
    "pypto_expf": (
        """\
/* exp(x) = 2^k exp(r): k = round(x / ln2), added to 1.5 * 2^23 so that it lands in the low
   mantissa bits; r = x - k ln2 in two parts (Cody-Waite); exp(r) = 1 + r + r^2 Q(r), Q a
   degree-4 minimax fit. 2^k is applied as two factors, so a subnormal result rounds once; x
   out of range gets inf or 0 at the end. At most 1.01 ulp (checked over every float). */
static inline float pypto_expf(float x) {
  float kf = __builtin_fmaf(x, 0x1.715476p+0f, 0x1.8p23f);
  float k = kf - 0x1.8p23f;
  int32_t ki = (int32_t)(pypto_f2u(kf) - 0x4b400000u);
  float r = __builtin_fmaf(k, -0x1.62e4p-1f, x);
  r = __builtin_fmaf(k, -0x1.7f7d1cp-20f, r);
  float q = __builtin_fmaf(0x1.6a197ap-10f, r, 0x1.123f80p-7f);
  q = __builtin_fmaf(q, r, 0x1.555916p-5f);
  q = __builtin_fmaf(q, r, 0x1.55548ap-3f);
  q = __builtin_fmaf(q, r, 0x1.fffffcp-2f);
  float e = 1.0f + __builtin_fmaf(r * r, q, r);
  int32_t k1 = ki >> 1, k2 = ki - k1;
  e = e * pypto_u2f((uint32_t)(k1 + 127) << 23) * pypto_u2f((uint32_t)(k2 + 127) << 23);
  e = x > 88.8f ? (float)INFINITY : e; /* a NaN x compares false: NaN stays */
  return x < -104.0f ? 0.0f : e;
}
""",
        ("pypto_f2u", "pypto_u2f"),
    ),
    # exp of a whole f32 block, in place (an EXP op's own loop, ``rules.py``): with AVX-512,
    # the same steps as pypto_expf on 16 lanes, but 2^k applied by one VSCALEFPS (exact
    # scaling, one rounding: what the two factors do) and x clamped first (the scaling
    # then overflows to inf and underflows to 0 itself). About 30% fewer instructions than
    # the vectorized pypto_expf; the same bits for every float (checked exhaustively). The
    # last partial vector is a masked load and store.
    "pypto_expf_n": (
        """\
#if defined(__AVX512F__)
static inline __m512 pypto_expf_v16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* a NaN x: the second operand, NaN */
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  __m512 kf = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), _mm512_set1_ps(0x1.8p23f));
  __m512 k = _mm512_sub_ps(kf, _mm512_set1_ps(0x1.8p23f));
  __m512 r = _mm512_fmadd_ps(k, _mm512_set1_ps(-0x1.62e4p-1f), x);
  r = _mm512_fmadd_ps(k, _mm512_set1_ps(-0x1.7f7d1cp-20f), r);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(0x1.6a197ap-10f), r, _mm512_set1_ps(0x1.123f80p-7f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0x1.555916p-5f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0x1.55548ap-3f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0x1.fffffcp-2f));
  __m512 e = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r));
  return _mm512_scalef_ps(e, k);
}
#endif
static inline void pypto_expf_n(float *x, int32_t n) {
  int32_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, pypto_expf_v16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(x + i, m, pypto_expf_v16(_mm512_maskz_loadu_ps(m, x + i)));
    i = n;
  }
#endif
  PYPTO_IVDEP
  for (; i < n; ++i) x[i] = pypto_expf(x[i]);
}
""",
        ("pypto_expf",),
    ),
    # erf in f32. With AVX-512: a table of 32 degree-4 polynomials, each lane picking its
    # coefficients with a two-register permute (VPERMT2PS) -- about half the FMAs of a
    # polynomial over the whole range, and those bound an erf loop. gcc cannot vectorize a
    # table lookup into a permute, so pypto_erff is declared a SIMD function and its vector
    # variants are written out (the x86-64 vector ABI names; narrower ones widen to 16
    # lanes): a loop gcc vectorizes calls the 16-lane one, once per vector, and stays one
    # loop with its loads and stores. Scalar calls (sim mode, loop tails) get the same
    # arithmetic one lane at a time, so every lane has the same bits either way. At most
    # 0.98 ulp (every float; coefficients from tests/tools/fit_erf_table.py). Without
    # AVX-512 the table would be gathers: a piecewise polynomial stands in (1.73 ulp).
    "pypto_erff": (
        """\
#if defined(__AVX512F__)
/* Interval k = round(8|x|): |x| + 2^20 rounds |x| to a multiple of 1/8 and holds k in its
   low mantissa bits. Row j holds the d^j coefficients, d = |x| - k/8 (row 0: erf(k/8)).
   Intervals 0-2 (|x| <= 5/16) share |x| + |x| q(x^2) instead, q in rows 1-4: a result
   relative to |x|, with no cancellation near 0. Beyond 3.92, +-1. */
static const float pypto_erf_tab[5][32] __attribute__((aligned(64))) = {
  {0.0f, 0.0f, 0.0f, 0x1.9dd0d2p-2f, 0x1.0a7ef6p-1f,
   0x1.3f196ep-1f, 0x1.6c1c98p-1f, 0x1.91724ap-1f, 0x1.af767ap-1f, 0x1.c6dad2p-1f,
   0x1.d8865ep-1f, 0x1.e5768cp-1f, 0x1.eea556p-1f, 0x1.f4f694p-1f, 0x1.f92d08p-1f,
   0x1.fbe61ep-1f, 0x1.fd9ae2p-1f, 0x1.fea422p-1f, 0x1.ff4048p-1f, 0x1.ff996p-1f,
   0x1.ffcaa8p-1f, 0x1.ffe514p-1f, 0x1.fff2dp-1f, 0x1.fff9bap-1f, 0x1.fffd1ap-1f,
   0x1.fffeb4p-1f, 0x1.ffff7p-1f, 0x1.ffffc4p-1f, 0x1.ffffe8p-1f, 0x1.fffff6p-1f,
   0x1.fffffcp-1f, 0x1.fffffep-1f},
  {0x1.06eba8p-3f, 0x1.06eba8p-3f, 0x1.06eba8p-3f, 0x1.f5f0cep-1f, 0x1.c1efcap-1f,
   0x1.86e96ap-1f, 0x1.492e42p-1f, 0x1.0cab62p-1f, 0x1.a911fp-2f, 0x1.45e99cp-2f,
   0x1.e4653p-3f, 0x1.5ce596p-3f, 0x1.e72372p-4f, 0x1.499d48p-4f, 0x1.b0553p-5f,
   0x1.12ceb2p-5f, 0x1.529b9ep-6f, 0x1.94624cp-7f, 0x1.d41436p-8f, 0x1.069184p-8f,
   0x1.1d8308p-9f, 0x1.2ce882p-10f, 0x1.3360bcp-11f, 0x1.305374p-12f, 0x1.240822p-13f,
   0x1.0f9dfap-14f, 0x1.e9b318p-16f, 0x1.abdb7cp-17f, 0x1.6a544cp-18f, 0x1.296692p-19f,
   0x1.d92de6p-21f, 0x1.6d0b48p-22f},
  {-0x1.81270ep-2f, -0x1.81270ep-2f, -0x1.81270ep-2f, -0x1.7870a2p-2f, -0x1.c1f22cp-2f,
   -0x1.e8a5e4p-2f, -0x1.edcda8p-2f, -0x1.d63442p-2f, -0x1.a90d96p-2f, -0x1.6ea114p-2f,
   -0x1.2ec3e8p-2f, -0x1.dfb6cep-3f, -0x1.6d6b7ap-3f, -0x1.0bd8e4p-3f, -0x1.7a5d5p-4f,
   -0x1.01678ep-4f, -0x1.52d2ep-5f, -0x1.ae143ap-6f, -0x1.07dbb4p-6f, -0x1.35fee2p-7f,
   -0x1.6133bp-8f, -0x1.85728cp-9f, -0x1.aacc5ep-10f, -0x1.ae8facp-11f, -0x1.853e8p-12f,
   -0x1.b0e0a6p-13f, -0x1.e66f72p-14f, -0x1.3c7168p-14f, -0x1.b5699ap-15f, -0x1.00be0ep-18f,
   0x1.b2f46ep-19f, 0x1.19f42cp-15f},
  {0x1.cdf8dp-4f, 0x1.cdf8dp-4f, 0x1.cdf8dp-4f, -0x1.e0c1dp-3f, -0x1.2bf012p-3f,
   -0x1.c8c956p-5f, 0x1.b4e5dp-6f, 0x1.7be0ccp-4f, 0x1.1af1e4p-3f, 0x1.4c567p-3f,
   0x1.56d5d2p-3f, 0x1.4344aep-3f, 0x1.1c1a4ap-3f, 0x1.d65dc4p-4f, 0x1.715df4p-4f,
   0x1.1456a2p-4f, 0x1.8b5ea6p-5f, 0x1.0edbfap-5f, 0x1.647e5p-6f, 0x1.c2d0e4p-7f,
   0x1.1246d2p-7f, 0x1.416ac4p-8f, 0x1.6af788p-9f, 0x1.8b5448p-10f, 0x1.9fb06cp-11f,
   0x1.a565d8p-12f, 0x1.9d3a48p-13f, 0x1.874fbap-14f, 0x1.65ccb8p-15f, 0x1.3bfeaap-16f,
   0x1.0e19fp-17f, 0x1.c375b6p-19f},
  {-0x1.a8c68p-6f, -0x1.a8c68p-6f, -0x1.a8c68p-6f, 0x1.4e414ep-3f, 0x1.7a20cap-3f,
   0x1.6c8418p-3f, 0x1.42573cp-3f, 0x1.e81f16p-4f, 0x1.0dab3cp-4f, 0x1.7ff274p-6f,
   -0x1.2ebdb2p-9f, -0x1.08f18cp-5f, -0x1.2cd466p-5f, -0x1.72f1d2p-5f, -0x1.680174p-5f,
   -0x1.cbb4eep-5f, -0x1.d0e86ap-6f, -0x1.4a37bep-6f, -0x1.5555fap-7f, -0x1.b61df8p-6f,
   -0x1.785f2ap-6f, -0x1.07dc62p-6f, 0x1.8659b6p-11f, -0x1.563de6p-8f, -0x1.a855fep-7f,
   0x1.e63b94p-12f, 0x1.4defp-8f, 0x1.dfc6e8p-8f, 0x1.f148e2p-8f, -0x1.19f1eep-10f,
   -0x1.8ed136p-10f, -0x1.2526acp-7f},
};
/* The symbols gcc calls: pypto_erff for one lane, the vector ABI's names for 4, 8 and 16. */
#define PYPTO_LINKED __attribute__((visibility("hidden"), used))
__attribute__((simd("notinbranch"), const, nothrow)) float pypto_erff(float);
PYPTO_LINKED float pypto_erff_1(float x) __asm__("pypto_erff");
PYPTO_LINKED float pypto_erff_1(float x) {
  float a = __builtin_fabsf(x);
  float t = a + 0x1p20f;
  float d = a - (t - 0x1p20f);
  uint32_t k = pypto_f2u(t) & 31u;
  int small = a <= 0x1.4p-2f;
  float v = small ? a * a : d;
  float p = __builtin_fmaf(pypto_erf_tab[4][k], v, pypto_erf_tab[3][k]);
  p = __builtin_fmaf(p, v, pypto_erf_tab[2][k]);
  p = __builtin_fmaf(p, v, pypto_erf_tab[1][k]);
  float r = __builtin_fmaf(p, small ? a : d, small ? a : pypto_erf_tab[0][k]);
  return __builtin_copysignf(a > 3.92f ? 1.0f : r, x); /* a NaN x: r is NaN */
}
static inline __m512 pypto_erff_v16(__m512 x) {
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  __m512 a = _mm512_and_ps(x, magnitude);
  __m512 t = _mm512_add_ps(a, _mm512_set1_ps(0x1p20f));
  __m512 d = _mm512_sub_ps(a, _mm512_sub_ps(t, _mm512_set1_ps(0x1p20f)));
  __m512i k = _mm512_castps_si512(t); /* the permute reads the low 5 bits */
#define PYPTO_ERF_ROW(j) \\
  _mm512_permutex2var_ps(_mm512_load_ps(pypto_erf_tab[j]), k, _mm512_load_ps(pypto_erf_tab[j] + 16))
  __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0x1.4p-2f), _CMP_LE_OQ);
  __m512 v = _mm512_mask_mul_ps(d, small, a, a);
  __m512 p = _mm512_fmadd_ps(PYPTO_ERF_ROW(4), v, PYPTO_ERF_ROW(3));
  p = _mm512_fmadd_ps(p, v, PYPTO_ERF_ROW(2));
  p = _mm512_fmadd_ps(p, v, PYPTO_ERF_ROW(1));
  __m512 r = _mm512_fmadd_ps(p, _mm512_mask_blend_ps(small, d, a),
                             _mm512_mask_blend_ps(small, PYPTO_ERF_ROW(0), a));
#undef PYPTO_ERF_ROW
  __mmask16 big = _mm512_cmp_ps_mask(a, _mm512_set1_ps(3.92f), _CMP_GT_OQ);
  r = _mm512_mask_blend_ps(big, r, _mm512_set1_ps(1.0f));
  return _mm512_or_ps(r, _mm512_andnot_ps(magnitude, x));
}
PYPTO_LINKED __m512 _ZGVeN16v_pypto_erff(__m512 x) { return pypto_erff_v16(x); }
PYPTO_LINKED __m256 _ZGVdN8v_pypto_erff(__m256 x) {
  return _mm512_castps512_ps256(pypto_erff_v16(_mm512_castps256_ps512(x)));
}
PYPTO_LINKED __m256 _ZGVcN8v_pypto_erff(__m256 x) { return _ZGVdN8v_pypto_erff(x); }
PYPTO_LINKED __m128 _ZGVbN4v_pypto_erff(__m128 x) {
  return _mm512_castps512_ps128(pypto_erff_v16(_mm512_castps128_ps512(x)));
}
#else
/* erf(x) = x + x P(x^2) below 1.25 (P: degree 7); R(|x| - 2.585) up to 3.92 (R: degree 12,
   minimax for erf itself, whose absolute error is what counts there); +-1 beyond. Both are
   computed (a vector loop would anyway) and each lane picks one. */
static inline float pypto_erff(float x) {
  float a = __builtin_fabsf(x);
  float u = x * x;
  float p = __builtin_fmaf(-0x1.fc3b9cp-18f, u, 0x1.b3f51ep-14f);
  p = __builtin_fmaf(p, u, -0x1.b53c44p-11f);
  p = __builtin_fmaf(p, u, 0x1.5560dap-8f);
  p = __builtin_fmaf(p, u, -0x1.b8140ep-6f);
  p = __builtin_fmaf(p, u, 0x1.ce2de8p-4f);
  p = __builtin_fmaf(p, u, -0x1.81274p-2f);
  p = __builtin_fmaf(p, u, 0x1.06eba8p-3f);
  float small = __builtin_fmaf(x, p, x);
  float t = a - 2.585f;
  float q = __builtin_fmaf(-0x1.1d8b8ep-17f, t, 0x1.743252p-17f);
  q = __builtin_fmaf(q, t, 0x1.36848ep-14f);
  q = __builtin_fmaf(q, t, -0x1.c551b8p-13f);
  q = __builtin_fmaf(q, t, 0x1.a89176p-14f);
  q = __builtin_fmaf(q, t, 0x1.6b0df2p-11f);
  q = __builtin_fmaf(q, t, -0x1.3fc7f8p-9f);
  q = __builtin_fmaf(q, t, 0x1.383b9p-8f);
  q = __builtin_fmaf(q, t, -0x1.9da514p-8f);
  q = __builtin_fmaf(q, t, 0x1.7e1a08p-8f);
  q = __builtin_fmaf(q, t, -0x1.df1102p-9f);
  q = __builtin_fmaf(q, t, 0x1.72942ep-10f);
  q = __builtin_fmaf(q, t, 0x1.ffde64p-1f);
  float big = __builtin_copysignf(a > 3.92f ? 1.0f : q, x); /* a NaN x compares false */
  return a < 1.25f ? small : big;
}
#endif
""",
        ("pypto_f2u",),
    ),
    # Non-temporal stores of 256 bytes to a 64-byte aligned address (``passes.streaming``),
    # and the fence that makes them visible before the program returns.
    "pypto_stream256": (
        """\
static inline void pypto_stream256(void *dst, const void *src) {
#if defined(__AVX512F__)
  for (int k = 0; k < 4; ++k)
    _mm512_stream_si512((void *)((char *)dst + 64 * k),
                        _mm512_load_si512((const char *)src + 64 * k));
#elif defined(__AVX__)
  for (int k = 0; k < 8; ++k)
    _mm256_stream_si256((__m256i *)((char *)dst + 32 * k),
                        _mm256_load_si256((const __m256i *)((const char *)src + 32 * k)));
#elif defined(__SSE2__)
  for (int k = 0; k < 16; ++k)
    _mm_stream_si128((__m128i *)((char *)dst + 16 * k),
                     _mm_load_si128((const __m128i *)((const char *)src + 16 * k)));
#else
  memcpy(dst, src, 256);
#endif
}
""",
        (),
    ),
    # Write-prefetch (PREFETCHW) of the lines of [p, p + bytes) before a store loop writes them.
    "pypto_prefetchw": (
        """\
static inline void pypto_prefetchw(const void *p, int64_t bytes) {
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + (uintptr_t)bytes;
  for (; a < end; a += 64) __builtin_prefetch((const void *)a, 1, 3);
}
""",
        (),
    ),
    # How many leading lanes of a prefix mask ``a0 + j < n`` (j < lanes) are true: those below
    # n - a0, where a0 + j < n cannot have wrapped around int32 (lanes past them that wrap
    # and compare true are left to the masked loop that follows).
    "pypto_prefix": (
        """\
static inline int32_t pypto_prefix(int32_t a0, int32_t n, int32_t lanes) {
  int64_t k = (int64_t)n - a0;
  return k < 0 ? 0 : k > lanes ? lanes : (int32_t)k;
}
""",
        (),
    ),
    # Sim mode: the extent [lo, lo + span) of a tensor from its shape and strides.
    "pypto_span": (
        """\
static int64_t pypto_span(const int64_t *shape, const int64_t *strides, int rank, int64_t *lo) {
  int64_t l = 0, h = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] <= 0) { *lo = 0; return 0; }
    int64_t e = (shape[d] - 1) * strides[d];
    if (e < 0) l += e; else h += e;
  }
  *lo = l;
  return h - l + 1;
}
""",
        (),
    ),
    # Fills the error record; a failing program returns its result (1).
    "pypto_fail": (
        """\
static int pypto_fail(const pypto_ctx *ctx, int32_t kind, int32_t line, int32_t col,
                      int32_t param, int64_t pid0, int64_t pid1, int64_t pid2, int64_t index,
                      int64_t extent, const char *what) {
  pypto_error *e = ctx->err;
  if (!e) return 1;
  e->kind = kind; e->line = line; e->col = col; e->param = param;
  e->pid[0] = pid0; e->pid[1] = pid1; e->pid[2] = pid2;
  e->index = index; e->extent = extent;
  size_t n = strlen(what);
  if (n >= sizeof e->message) n = sizeof e->message - 1;
  memcpy(e->message, what, n);
  e->message[n] = 0;
  return 1;
}
""",
        (),
    ),
}

# Vectors of gcc's vector extension, for the partial results of float reductions:
# ``pypto_v_<t>`` (64 bytes) and its halves ``pypto_v<bytes>_<t>``, with ``pypto_vi...`` the
# integer vectors their comparisons give.
for _t, _c, _i in (("f32", "float", "int32_t"), ("f64", "double", "int64_t")):
    for _bytes in (64, 32, 16, 8):
        _size = "" if _bytes == 64 else str(_bytes)
        for _kind, _elem in (("v", _c), ("vi", _i)):
            _name = f"pypto_{_kind}{_size}_{_t}"
            _SNIPPETS[_name] = (
                f"typedef {_elem} {_name} __attribute__((vector_size({_bytes})));\n",
                (),
            )

# Chunks of 16 f32 lanes in vector form (``vector.py``): unaligned loads and stores, splats.
# Only the AVX-512 build uses them (elsewhere gcc would warn that 64-byte vectors change the
# calling convention).
_SPLAT16 = ", ".join(["x"] * 16)
_VECTOR_HELPERS = {
    "pypto_vload_f32": "static inline pypto_v_f32 pypto_vload_f32(const float *p) {\n"
    "  pypto_v_f32 v;\n  memcpy(&v, p, 64);\n  return v;\n}\n",
    "pypto_vstore_f32": "static inline void pypto_vstore_f32(float *p, pypto_v_f32 v) {\n"
    "  memcpy(p, &v, 64);\n}\n",
    "pypto_vsplat_f32": "static inline pypto_v_f32 pypto_vsplat_f32(float x) {\n"
    f"  return (pypto_v_f32){{{_SPLAT16}}};\n}}\n",
    # a non-temporal store of a whole 64-byte line (p aligned to it)
    "pypto_vstream_f32": "static inline void pypto_vstream_f32(float *p, pypto_v_f32 v) {\n"
    "  _mm512_stream_ps(p, (__m512)v);\n}\n",
}
for _name, _text in _VECTOR_HELPERS.items():
    _SNIPPETS[_name] = (f"#if defined(__AVX512F__)\n{_text}#endif\n", ("pypto_v_f32",))
_SNIPPETS["pypto_erff_v16"] = ("", ("pypto_erff",))  # defined with the scalar erf

_NAME = re.compile(r"\bpypto_[a-z0-9_]+\b")
# Snippets written with SIMD intrinsics (under #if of their ISA): they need immintrin.h.
_INTRINSIC_USERS = ("pypto_stream256", "pypto_vstream_f32", "pypto_expf_n", "pypto_erff")


def register_snippet(name: str, text: str, deps: tuple[str, ...] = ()) -> None:
    """Add a helper that rule modules emit by name (``gemm.py``: the dot micro-kernels)."""
    _SNIPPETS[name] = (text, deps)


def prelude(body: str) -> str:
    """The header, macros and the helper snippets that ``body`` (kernel C text) uses."""
    order: list[str] = []

    def need(name: str) -> None:
        if name in order:
            return
        for dep in _SNIPPETS[name][1]:
            need(dep)
        order.append(name)

    for name in sorted(set(_NAME.findall(body)) & _SNIPPETS.keys()):
        need(name)
    header = HEADER + ("#include <stdio.h>\n" if "printf(" in body else "")
    if any(name in body for name in _INTRINSIC_USERS):
        header += "#if defined(__SSE2__)\n#include <immintrin.h>\n#endif\n"
    parts = [header, _IVDEP]
    if any(re.search(rf"\b{f}f?\(", body) for f in _MVEC_FUNCS):
        parts.append(_MVEC)
    parts += [_SNIPPETS[name][0] for name in order]
    return "\n".join(parts)
