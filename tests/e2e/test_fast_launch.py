"""The C launch path (runtime_c/pyext/fastlaunch.c) against the Python one.

Every launch is made twice, once through each path, on the same inputs: the
outputs, the compiled-kernel cache and the errors must be the same.
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest
import torch
from conftest import needs_cc

import pypto_jit as pypto
import pypto_jit.language as pl
from pypto_jit.errors import DeviceAssertError, OutOfBoundsError
from pypto_jit.runtime import fastpath

pytestmark = needs_cc


def axpy(
    x_ptr, y_ptr, out_ptr, n, alpha, shift, flag, BLOCK: pl.constexpr, SCALE: pl.constexpr = 1
):  # noqa: E501
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    mask = offs < n
    x = pl.load(x_ptr + offs, mask=mask)
    y = pl.load(y_ptr + offs, mask=mask)
    r = x * alpha + y * SCALE + shift
    if flag:
        r = -r
    pl.store(out_ptr + offs, r, mask=mask)


def strided_copy(x_ptr, out_ptr, n, stride, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    pl.store(out_ptr + offs, pl.load(x_ptr + offs * stride, mask=offs < n), mask=offs < n)


def grid_2d(out_ptr, n_cols, BLOCK: pl.constexpr):
    row = pl.program_id(0)
    cols = pl.program_id(1) * BLOCK + pl.arange(0, BLOCK)
    pl.store(out_ptr + row * n_cols + cols, cols + row * 1000, mask=cols < n_cols)


def checked(x_ptr, n, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    x = pl.load(x_ptr + offs, mask=offs < n)
    pl.device_assert(x >= 0, "negative input")


def both(fn, monkeypatch) -> tuple[pypto.JITFunction, pypto.JITFunction]:
    """The same kernel through the C path and through the Python path."""
    fast = pypto.jit(fn)
    fast[(1,)]  # the dispatcher is chosen on first use
    assert type(fast._dispatch).__name__ == "Dispatcher"
    slow = pypto.jit(fn)
    with monkeypatch.context() as m:
        m.setenv("PYPTO_FAST_LAUNCH", "0")
        slow[(1,)]
    assert type(slow._dispatch).__name__ == "_PythonDispatch"
    return fast, slow


def test_extension_builds_here():
    assert fastpath.module() is not None  # a fallback would hide a broken build


@pytest.mark.parametrize("backend", ["cpu", "sim"])
@pytest.mark.parametrize(
    "n, alpha, shift, flag",
    [(1, 2.0, 1, False), (16, -0.5, 16, True), (37, 3.25, -7, True), (100, 1.0, 2**40, False)],
)
def test_same_results_and_same_cache_keys(monkeypatch, backend, n, alpha, shift, flag):
    fast, slow = both(axpy, monkeypatch)
    x, y = torch.randn(n), torch.randn(n)
    outs = []
    for k in (fast, slow):
        out = torch.empty(n)
        k[(pypto.cdiv(n, 16),)](x, y, out, n, alpha, shift, flag, BLOCK=16, backend=backend)
        outs.append(out)
    expected = (x * alpha + y + shift) * (-1 if flag else 1)
    torch.testing.assert_close(outs[0], expected)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert list(fast._kernels) == list(slow._kernels)  # one key format for both paths


def test_keywords_defaults_and_callable_grid(monkeypatch):
    fast, slow = both(axpy, monkeypatch)
    x, y = torch.randn(50), torch.randn(50)
    for k in (fast, slow):
        out = torch.empty(50)
        grid = lambda meta: (pypto.cdiv(meta["n"], meta["BLOCK"]),)  # noqa: E731
        k[grid](x, y, out, alpha=2.0, shift=0, flag=False, n=50, BLOCK=8, SCALE=3)
        torch.testing.assert_close(out, x * 2 + y * 3)
        out2 = torch.empty(50)
        k[[7]](x, y, out2, 50, 2.0, 0, False, 8, 3, num_threads=1)  # a list grid, positional
        torch.testing.assert_close(out2, out, rtol=0, atol=0)


def test_arguments_the_c_path_hands_back_to_python(monkeypatch):
    """numpy arrays, numpy scalars and non-contiguous tensors take the Python path inside
    a fast launcher and give the same answers."""
    fast, slow = both(strided_copy, monkeypatch)
    base = torch.arange(64, dtype=torch.float32)
    for k in (fast, slow):
        out = torch.zeros(16)
        k[(2,)](base[::2], out, 16, 2, BLOCK=8)  # pointers step over memory, as in Triton
        torch.testing.assert_close(out, base[::2][:16])
        out_np = np.zeros(16, dtype=np.float32)
        k[(2,)](base.numpy(), out_np, np.int64(16), 1, BLOCK=8)
        np.testing.assert_array_equal(out_np, base.numpy()[:16])


def test_reads_follow_a_patched_tensor_class(monkeypatch):
    """The C path reads tensors through torch.Tensor's descriptors, found again whenever the
    class changes: a method patched from Python is the one called."""
    fast, _ = both(strided_copy, monkeypatch)
    x, out = torch.arange(8.0), torch.zeros(8)
    fast[(1,)](x, out, 8, 1, BLOCK=8)  # the descriptors are found
    calls = []
    original = torch.Tensor.data_ptr

    def data_ptr(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "data_ptr", data_ptr)
    fast[(1,)](x, out, 8, 1, BLOCK=8)
    assert len(calls) == 2 and calls[0] is x and calls[1] is out
    monkeypatch.undo()
    out.zero_()
    fast[(1,)](x, out, 8, 1, BLOCK=8)  # torch's own again
    assert len(calls) == 2 and torch.equal(out, x)


def test_multi_dimensional_grids(monkeypatch, backend):
    fast, slow = both(grid_2d, monkeypatch)
    for k in (fast, slow):
        out = torch.zeros(3, 20, dtype=torch.int32)
        k[(3, 3)](out, 20, BLOCK=8, backend=backend)
        expected = torch.arange(20, dtype=torch.int32) + 1000 * torch.arange(3)[:, None]
        torch.testing.assert_close(out, expected.to(torch.int32))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda k, x: k[(1,)](x, x, x, 4, 1.0, 0, False), TypeError, "BLOCK"),
        (lambda k, x: k[(1,)](x, x, x, 4, 1.0, 0, False, BLOCK=4, BLOCKS=4), TypeError, "BLOCKS"),
        (lambda k, x: k[(1,)](x, x, x, 4, 1.0, 0, False, 4, n=4), TypeError, "'n'"),
        (lambda k, x: k[(-1,)](x, x, x, 4, 1.0, 0, False, BLOCK=4), ValueError, "grid"),
        (lambda k, x: k[(1, 1, 1, 1)](x, x, x, 4, 1.0, 0, False, BLOCK=4), ValueError, "grid"),
        (lambda k, x: k[(1,)](x, x, x, 4, 1.0, 0, 0, BLOCK=4, backend="gpu"), ValueError, "gpu"),
        (lambda k, x: k[(1,)]([1.0], x, x, 4, 1.0, 0, False, BLOCK=4), TypeError, "'x_ptr'"),
        (lambda k, x: k[(1,)](x, x, x, 2**70, 1.0, 0, 0, BLOCK=4), (TypeError, ValueError), "'n'"),
    ],
)
def test_errors_are_the_python_ones(monkeypatch, call, error, match):
    fast, slow = both(axpy, monkeypatch)
    x = torch.zeros(4)
    messages = []
    for k in (fast, slow):
        with pytest.raises(error, match=match) as info:
            call(k, x)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_backend_from_the_environment(monkeypatch):
    fast, _ = both(axpy, monkeypatch)
    x = torch.arange(8, dtype=torch.float32)
    for backend in ("sim", "interpret", "cpu"):
        monkeypatch.setenv("PYPTO_BACKEND", backend)
        out = torch.empty(8)
        fast[(1,)](x, x, out, 8, 1.0, 0, False, BLOCK=8)
        torch.testing.assert_close(out, 2 * x)
    assert sorted(key[0] for key in fast._kernels) == ["cpu", "interpret", "sim"]
    monkeypatch.setenv("PYPTO_BACKEND", "tpu")
    with pytest.raises(ValueError, match="tpu"):
        fast[(1,)](x, x, out, 8, 1.0, 0, False, BLOCK=8)


def test_sim_out_of_bounds_names_the_parameter(monkeypatch):
    fast, slow = both(strided_copy, monkeypatch)
    x = torch.zeros(8)
    messages = []
    for k in (fast, slow):
        with pytest.raises(OutOfBoundsError, match="x_ptr") as info:
            k[(1,)](x, torch.zeros(8), 8, 3, BLOCK=8, backend="sim")
        assert info.value.param == "x_ptr"
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_device_assert_through_the_c_path(monkeypatch):
    fast, _ = both(checked, monkeypatch)
    fast[(1,)](torch.ones(4), 4, BLOCK=4, backend="sim")
    with pytest.raises(DeviceAssertError, match="negative input"):
        fast[(1,)](-torch.ones(4), 4, BLOCK=4, backend="sim")


def test_forgetting_compiled_kernels_recompiles(monkeypatch):
    fast, _ = both(axpy, monkeypatch)
    x = torch.ones(4)
    out = torch.empty(4)
    fast[(1,)](x, x, out, 4, 1.0, 0, False, BLOCK=4)
    (first,) = fast._kernels.values()
    fast._kernels.clear()  # the C path keeps no private copy of the cache
    fast[(1,)](x, x, out, 4, 1.0, 0, False, BLOCK=4)
    (again,) = fast._kernels.values()
    assert again is not first
    torch.testing.assert_close(out, 2 * x)


def test_launches_from_several_threads(monkeypatch):
    fast, _ = both(axpy, monkeypatch)
    errors = []

    def work(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        for _ in range(50):
            x, y = torch.randn(300, generator=g), torch.randn(300, generator=g)
            out = torch.empty(300)
            fast[(pypto.cdiv(300, 64),)](x, y, out, 300, 0.5, 1, False, BLOCK=64)
            if not torch.allclose(out, x * 0.5 + y + 1):
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_without_the_extension_launches_use_python(monkeypatch):
    monkeypatch.setattr(fastpath, "_module", None)
    monkeypatch.setattr(fastpath, "_failed", True)  # as after a failed build
    k = pypto.jit(axpy)
    x = torch.arange(8, dtype=torch.float32)
    out = torch.empty(8)
    k[(1,)](x, x, out, 8, 2.0, 1, False, BLOCK=8)
    assert type(k._dispatch).__name__ == "_PythonDispatch"
    torch.testing.assert_close(out, 3 * x + 1)


def test_too_many_parameters_for_the_c_path(tmp_path):
    names = [f"p{i}" for i in range(fastpath.MAX_PARAMS + 1)]
    path = tmp_path / "many_params.py"  # kernels compile from a source file
    path.write_text(
        "import pypto_jit.language as pl\n\n"
        f"def many(out_ptr, {', '.join(names)}):\n"
        "    pl.store(out_ptr, pl.load(out_ptr) + 1)\n"
    )
    spec = importlib.util.spec_from_file_location("many_params", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    k = pypto.jit(module.many)
    out = torch.zeros(1)
    k[(1,)](out, *range(len(names)))
    assert type(k._dispatch).__name__ == "_PythonDispatch"
    assert out.item() == 1.0


def scaled(x_ptr, out_ptr, n, FACTOR: pl.constexpr, MODE: pl.constexpr, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    x = pl.load(x_ptr + offs, mask=offs < n)
    if MODE == "neg":
        x = -x
    pl.store(out_ptr + offs, x * FACTOR, mask=offs < n)


def test_constexpr_values_of_every_kind_pick_their_own_kernel(monkeypatch):
    fast, slow = both(scaled, monkeypatch)
    x = torch.arange(8, dtype=torch.float32)
    cases = [(2, "neg"), (2.5, "neg"), (2, "pos"), (True, "pos"), (3, None), (2, "neg")]
    for factor, mode in cases:
        outs = []
        for k in (fast, slow):
            out = torch.empty(8)
            k[(1,)](x, out, 8, FACTOR=factor, MODE=mode, BLOCK=8)
            outs.append(out)
        expected = x * factor * (-1 if mode == "neg" else 1)
        torch.testing.assert_close(outs[0], expected)
        torch.testing.assert_close(outs[1], expected)
    assert list(fast._kernels) == list(slow._kernels)


def test_replacing_a_kernel_in_the_dict_is_seen(monkeypatch):
    fast, _ = both(scaled, monkeypatch)
    x = torch.arange(8, dtype=torch.float32)
    out = torch.empty(8)
    fast[(1,)](x, out, 8, FACTOR=2, MODE="pos", BLOCK=8)
    fast[(1,)](x, out, 8, FACTOR=3, MODE="pos", BLOCK=8)
    key2, key3 = list(fast._kernels)
    fast._kernels[key2] = fast._kernels[key3]  # the factor-2 key now launches the factor-3 one
    fast[(1,)](x, out, 8, FACTOR=2, MODE="pos", BLOCK=8)
    torch.testing.assert_close(out, 3 * x)


def test_a_hit_through_c_never_generates_the_python_launcher():
    k = pypto.jit(axpy)
    x = torch.arange(8, dtype=torch.float32)
    out = torch.empty(8)
    k[(1,)](x, x, out, 8, 1.0, 0, False, BLOCK=8)
    k[(1,)](x, x, out, 8, 1.0, 0, False, BLOCK=8)
    assert "_launcher" not in vars(k)  # generated lazily, for the Python path only
    torch.testing.assert_close(out, 2 * x)
    k[(1,)](x.numpy(), x, out, 8, 1.0, 0, False, BLOCK=8)  # numpy: the Python path
    assert "_launcher" in vars(k)
