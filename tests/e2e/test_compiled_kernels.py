"""Compiled kernels as objects: warmup, both calling styles, directions, paths, reload."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl


@pypto.jit
def scale_add(x, y, out: pl.Out(like="x"), n, alpha, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = offs < n
    pl.store(out + offs, pl.load(x + offs, mask=m) * alpha + pl.load(y + offs, mask=m), mask=m)


@pypto.jit
def split(
    x, lo: pl.Out(like="x"), hi: pl.Out(shape=("n",), dtype=pl.float32), n, BLOCK: pl.constexpr
):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = offs < n
    v = pl.load(x + offs, mask=m)
    pl.store(lo + offs, pl.minimum(v, 0.0), mask=m)
    pl.store(hi + offs, pl.maximum(v, 0.0), mask=m)


@pypto.jit
def accumulate(x, acc, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    m = offs < n
    pl.store(acc + offs, pl.load(acc + offs, mask=m) + pl.load(x + offs, mask=m), mask=m)


def _grid(n, block=64):
    return (pypto.cdiv(n, block),)


@pytest.mark.parametrize("lib", ["torch", "numpy"])
def test_in_place_and_return_style_agree(backend, lib):
    x, y = torch.randn(300), torch.randn(300)
    if lib == "numpy":
        x, y = x.numpy(), y.numpy()
    out = torch.zeros(300) if lib == "torch" else np.zeros(300, np.float32)
    assert scale_add[_grid(300)](x, y, out, 300, 2.0, BLOCK=64, backend=backend) is None
    returned = scale_add[_grid(300)](x, y, 300, 2.0, BLOCK=64, backend=backend)
    assert type(returned) is type(out)
    np.testing.assert_array_equal(np.asarray(returned), np.asarray(out))
    np.testing.assert_allclose(np.asarray(out), np.asarray(x) * 2.0 + np.asarray(y), rtol=1e-6)


def test_several_outputs_come_back_in_parameter_order(backend):
    x = torch.randn(200)
    lo, hi = split[_grid(200)](x, 200, BLOCK=64, backend=backend)
    torch.testing.assert_close(lo, x.clamp(max=0))
    torch.testing.assert_close(hi, x.clamp(min=0))
    assert hi.dtype == torch.float32 and hi.shape == (200,)


def test_grid_callable_sees_allocated_outputs(backend):
    seen = {}

    def grid(meta):
        seen.update(meta)
        return _grid(meta["n"])

    x = torch.randn(100)
    out = scale_add[grid](x, x, 100, 1.0, BLOCK=64, backend=backend)
    assert seen["out"] is out and seen["BLOCK"] == 64


def test_wrong_argument_count_lists_both_forms():
    x = torch.randn(10)
    with pytest.raises(TypeError) as info:
        scale_add[(1,)](x, x, BLOCK=64)
    text = str(info.value)
    assert "6 (x, y, out, n, alpha, BLOCK)" in text and "5 (x, y, n, alpha, BLOCK)" in text


def test_output_shape_that_cannot_be_resolved_suggests_in_place():
    @pypto.jit
    def bad(x, out: pl.Out(shape=("m",), dtype=pl.float32), n, BLOCK: pl.constexpr):
        pl.store(out + pl.arange(0, BLOCK), pl.load(x + pl.arange(0, BLOCK)))

    with pytest.raises(TypeError, match="in-place style"):
        bad[(1,)](torch.randn(4), 4, BLOCK=4)


def test_inout_parameter_declared_out_is_a_compile_error():
    @pypto.jit
    def reads_its_output(x, out: pl.Out(like="x"), BLOCK: pl.constexpr):
        offs = pl.arange(0, BLOCK)
        pl.store(out + offs, pl.load(out + offs) + pl.load(x + offs))

    with pytest.raises(pypto.CompilationError, match="direction is inout"):
        reads_its_output[(1,)](torch.randn(8), BLOCK=8, backend="interpret")


def test_directions_come_from_the_ir(backend):
    ck = accumulate.warmup(torch.randn(64), torch.zeros(64), 64, BLOCK=64, backend=backend)
    dirs = {p["name"]: p.get("direction") for p in ck.metadata["params"]}
    assert dirs == {"x": "in", "acc": "inout", "n": None, "BLOCK": None}
    ck2 = scale_add.warmup(
        torch.randn(64), torch.randn(64), torch.empty(64), 64, 1.0, BLOCK=64, backend=backend
    )
    assert [p.get("direction") for p in ck2.metadata["params"][:3]] == ["in", "in", "out"]
    assert "x: in f32[64]" in ck2.signature and "out: out f32[64]" in ck2.signature
    assert "out: out" in repr(scale_add) and scale_add.signature == ck2.signature


def test_warmup_with_tensor_specs_then_launch_hits_the_cache(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PYPTO_CACHE_DIR", str(tmp_path))

    @pypto.jit
    def fresh(x, out: pl.Out(like="x"), n, BLOCK: pl.constexpr):
        offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
        pl.store(out + offs, pl.load(x + offs, mask=offs < n) + 1.0, mask=offs < n)

    spec = pypto.TensorSpec((100,), pl.float32)
    ck = fresh.warmup(spec, spec, 100, BLOCK=32, backend=backend)
    assert isinstance(ck, pypto.CompiledKernel) and not ck.cache_hit
    fresh._kernels.clear()  # forget the in-memory copy: the next launch must go to disk
    x = torch.randn(100)
    out = fresh[_grid(100, 32)](x, 100, BLOCK=32, backend=backend)
    torch.testing.assert_close(out, x + 1.0)
    (again,) = fresh._kernels.values()
    assert again.cache_hit and again == os.fspath(ck)


def test_compiled_kernel_is_launchable_and_checks_its_specialization(backend):
    x, y = torch.randn(128), torch.randn(128)
    ck = scale_add.warmup(x, y, torch.empty(128), 128, 3.0, BLOCK=64, backend=backend)
    out = torch.zeros(128)
    ck[(2,)](x, y, out, 128, 3.0)
    torch.testing.assert_close(out, x * 3.0 + y)
    torch.testing.assert_close(ck[(2,)](x, y, 128, 3.0), x * 3.0 + y)  # return style
    with pytest.raises(TypeError, match="'x' has dtype f64, expected f32"):
        ck[(2,)](x.double(), y, out, 128, 3.0)
    with pytest.raises(TypeError, match=r"'y' has shape \[64\], expected \[128\]"):
        ck[(2,)](x, y[:64], out, 128, 3.0)
    with pytest.raises(TypeError, match="constexpr 'BLOCK' was compiled as 64"):
        ck[(2,)](x, y, out, 128, 3.0, BLOCK=32)


def test_compiled_kernel_is_path_like(backend):
    ck = scale_add.warmup(
        torch.randn(16), torch.randn(16), torch.empty(16), 16, 1.0, BLOCK=16, backend=backend
    )
    path = os.fspath(ck)
    assert os.path.isdir(path) and str(ck) == path and ck == path
    assert os.path.exists(os.path.join(ck, "meta.json"))
    assert set(os.listdir(ck)) >= {"kernel.py", "kernel.ir", "kernel.opt.ir", "meta.json"}
    assert "kernel @scale_add" in ck.asm["ir"] and "kernel @scale_add" in ck.asm["opt_ir"]
    if backend != "interpret":
        assert "pypto_program" in ck.asm["c"]
    meta = ck.metadata
    assert meta["name"] == "scale_add" and meta["backend"] == backend
    assert meta["cache_key"] == os.path.basename(path)
    assert meta["compile_seconds"] > 0
    kinds = [(p["name"], p["kind"], p.get("dtype"), p.get("shape")) for p in meta["params"]]
    assert kinds == [
        ("x", "tensor", "f32", [16]),
        ("y", "tensor", "f32", [16]),
        ("out", "tensor", "f32", [16]),
        ("n", "scalar", "i32", None),
        ("alpha", "scalar", "f32", None),
        ("BLOCK", "constexpr", None, None),
    ]


def test_dynamic_dims_show_as_none():
    @pypto.jit(do_not_specialize=["x"])
    def dyn(x, BLOCK: pl.constexpr):
        pl.store(x + pl.arange(0, BLOCK), pl.load(x + pl.arange(0, BLOCK)) * 2.0)

    ck = dyn.warmup(torch.randn(8, 8), BLOCK=8, backend="interpret")
    assert ck.metadata["params"][0]["shape"] == [None, None]


RELOAD = textwrap.dedent(
    """
    import sys, torch
    import pypto_jit as pypto
    ck = pypto.load_compiled(sys.argv[1])
    x, y = torch.arange(64.0), torch.ones(64)
    out = ck[(1,)](x, y, 64, 2.0)
    assert torch.equal(out, x * 2.0 + 1.0), out
    print("OK", ck.cache_hit)
    """
)


def test_load_compiled_in_a_fresh_process(backend, tmp_path):
    ck = scale_add.warmup(
        torch.randn(64), torch.randn(64), torch.empty(64), 64, 2.0, BLOCK=64, backend=backend
    )
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    proc = subprocess.run(
        [sys.executable, str(script), os.fspath(ck)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "OK"


def test_load_compiled_rejects_a_damaged_or_foreign_entry(tmp_path):
    with pytest.raises(ValueError, match="not a usable cache entry"):
        pypto.load_compiled(tmp_path / "nothing-here")
    ck = scale_add.warmup(
        torch.randn(32), torch.randn(32), torch.empty(32), 32, 2.0, BLOCK=32, backend="interpret"
    )
    meta_path = os.path.join(ck, "meta.json")
    text = open(meta_path).read()
    try:
        with open(meta_path, "w") as f:
            f.write(text.replace('"package_version": "', '"package_version": "0.0.0-other'))
        with pytest.raises(ValueError, match="built by pypto-jit 0.0.0-other"):
            pypto.load_compiled(ck)
    finally:
        with open(meta_path, "w") as f:
            f.write(text)
