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
# (gcc contracts across statements by default in gnu modes).
HEADER = """\
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "pypto_runtime.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
"""

# Per-op loops carry no dependences between iterations (each writes one fresh array or
# one memory access per lane); saying so spares gcc its runtime alias checks.
_IVDEP = """\
#if defined(__clang__)
#define PYPTO_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define PYPTO_IVDEP _Pragma("GCC ivdep")
#else
#define PYPTO_IVDEP
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

_NAME = re.compile(r"\bpypto_[a-z0-9_]+\b")


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
    parts = [HEADER + ("#include <stdio.h>\n" if "printf(" in body else ""), _IVDEP]
    if any(re.search(rf"\b{f}f?\(", body) for f in _MVEC_FUNCS):
        parts.append(_MVEC)
    parts += [_SNIPPETS[name][0] for name in order]
    return "\n".join(parts)
