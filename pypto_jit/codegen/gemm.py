"""The C rule for DOT: a register-blocked GEMM micro-kernel family for float dots.

``acc + a @ b`` with f32 accumulation (f32, f16 or bf16 inputs: their register type is
float already) or f64 calls ``pypto_gemm_<t>``, a C helper emitted once per kernel.
It holds an ``MR x 2W`` tile of the result in vector registers (``W`` lanes per vector)
while it walks K, reading a row of B (two vectors) and broadcasting one element of A
per row and step: 8x32 f32 (8x16 f64) with AVX-512, 6x16 with AVX/AVX2, 4x8 with
16-byte vectors (SSE2, NEON; scalar code on a target without SIMD). The width is picked
by the preprocessor from the flags the kernel is built with, so the rendered C does not
depend on the host. Rows past the last full micro-tile run in pieces of 4, 2 and 1
rows. A and B are read in place from their row-major block arrays (packing both measured
slower at block sizes that fit in L2); panels of B are copied to contiguous scratch only
where that pays: the ragged last panel (zero-padded, with its columns of the result) and,
when B's rows are 2 KiB apart or more, every panel (else its rows share few cache sets).

Every element is ``acc``, then ``fma(a[i, k], b[k, j], .)`` for k ascending, with an
explicit fused multiply-add (a vector builtin, or ``fma()`` per lane): the same bits on
every ISA and tile shape, and on cpu and sim. Against the IR's order (a product
rounded, then a sum) that differs by the products' rounding only.

The accumulator is updated in place when the dot is its last use and the storage is
its own (the loop-carried block of a K loop): no copy per step. Other dots (integer,
f16/bf16 accumulators, mixed types) keep the plain loop nest, which is exact.
"""

from __future__ import annotations

import weakref
from string import Template

from ..ir.nodes import Block, Module, Operation, Value
from ..ir.ops import Op
from ..ir.types import BlockType, scalar_of
from . import exprs
from .ctype import reg
from .emitter import Emitter, rule
from .prelude import register_snippet

# (operand type, accumulator type) -> C element type of the fast path.
_FAST = {("f32", "f32"): "f32", ("f16", "f32"): "f32", ("bf16", "f32"): "f32"}
_FAST[("f64", "f64")] = "f64"
# Widest panel of any variant, in bytes (two 64-byte vectors): a result whose width is a
# multiple of it has no ragged panel on any ISA. The helper also repacks full panels of
# B when its rows are 2 KiB apart or more (cache-set conflicts) and M exceeds a tile.
_PANEL_BYTES = 128
_REPACK_ROW_BYTES, _MAX_MR = 2048, 8
_ELEM_BYTES = {"f32": 4, "f64": 8}

_COMMON = """\
#if defined(__AVX512F__)
#define PYPTO_GEMM_VB 64 /* bytes per vector */
#define PYPTO_GEMM_MR 8  /* rows per micro-tile */
#define PYPTO_GEMM_FULL(prefix, nv) prefix##8x##nv
#elif defined(__AVX__)
#define PYPTO_GEMM_VB 32
#define PYPTO_GEMM_MR 6
#define PYPTO_GEMM_FULL(prefix, nv) prefix##6x##nv
#else
#define PYPTO_GEMM_VB 16
#define PYPTO_GEMM_MR 4
#define PYPTO_GEMM_FULL(prefix, nv) prefix##4x##nv
#endif
/* An exact fused multiply-add of whole vectors, where the compiler has one to name (gcc
   and clang share the x86 builtins behind _mm512_fmadd_ps / _mm256_fmadd_ps); else
   pypto_vfma_* goes lane by lane through fma(). Never left to contraction: gcc declines
   to contract some FMA chains (-mtune=znver*) and does not contract at -O1 (sim). */
#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_fma)
#define PYPTO_FMA_f32(a, b, c) __builtin_elementwise_fma(a, b, c)
#define PYPTO_FMA_f64(a, b, c) __builtin_elementwise_fma(a, b, c)
#elif defined(__AVX512F__) && __has_builtin(__builtin_ia32_vfmaddps512_mask)
#define PYPTO_FMA_f32(a, b, c) __builtin_ia32_vfmaddps512_mask(a, b, c, (unsigned short)-1, 4)
#define PYPTO_FMA_f64(a, b, c) __builtin_ia32_vfmaddpd512_mask(a, b, c, (unsigned char)-1, 4)
#elif defined(__AVX__) && defined(__FMA__) && __has_builtin(__builtin_ia32_vfmaddps256)
#define PYPTO_FMA_f32(a, b, c) __builtin_ia32_vfmaddps256(a, b, c)
#define PYPTO_FMA_f64(a, b, c) __builtin_ia32_vfmaddpd256(a, b, c)
#endif
#endif
"""
_ROWS = (8, 6, 4, 2, 1)  # micro-tile heights of every variant and of the row tails
_FN = "static inline __attribute__((always_inline)) void"

# The drivers (inlined where they are called, so that the shapes fold and only the
# micro-kernels a shape needs are compiled). $S: f32/f64, $T: C type, $W: lanes macro.
_DRIVER = Template(
    """\
typedef $T pypto_${S}_v __attribute__((vector_size(PYPTO_GEMM_VB)));
typedef $T pypto_${S}_vu __attribute__((vector_size(PYPTO_GEMM_VB), aligned(sizeof($T))));
#define $W (PYPTO_GEMM_VB / (int)sizeof($T))
static inline __attribute__((always_inline)) pypto_${S}_v pypto_vfma_${S}(
    pypto_${S}_v a, pypto_${S}_v b, pypto_${S}_v c) {
#ifdef PYPTO_FMA_${S}
  return PYPTO_FMA_${S}(a, b, c);
#else
  for (int l = 0; l < $W; ++l) c[l] = $FMA(a[l], b[l], c[l]);
  return c;
#endif
}
$KERNELS
#define PYPTO_UK_${S}(mr, nv) \\
  pypto_uk_${S}_##mr##x##nv(K, a + i * lda, lda, b, ldb, c + i * ldc, ldc)
/* All M rows of a panel of nv vectors: full micro-tiles, then 4, 2 and 1 rows. */
$FN pypto_rows_${S}(const int nv, int64_t M, int64_t K, const $T *a, int64_t lda,
                    const $T *b, int64_t ldb, $T *c, int64_t ldc) {
  const int64_t full = M / PYPTO_GEMM_MR * PYPTO_GEMM_MR;
  int64_t i = 0;
  for (; i < full; i += PYPTO_GEMM_MR) {
    if (nv == 2) PYPTO_GEMM_FULL(pypto_uk_${S}_, 2)(K, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    else PYPTO_GEMM_FULL(pypto_uk_${S}_, 1)(K, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
  }
  int64_t rest = M - full;
  if (PYPTO_GEMM_MR > 4 && rest >= 4) {
    if (nv == 2) PYPTO_UK_${S}(4, 2); else PYPTO_UK_${S}(4, 1);
    i += 4, rest -= 4;
  }
  if (rest >= 2) {
    if (nv == 2) PYPTO_UK_${S}(2, 2); else PYPTO_UK_${S}(2, 1);
    i += 2, rest -= 2;
  }
  if (rest >= 1) {
    if (nv == 2) PYPTO_UK_${S}(1, 2); else PYPTO_UK_${S}(1, 1);
  }
}
/* The last nr < 2W columns, on zero-padded copies of them in ``pack``. */
$FN pypto_tail_${S}(int64_t M, int64_t nr, int64_t K, const $T *a, int64_t lda,
                    const $T *b, int64_t ldb, $T *c, int64_t ldc, $T *pack) {
  const int64_t w = nr > $W ? 2 * $W : $W;
  $T *pb = pack, *pc = pack + K * w;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t x = 0; x < w; ++x) pb[k * w + x] = x < nr ? b[k * ldb + x] : ($T)0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t x = 0; x < w; ++x) pc[i * w + x] = x < nr ? c[i * ldc + x] : ($T)0;
  if (w > $W) pypto_rows_${S}(2, M, K, a, lda, pb, w, pc, w);
  else pypto_rows_${S}(1, M, K, a, lda, pb, w, pc, w);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t x = 0; x < nr; ++x) c[i * ldc + x] = pc[i * w + x];
}
/* c[M x N] += a[M x K] @ b[K x N], row-major with the given row strides. ``pack`` holds
   (K + M) * 2W elements, or is NULL when N is a multiple of 2W and rows of b are short.
   Rows of b 2 KiB or more apart put a panel's rows in few cache sets: when more than
   one micro-tile reads a panel, it is copied to ``pack`` first. */
$FN pypto_gemm_${S}(int64_t M, int64_t N, int64_t K, const $T *a, int64_t lda,
                    const $T *b, int64_t ldb, $T *c, int64_t ldc, $T *pack) {
  const int64_t w2 = 2 * $W, full = N / w2 * w2;
  const int repack = pack != NULL && ldb * (int64_t)sizeof($T) >= 2048 && M > PYPTO_GEMM_MR;
  for (int64_t j = 0; j < full; j += w2) {
    if (!repack) {
      pypto_rows_${S}(2, M, K, a, lda, b + j, ldb, c + j, ldc);
      continue;
    }
    for (int64_t k = 0; k < K; ++k)
      for (int64_t x = 0; x < w2; ++x) pack[k * w2 + x] = b[k * ldb + j + x];
    pypto_rows_${S}(2, M, K, a, lda, pack, w2, c + j, ldc);
  }
  if (full < N) pypto_tail_${S}(M, N - full, K, a, lda, b + full, ldb, c + full, ldc, pack);
}
"""
)


def _micro_kernel(s: str, t: str, mr: int, nv: int) -> str:
    """``c[mr x nv*W] += a[mr x K] @ b[K x nv*W]`` with the tile of c in registers: one
    vector load per column of b and one broadcast of a per row, for each k."""
    v, vu, w = f"pypto_{s}_v", f"pypto_{s}_vu", f"PYPTO_{s.upper()}_W"
    tile = [(r, x) for r in range(mr) for x in range(nv)]
    load = ", ".join(f"c{r}{x} = *(const {vu} *)(c + {r} * ldc + {x} * {w})" for r, x in tile)
    bs = ", ".join(f"b{x} = *(const {vu} *)(b + k * ldb + {x} * {w})" for x in range(nv))
    # x - 0 is x for every x (also -0): a broadcast that the compiler folds to one.
    steps = [
        f"    {{ const {v} av = a[{r} * lda + k] - ({v}){{0}}; "
        + " ".join(f"c{r}{x} = pypto_vfma_{s}(b{x}, av, c{r}{x});" for x in range(nv))
        + " }"
        for r in range(mr)
    ]
    store = " ".join(f"*({vu} *)(c + {r} * ldc + {x} * {w}) = c{r}{x};" for r, x in tile)
    return "\n".join(
        [
            f"static __attribute__((noinline, unused)) void pypto_uk_{s}_{mr}x{nv}(",
            f"    int64_t K, const {t} *a, int64_t lda, const {t} *b, int64_t ldb, {t} *c,",
            "    int64_t ldc) {",
            f"  {v} {load};",
            "  for (int64_t k = 0; k < K; ++k) {",
            f"    const {v} {bs};",
            *steps,
            "  }",
            f"  {store}",
            "}",
        ]
    )


def helper_source(s: str) -> str:
    """C text of ``pypto_gemm_<s>`` (``f32`` or ``f64``): drivers and micro-kernels."""
    t, fma = {"f32": ("float", "__builtin_fmaf"), "f64": ("double", "__builtin_fma")}[s]
    kernels = "\n".join(_micro_kernel(s, t, mr, nv) for mr in _ROWS for nv in (2, 1))
    w = f"PYPTO_{s.upper()}_W"
    return _DRIVER.substitute(S=s, T=t, W=w, KERNELS=kernels, FN=_FN, FMA=fma)


register_snippet("pypto_gemm_common", _COMMON)
for _s in _ELEM_BYTES:
    register_snippet(f"pypto_gemm_{_s}", helper_source(_s), ("pypto_gemm_common",))


@rule(Op.DOT)
def _dot(r: Emitter, op: Operation) -> None:
    a, b, acc = op.operands
    kind = _FAST.get((scalar_of(a.type).name, scalar_of(acc.type).name))
    if kind is None:
        _loop_nest(r, op)
        return
    (m, k), n = a.type.shape, b.type.shape[1]
    out = _accumulator(r, op)
    pa, pb = _stored(r, a), _stored(r, b)
    pack = "NULL"
    panel = _PANEL_BYTES // _ELEM_BYTES[kind]
    if n % panel or (n * _ELEM_BYTES[kind] >= _REPACK_ROW_BYTES and m > _MAX_MR):
        pack = r.declare(Value(BlockType(scalar_of(acc.type), ((k + m) * panel,))), "pk")
    r.emit(f"pypto_gemm_{kind}({m}, {n}, {k}, {pa}, {k}, {pb}, {n}, {out}, {n}, {pack});")


def _stored(r: Emitter, v: Value) -> str:
    """The C array of block ``v`` (a virtual block is written out first)."""
    if not r.is_virtual(v):
        return r.name(v)
    tmp = Value(v.type)
    name = r.declare(tmp, "d")
    r.loop(v.type.numel, f"{name}[i] = {r.lane(v)};")
    return name


def _accumulator(r: Emitter, op: Operation) -> str:
    """Storage for the result, holding ``acc``: acc's own array when this is its last use."""
    acc, v = op.operands[2], op.result
    if not r.is_virtual(acc) and _last_use(r, op) and _owns_storage(r, acc):
        return r.bind(v, r.name(acc))
    name = r.declare(v)
    r.loop(v.type.numel, f"{name}[i] = {r.lane(acc)};")
    return name


# Per module: how often each value is used (operand occurrences) and the block that
# defines it / holds each operation, for the in-place test.
_USES: weakref.WeakKeyDictionary[Module, tuple[dict, dict]] = weakref.WeakKeyDictionary()


def _use_info(module: Module) -> tuple[dict[int, int], dict[int, int]]:
    info = _USES.get(module)
    if info is None:
        uses: dict[int, int] = {}
        home: dict[int, int] = {}  # id(value or op) -> id(block)

        def visit(block: Block) -> None:
            for x in block.args:
                home[id(x)] = id(block)
            for o in block.ops:
                home[id(o)] = id(block)
                for x in o.operands:
                    uses[id(x)] = uses.get(id(x), 0) + 1
                for x in o.results:
                    home[id(x)] = id(block)
                for region in o.regions:
                    visit(region)

        visit(module.body)
        info = _USES[module] = (uses, home)
    return info


def _last_use(r: Emitter, op: Operation) -> bool:
    """``op`` is the only use of its accumulator and runs once per definition of it (same
    block: not inside a loop nested below the definition)."""
    uses, home = _use_info(r.module)
    acc = op.operands[2]
    return uses.get(id(acc)) == 1 and home.get(id(acc)) == home.get(id(op))


def _owns_storage(r: Emitter, acc: Value) -> bool:
    """No other value is bound to ``acc``'s array (reshapes and loop results share)."""
    name = r.name(acc)
    return all(n != name or x is acc for x, n in r._names.items())


def _loop_nest(r: Emitter, op: Operation) -> None:
    """acc + a @ b as i-k-j loops: products in the accumulator's type, summed over k in
    order, each op rounded as the IR says (exact for integers)."""
    a, b, acc = op.operands
    (m, kk), (_, n) = a.type.shape, b.type.shape
    src_t, t = scalar_of(a.type), scalar_of(acc.type)
    name = r.declare(op.result)
    r.loop(m * n, f"{name}[i] = {r.lane(acc)};")

    def widen(x: str) -> str:
        return exprs.cast(src_t, t, x) if src_t != t else x

    product = exprs.binary(Op.MUL, t, "av", widen(r.lane(b, f"k * {n} + j")))
    update = exprs.binary(Op.ADD, t, f"{name}[i * {n} + j]", product)
    r.open(f"for (int64_t i = 0; i < {m}; ++i) {{")
    r.open(f"for (int64_t k = 0; k < {kk}; ++k) {{")
    r.emit(f"const {reg(t)} av = {widen(r.lane(a, f'i * {kk} + k'))};")
    r.loop(n, f"{name}[i * {n} + j] = {update};", var="j")
    r.close()
    r.close()
