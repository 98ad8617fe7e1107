"""The C text ``render_c`` produces and the attrs ``annotate_addresses`` adds (no compiler)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from pypto_jit.codegen import render_c
from pypto_jit.errors import CompilationError, SourceLoc
from pypto_jit.ir import Builder, Module, Op, Param, verify
from pypto_jit.ir.types import BlockType, PtrType, ScalarType, f16, f32, i1, i32, i64
from pypto_jit.passes.address import analyze, annotate_addresses

BLOCK = 1024


def _params(*specs: tuple[str, ScalarType, int]) -> tuple[Param, ...]:
    """(name, dtype, rank): rank 0 = scalar parameter."""
    return tuple(
        Param(n, "tensor", PtrType(t), (None,) * r, (None,) * r) if r else Param(n, "scalar", t)
        for n, t, r in specs
    )


def vector_add(t: ScalarType = f32) -> Module:
    params = _params(("x", t, 1), ("y", t, 1), ("out", t, 1), ("n", i32, 0))
    b = Builder()
    x, y, out, n = b.open_block(tuple(p.type for p in params))
    b.loc = SourceLoc("add.py", 5, 4)
    start = b.typed(Op.MUL, b.typed(Op.PROGRAM_ID, axis=0), b.const(BLOCK, i32))
    offs = b.typed(Op.ADD, b.splat(start, (BLOCK,)), b.typed(Op.ARANGE, start=0, end=BLOCK))
    mask = b.typed(Op.LT, offs, b.splat(n, (BLOCK,)))
    b.loc = SourceLoc("add.py", 7, 8)
    xv = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(x, (BLOCK,)), offs), mask)
    yv = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(y, (BLOCK,)), offs), mask)
    b.loc = SourceLoc("add.py", 9, 4)
    optr = b.typed(Op.ADDPTR, b.splat(out, (BLOCK,)), offs)
    b.typed(Op.STORE, optr, b.typed(Op.ADD, xv, yv), mask)
    return Module("add", params, b.close_block())


def _memory_ops(m: Module) -> list:
    return [op for op in m.walk() if op.op in (Op.LOAD, Op.STORE)]


# -- rendering ------------------------------------------------------------------------------


def test_vector_add_cpu_text():
    m = annotate_addresses(vector_add())
    verify(m)
    c = render_c(m, "cpu")
    # ABI entry points
    assert "PYPTO_EXPORT int pypto_program(const int64_t *iargs, const double *fargs" in c
    assert "pypto_kernel_abi(void) { return PYPTO_ABI_VERSION; }" in c
    # unpacking: three rank-1 tensors take 3 slots each, then the scalar
    assert "float *const p0 = (float *)(intptr_t)iargs[0];" in c
    assert "float *const p2 = (float *)(intptr_t)iargs[6];" in c
    assert "const int32_t a3 = (int32_t)iargs[9];" in c
    # offsets, pointers, the mask and the f32 sum are virtual: only the loads are stored,
    # and the store's loop computes the sum
    assert re.findall(r"_Alignas\(64\) (\w+) v\d+\[(\d+)\];", c) == [("float", "1024")] * 2
    # contiguous masked loads: a row pointer and a unit-stride loop comparing in registers
    row_start = r"\(INT64_C\(0\) \+ \(int64_t\)\(.*INT64_C\(0\) \+ \(0\)\)\)\)\)\);"
    assert len(re.findall(r"const float \*q = p[01] \+ " + row_start, c)) == 2
    assert re.search(
        r"v\d+\[j\] = \(\(\(.*INT64_C\(0\) \+ \(j\)\)\)\)\) < \(a3\)\) \? q\[j\] : 0\);", c
    )
    assert re.search(r"float \*q = p2 \+ " + row_start, c)
    assert re.search(r"if \(.*< \(a3\)\)\) q\[j\] = \(\(v\d+\[j\]\) \+ \(v\d+\[j\]\)\);", c)
    assert c.count("  PYPTO_IVDEP\n") == 3  # indented uses (not the #define)
    # #line directives point at the kernel's lines, before the op's C
    assert '#line 5 "add.py"' in c and '#line 7 "add.py"' in c
    assert re.search(r'#line 9 "add.py"\n\s+\{ float \*q = p2', c)
    assert not re.search(r"#line .*\n#line", c)  # virtual ops emit no C, so no directive
    # cpu mode: no checks; no f16 helpers for an f32 kernel
    assert "pypto_check" not in c and "pypto_oob" not in c and "pypto_span" not in c
    assert "pypto_f16_to_f32" not in c


def test_sim_mode_adds_bounds_checks():
    m = annotate_addresses(vector_add())
    c = render_c(m, "sim")
    assert c.count("{ int bad = 0;") == 3  # one vectorizable scan per access
    scan = r"bad \|= \(\(\(.*< \(a3\)\) && \(uint64_t\)\(.* - p[012]_lo\) >= "
    assert len(re.findall(scan, c)) == 3
    fail = r"return pypto_fail\(ctx, PYPTO_ERR_OOB, {}, pid0, pid1, pid2, .*{}\);"
    assert len(re.findall(fail.format("7, 8, [01]", '"load"'), c)) == 2
    assert re.search(fail.format("9, 4, 2", 'p2_span, "store"'), c)
    assert "const int64_t p0_span = pypto_span(iargs + 1, iargs + 2, 1, &p0_lo);" in c
    assert "static int pypto_fail(" in c


def test_stack_bytes_cover_the_block_arrays():
    c = render_c(annotate_addresses(vector_add()), "cpu")
    declared = sum(
        int(n) * {"float": 4, "int32_t": 4, "int64_t": 8, "uint8_t": 1}[t]
        for t, n in re.findall(r"_Alignas\(64\) (\w+) \w+\[(\d+)\];", c)
    )
    stack = int(re.search(r"pypto_stack_bytes\(void\) \{ return INT64_C\((\d+)\); \}", c)[1])
    assert declared > 0 and stack >= declared


def test_f16_rounds_after_each_op_and_converts_at_memory():
    c = render_c(annotate_addresses(vector_add(f16)), "cpu")
    assert "uint16_t *const p0 = (uint16_t *)(intptr_t)iargs[0];" in c
    assert re.search(r"_Alignas\(64\) float v\d+\[1024\];", c)  # held as float
    assert re.search(r"v\d+\[i\] = pypto_round_f16\(\(\(v\d+\[i\]\) \+ \(v\d+\[i\]\)\)\);", c)
    assert "pypto_f16_to_f32(q[j])" in c and "q[j] = pypto_f32_to_f16(v" in c
    assert c.index("static inline uint32_t pypto_f2u") < c.index("pypto_f32_to_f16(float f)")


def test_mode_and_missing_annotations_are_errors():
    with pytest.raises(ValueError, match="mode"):
        render_c(annotate_addresses(vector_add()), "gpu")
    with pytest.raises(ValueError, match="annotate_addresses"):
        render_c(vector_add(), "cpu")  # LOAD without its param attr


def test_missing_rule_names_the_op():
    params = _params(("x", f32, 1), ("y", f16, 1))
    b = Builder()
    x, _ = b.open_block(tuple(p.type for p in params))
    b.typed(Op.CAST, x, declared=PtrType(f16))  # reinterpreting pointer: no C rule
    m = Module("bad", params, b.close_block())
    with pytest.raises(NotImplementedError, match="cast"):
        render_c(annotate_addresses(m), "cpu")


def test_line_directive_escapes_the_file_name():
    m = vector_add()
    ops = list(m.body.ops)
    ops[0] = ops[0].__class__(**{**ops[0].__dict__, "loc": SourceLoc('C:\\k "1".py', 3, 0)})
    m = Module(m.name, m.params, m.body.__class__(m.body.args, tuple(ops)))
    assert '#line 3 "C:\\\\k \\"1\\".py"' in render_c(annotate_addresses(m), "cpu")


def test_every_op_has_a_rule():
    """The IR text tests' module that uses every op renders in both modes."""
    path = Path(__file__).with_name("test_ir_text.py")
    if not path.exists():
        pytest.skip("test_ir_text.py not present")
    spec = importlib.util.spec_from_file_location("_ir_text_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    m = annotate_addresses(module.every_op_module())
    seen = {op.op for op in m.walk()}
    for mode in ("cpu", "sim"):
        assert "return 0;" in render_c(m, mode)
    assert seen >= {Op.FOR, Op.IF, Op.WHILE, Op.LOAD, Op.STORE, Op.BROADCAST, Op.RESHAPE}


# -- address analysis -------------------------------------------------------------------------


def _tile(kind: str) -> Module:
    """LOAD of a [4, 8] tile of x at ``rows[:, None] * a + cols[None, :] * b``:
    contig (a = s, b = 1), scaled (a = s, b = 3) or transposed (a = 1, b = s)."""
    params = _params(("x", f32, 2), ("out", f32, 1), ("s", i32, 0))
    b = Builder()
    x, out, s = b.open_block(tuple(p.type for p in params))
    rows = b.typed(Op.EXPAND_DIMS, b.typed(Op.ARANGE, start=0, end=4), axis=1)  # [4, 1]
    cols = b.typed(Op.EXPAND_DIMS, b.typed(Op.ARANGE, start=0, end=8), axis=0)  # [1, 8]
    if kind != "transposed":
        rows = b.typed(Op.MUL, rows, b.splat(s, (4, 1)))
    if kind == "scaled":
        cols = b.typed(Op.MUL, cols, b.splat(b.const(3, i32), (1, 8)))
    if kind == "transposed":
        cols = b.typed(Op.MUL, cols, b.splat(s, (1, 8)))
    wide = BlockType(i32, (4, 8))
    offs = b.typed(
        Op.ADD,
        b.typed(Op.BROADCAST, rows, declared=wide),
        b.typed(Op.BROADCAST, cols, declared=wide),
    )
    v = b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(x, (4, 8)), offs))
    flat = b.typed(Op.RESHAPE, v, declared=BlockType(f32, (32,)))
    out_offs = b.typed(Op.ARANGE, start=0, end=32)
    b.typed(Op.STORE, b.typed(Op.ADDPTR, b.splat(out, (32,)), out_offs), flat)
    return Module("tile", params, b.close_block())


def test_arange_offsets_are_contiguous():
    load_x, load_y, store = _memory_ops(annotate_addresses(vector_add()))
    assert all(op.attr("contig") is True for op in (load_x, load_y, store))
    assert [op.attr("param") for op in (load_x, load_y, store)] == [0, 1, 2]


def test_scaled_offsets_are_not_contiguous():
    params = _params(("x", f32, 1))
    b = Builder()
    (x,) = b.open_block((params[0].type,))
    offs = b.typed(Op.MUL, b.typed(Op.ARANGE, start=0, end=64), b.splat(b.const(2, i32), (64,)))
    b.typed(Op.LOAD, b.typed(Op.ADDPTR, b.splat(x, (64,)), offs))
    m = annotate_addresses(Module("strided", params, b.close_block()))
    (load,) = _memory_ops(m)
    assert load.attr("contig") is None and load.attr("param") == 0
    c = render_c(m, "cpu")
    gather = r"v\d+\[i\] = p0\[\(INT64_C\(0\) \+ .*\* \(uint32_t\)\(v1\)\)\)\)\];"
    assert re.search(gather, c)
    assert "*q" not in c


def test_2d_tile_is_contiguous_along_the_last_axis():
    m = annotate_addresses(_tile("contig"))
    load, store = _memory_ops(m)
    assert load.attr("contig") is True and store.attr("contig") is True
    c = render_c(m, "cpu")
    assert "for (int32_t rw = 0; rw < 4; ++rw) {" in c
    assert re.search(r"const float \*q = p0 \+ \(.*rw \* 8.*\);", c)
    assert re.search(r"v\d+\[rw \* 8 \+ j\] = q\[j\];", c)


@pytest.mark.parametrize("kind", ["scaled", "transposed"])
def test_strided_last_axis_is_a_gather(kind):
    load, _ = _memory_ops(annotate_addresses(_tile(kind)))
    assert load.attr("contig") is None


def test_analysis_facts():
    m = vector_add()
    info = analyze(m)
    ops = {op.op: op for op in m.walk() if len(op.results) == 1}
    assert info[ops[Op.ARANGE].result].contig == BLOCK
    assert info[ops[Op.SPLAT].result].const == BLOCK  # the last SPLAT: the out pointer
    assert info[ops[Op.ADDPTR].result].contig == BLOCK
    assert info[ops[Op.CONST].result].div == BLOCK  # 1024 = 2**10


def _carried_pointer(step_is_splat: bool) -> Module:
    """for: p = p + step, load(p); step is a splat (stays contiguous) or an arange (not)."""
    params = _params(("x", f32, 1), ("n", i32, 0))
    b = Builder()
    x, n = b.open_block(tuple(p.type for p in params))
    ptr0 = b.typed(Op.ADDPTR, b.splat(x, (16,)), b.typed(Op.ARANGE, start=0, end=16))
    zero, one = b.const(0, i32), b.const(1, i32)
    _, p = b.open_block((i32, ptr0.type))
    b.typed(Op.LOAD, p)
    step = (
        b.splat(b.const(16, i32), (16,)) if step_is_splat else b.typed(Op.ARANGE, start=0, end=16)
    )
    b.yield_(b.typed(Op.ADDPTR, p, step))
    body = b.close_block()
    b.emit(Op.FOR, (zero, n, one, ptr0), (ptr0.type,), regions=(body,))
    return Module("carried", params, b.close_block())


@pytest.mark.parametrize("step_is_splat", [True, False])
def test_loop_carried_pointer_contiguity(step_is_splat):
    m = annotate_addresses(_carried_pointer(step_is_splat))
    verify(m)
    (load,) = _memory_ops(m)
    assert load.attr("param") == 0
    assert (load.attr("contig") is True) == step_is_splat
    (loop,) = [op for op in m.walk() if op.op is Op.FOR]
    assert loop.attr("params") == (0,)


def test_where_between_two_tensors_is_ambiguous():
    params = _params(("x", f32, 1), ("y", f32, 1), ("c", i1, 0))
    b = Builder()
    x, y, c = b.open_block(tuple(p.type for p in params))
    b.loc = SourceLoc("k.py", 12, 8)
    p = b.typed(Op.WHERE, c, x, y)
    b.typed(Op.LOAD, p)
    with pytest.raises(CompilationError, match=r"k.py:12:9.*'x' and 'y'"):
        annotate_addresses(Module("amb", params, b.close_block()))


def test_where_within_one_tensor_keeps_its_param():
    params = _params(("x", f32, 1), ("c", i1, 0))
    b = Builder()
    x, c = b.open_block(tuple(p.type for p in params))
    p = b.typed(Op.WHERE, c, x, b.typed(Op.ADDPTR, x, b.const(3, i64)))
    b.typed(Op.STORE, p, b.const(1.0, f32))
    m = annotate_addresses(Module("one", params, b.close_block()))
    ops = {op.op: op for op in m.walk()}
    assert ops[Op.WHERE].attr("param") == 0 and ops[Op.STORE].attr("param") == 0
    assert re.search(r"p0\[v\d+\] = v\d+;", render_c(m, "cpu"))  # scalar store


def test_loop_mixing_tensors_is_ambiguous():
    params = _params(("x", f32, 1), ("y", f32, 1), ("n", i32, 0))
    b = Builder()
    x, y, n = b.open_block(tuple(p.type for p in params))
    b.loc = SourceLoc("k.py", 20, 4)
    zero, one = b.const(0, i32), b.const(1, i32)
    b.open_block((i32, x.type))
    b.yield_(y)  # the carried pointer switches tensors
    body = b.close_block()
    r = b.emit(Op.FOR, (zero, n, one, x), (x.type,), regions=(body,))
    b.typed(Op.LOAD, r.result)
    with pytest.raises(CompilationError, match="k.py:20:5"):
        annotate_addresses(Module("mix", params, b.close_block()))


# -- fused loops ----------------------------------------------------------------------------
def _ir(text: str) -> Module:
    from pypto_jit.ir.parser import parse_module

    return parse_module(text)


def _masked_row(name: str, block: int, shape: str = "[?]", strides: str = "[?]") -> str:
    """A kernel over ``x`` and ``out`` up to ``%v``, the lanes of a block of ``x`` below ``n``
    (``%a`` the lane offsets, ``%m`` the mask); fixtures go on from there."""
    return f"""kernel @{name}(
  %x: ptr<f32> tensor(shape={shape}, strides={strides}),
  %out: ptr<f32> tensor(shape={shape}, strides={strides}),
  %n: i32 scalar
) {{
  %a = arange {{start=0, end={block}}} : block<i32,[{block}]>
  %ns = splat %n : block<i32,[{block}]>
  %m = lt %a, %ns
  %xs = splat %x : block<ptr<f32>,[{block}]>
  %xp = addptr %xs, %a
  %v = load %xp, %m
"""


def _stored_row(value: str, block: int, then: str = "") -> str:
    """The end of a ``_masked_row`` fixture: ``value`` stored to the row of ``out`` under
    ``%m``, then the ops ``then``."""
    return f"""  %os = splat %out : block<ptr<f32>,[{block}]>
  %op = addptr %os, %a
  store %op, {value}, %m
{then}}}
"""


ROW = (
    _masked_row("row", 256)
    + """  %e = tanh %v
  %mx = reduce %v {axis=0, keep_dims=false, kind="max"} : f32
  %s = reduce %e {axis=0, keep_dims=false, kind="sum"} : f32
  %ss = splat %s : block<f32,[256]>
  %d = div %e, %ss
"""
    + _stored_row("%d", 256, "  store %out, %mx\n")
)


def _fused_c(text: str, mode: str = "cpu") -> str:
    from pypto_jit.passes import fuse, stream_stores

    m = stream_stores(fuse(annotate_addresses(_ir(text))))
    verify(m)
    return render_c(m, mode)


def test_fused_values_are_locals_of_their_consumers_loop():
    c = _fused_c(ROW)
    # v is filled by the max reduction's loop (its first sink), e by the sum's, and the
    # division is computed in the store's loop: three arrays of 256 lanes are not filled by
    # loops of their own, one is not there at all.
    assert len(re.findall(r"float v\d+\[256\];", c)) == 2
    assert re.search(r"const float t\d+ = \(\(v\d+\[j\]\) / \(v\d+\)\);", c)
    assert re.search(r"const float t\d+ = tanhf\(v\d+\[", c)
    assert re.search(r"v\d+\[.*\] = t\d+;", c)  # a pending array filled in a body
    assert "for (int32_t i = 0; i < 256; ++i) v" not in c  # no loop of their own


def test_reductions_keep_partials_in_vector_registers():
    c = _fused_c(ROW)
    assert "typedef float pypto_v_f32 __attribute__((vector_size(64)));" in c
    assert "PYPTO_LANES" in c and "GCC unroll 1" in c
    assert "p0_ = p0_ + y0_;" in c  # the sum: two vector accumulators
    assert "? (float)INFINITY : v_;" in c  # max: a NaN counts as +inf, then a second pass
    assert "nan_ |= y_ != y_;" in c


def test_prelude_math_and_pragmas():
    c = _fused_c(ROW.replace("tanh %v", "exp %v"))
    assert "static inline float pypto_expf(float x)" in c and "expf(" not in c.split("pypto")[0]
    assert '"no-thread-jumps"' in c and '"no-tree-loop-distribute-patterns"' in c
    f64 = _fused_c(ROW.replace("tanh %v", "exp %v").replace("f32", "f64"))
    assert "pypto_expf" not in f64 and re.search(r"\bexp\(", f64)


def test_f32_exp_is_a_loop_of_its_own_with_the_vector_exp():
    c = _fused_c(ROW.replace("tanh %v", "exp %v"))
    # the argument's lanes into the array (here the load, whose array it fills too), then
    # the explicit vector exp over the array, in place
    e = re.search(r"pypto_expf_n\((v\d+), 256\);", c)
    assert e and re.search(rf"\b{e[1]}\[i\] = t\d+;", c[: e.start()])
    assert "_mm512_scalef_ps" in c and "#include <immintrin.h>" in c
    assert "pypto_expf(" in c.split("pypto_expf_n(float")[1]  # the scalar fallback


SOFTMAX_ROW = (
    _masked_row("softmax", 256)
    + """  %mx = reduce %v {axis=0, keep_dims=false, kind="max"} : f32
  %mxs = splat %mx : block<f32,[256]>
  %z = sub %v, %mxs
  %e = exp %z
  %s = reduce %e {axis=0, keep_dims=false, kind="sum"} : f32
  %ss = splat %s : block<f32,[256]>
  %d = div %e, %ss
"""
    + _stored_row("%d", 256)
)


def test_f32_exp_computes_its_arguments_chunks_in_its_own_pass():
    c = _fused_c(SOFTMAX_ROW)
    # the row (filled by the max's loop) minus the splat max, exponentiated chunk by chunk
    e = re.search(r"pypto_vstore_f32\((v\d+) \+ 0 \+ c_, pypto_expf_v16\((u\d+)\)\);", c)
    assert e, c
    assert re.search(rf"const pypto_v_f32 {e[2]} = \(u\d+ - u\d+\);", c)
    # the rest of the row through the array and the in-place exp; not a second full pass
    assert f"pypto_expf_n({e[1]} + 0 + c_, 256 - c_);" in c
    assert f"pypto_expf_n({e[1]}, 256);" not in c
    sim = _fused_c(SOFTMAX_ROW, mode="sim")
    assert "pypto_expf_v16(u" not in sim and re.search(r"pypto_expf_n\(v\d+, 256\);", sim)


def test_f32_erf_is_a_simd_function_with_written_out_vector_variants():
    c = _fused_c(ROW.replace("tanh %v", "erf %v"))
    assert re.search(r"const float t\d+ = pypto_erff\(v\d+\[", c)  # fused, as any op
    assert '__attribute__((simd("notinbranch"), const, nothrow)) float pypto_erff(float);' in c
    for variant in ("_ZGVbN4v", "_ZGVcN8v", "_ZGVdN8v", "_ZGVeN16v"):
        assert f"{variant}_pypto_erff(" in c  # whichever width gcc picks is defined
    assert "_mm512_permutex2var_ps" in c and "#include <immintrin.h>" in c


COPY = (
    _masked_row("copy", 1024, "[4096]", "[1]")
    + """  %w = add %v, %v
"""
    + _stored_row("%w", 1024)
)


def test_streamed_store_text(monkeypatch):
    from pypto_jit.passes import streaming

    monkeypatch.setattr(streaming, "MIN_TENSOR_BYTES", 0)
    monkeypatch.setattr(streaming, "MIN_FOOTPRINT_BYTES", 0)
    c = _fused_c(COPY)
    assert "if (all_) pypto_stream256(q + c, y_);" in c and "sfence" not in c  # the runtime fences
    assert "#include <immintrin.h>" in c
    assert "pypto_stream256" not in _fused_c(COPY, "sim")  # the checking backend stores plainly
    assert "pypto_vstream_f32" not in c  # masked lanes: staged through y_, then streamed
    unmasked = COPY.replace(", %m\n", "\n")  # the load and the store
    v = _fused_c(unmasked)  # every lane active: chunks of 16 in registers, streamed
    assert re.search(r"pypto_vstream_f32\(q \+ c_, u\d+\);", v) and "sfence" not in v
    assert "pypto_vstream_f32" not in _fused_c(unmasked, "sim")
    monkeypatch.setattr(streaming, "MIN_TENSOR_BYTES", 1 << 20)
    assert "pypto_stream256" not in _fused_c(COPY)  # 16 KiB: stays in cache


# a row's sum, then the row minus it stored (masked by n): its store loop reads x again
TWO_PASS_ROW = (
    _masked_row("two_pass", 1024, "[2048, 1024]", "[1024, 1]")
    + """  %s = reduce %v {axis=0, keep_dims=false, kind="sum"} : f32
  %v2 = load %xp, %m
  %ss = splat %s : block<f32,[1024]>
  %y = sub %v2, %ss
"""
    + _stored_row("%y", 1024)
)


def _prefetch_c(text: str, mode: str = "cpu") -> str:
    from pypto_jit.passes import fuse, mark_prefix_masks, prefetch_stores, stream_stores

    m = prefetch_stores(mark_prefix_masks(stream_stores(fuse(annotate_addresses(_ir(text))))))
    verify(m)
    return render_c(m, mode)


def test_write_prefetch_text():
    c = _prefetch_c(TWO_PASS_ROW)
    assert "static inline void pypto_prefetchw(" in c
    # a prefix-masked store: the lanes the mask surely keeps, before its loops
    count = r"\(int64_t\)\(pypto_prefix\([^;]*\)\) \* 4"
    assert re.search(rf"pypto_prefetchw\(q, {count}\);\n *int32_t m_ = pypto_prefix", c)
    unmasked = _prefetch_c(TWO_PASS_ROW.replace("store %op, %y, %m", "store %op, %y"))
    assert "pypto_prefetchw(q, 4096);" in unmasked  # the whole row
    assert "pypto_prefetchw" not in _prefetch_c(TWO_PASS_ROW, "sim")  # stores plainly


def test_early_write_prefetch_text():
    c = _prefetch_c(SOFTMAX_ROW)
    # after the max's loop (which reads x), before the exp: the surely written lanes' lines
    at = c.index("pypto_prefetchw(p1 + ")
    assert c.index("? (float)INFINITY : v_;") < at < c.index("pypto_expf_v16(u")
    assert re.search(r"pypto_prefetchw\(p1 \+ [^;]*pypto_prefix\([^;]*\) \* 4\);", c)
    assert "pypto_prefetchw(q," not in c  # not again before the store loop
    assert "pypto_prefetchw" not in _prefetch_c(SOFTMAX_ROW, "sim")


# acc += load(x + cols, mask=cols < bound) over cols = off + arange, off the loop variable
COLUMN_LOOP = """kernel @cols(
  %x: ptr<f32> tensor(shape=[?], strides=[?]),
  %out: ptr<f32> tensor(shape=[?], strides=[?]),
  %n: i32 scalar
) {
  %z = const {value=0} : i32
  %b = const {value=64} : i32
  %zf = const {value=0.0} : f32
  %init = splat %zf : block<f32,[64]>
  %r = for %z, %n, %b, %init : block<f32,[64]> {
  ^(%off: i32, %acc: block<f32,[64]>):
    %a = arange {start=0, end=64} : block<i32,[64]>
    %o = splat %off : block<i32,[64]>
    %cols = add %o, %a : block<i32,[64]>
    %left = sub %n, %off : i32
    %bs = splat BOUND : block<i32,[64]>
    %m = lt %cols, %bs : block<i1,[64]>
    %xs = splat %x : block<ptr<f32>,[64]>
    %xp = addptr %xs, %cols : block<ptr<f32>,[64]>
    %v = load %xp, %m, %init
    %s = add %acc, %v : block<f32,[64]>
    yield %s
  }
  %t = reduce %r {axis=0, keep_dims=false, kind="sum"} : f32
  store %out, %t
}
"""


def _column_loop_c(bound: str) -> str:
    from pypto_jit.passes import fuse, mark_prefix_masks

    m = mark_prefix_masks(fuse(annotate_addresses(_ir(COLUMN_LOOP.replace("BOUND", bound)))))
    verify(m)
    return render_c(m, "cpu")


def test_column_loops_run_full_blocks_first():
    c = _column_loop_c("%n")  # a bound from outside the loop: full blocks first
    test = r"iv\d+ < a\d+ && pypto_prefix\([^;]*, 64\) == 64"
    full = re.search(rf"if \({test}\) do {{\n(.*?)\n *}} while \({test}\);\n(.*)", c, re.S)
    assert full, c
    assert "m_" not in full[1]  # no masked lanes left in the full-block loop
    assert "i < m_" in full[2] and "i = m_" in full[2]  # the usual body after it


def test_column_loops_with_a_bound_from_the_body_stay_one_loop():
    c = _column_loop_c("%left")  # cols < n - off: computed in the body, not tested up front
    assert " do {" not in c and "i < m_" in c


# a masked row's erf times the row, stored: the store's value computes erf
ERF_ROW = (
    _masked_row("erf_row", 256)
    + """  %e = erf %v
  %y = mul %e, %v
"""
    + _stored_row("%y", 256)
)


def test_erf_store_writes_full_chunks_in_vector_form():
    c = _prefetch_c(ERF_ROW)
    loop = "for (; c_ + 16 <= m_; c_ += 16) {"
    assert re.search(r"int32_t c_ = 0;\n *#if defined\(__AVX512F__\)\n *" + re.escape(loop), c)
    body = c.split(loop)[1].split("#endif")[0]
    assert re.search(r"const pypto_v_f32 (u\d+) = pypto_vload_f32\(p0 \+ .*\+ c_\);", body)
    assert re.search(r"= pypto_erff_v16\(u\d+\);", body) and "pypto_vstore_f32(q + c_, u" in body
    # the scalar loop takes the surely active lanes after the chunks, then the masked ones
    assert "for (int32_t j = c_; j < m_; ++j)" in c and "for (int32_t j = m_; j < 256; ++j)" in c
    assert "static inline pypto_v_f32 pypto_vsplat_f32(" not in c  # no scalar operand here


@pytest.mark.parametrize(
    "change",
    [
        ("erf %v", "tanh %v"),  # gcc vectorizes the scalar loop well: no vector form
        ("f32", "f64"),
        ("store %op, %y, %m", "%z = gt %v, %v\n  store %op, %y, %z"),  # not a prefix mask
    ],
)
def test_other_stores_keep_the_scalar_loop(change):
    assert "c_ + 16" not in _prefetch_c(ERF_ROW.replace(*change))


def test_sim_mode_keeps_the_scalar_loop():
    assert "c_ + 16" not in _prefetch_c(ERF_ROW, "sim")
