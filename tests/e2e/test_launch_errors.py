"""Bad launches raise TypeError/ValueError naming what is wrong."""

from __future__ import annotations

import pytest
import torch

import pypto_jit as pypto
import pypto_jit.language as pl


@pypto.jit
def scale_kernel(x_ptr, out_ptr, n, BLOCK: pl.constexpr):
    offs = pl.program_id(0) * BLOCK + pl.arange(0, BLOCK)
    pl.store(out_ptr + offs, pl.load(x_ptr + offs, mask=offs < n) * 2, mask=offs < n)


def test_call_without_grid_is_a_type_error():
    with pytest.raises(TypeError, match=r"scale_kernel\[grid\]"):
        scale_kernel(torch.zeros(4), torch.zeros(4), 4, BLOCK=4)


def test_four_dimensional_grid_is_rejected(backend):
    with pytest.raises(ValueError, match="grid"):
        scale_kernel[(1, 1, 1, 1)](torch.zeros(4), torch.zeros(4), 4, BLOCK=4, backend=backend)


def test_list_argument_names_the_parameter(backend):
    with pytest.raises(TypeError, match="'x_ptr'"):
        scale_kernel[(1,)]([1.0, 2.0], torch.zeros(2), 2, BLOCK=4, backend=backend)


def test_missing_constexpr_names_it(backend):
    with pytest.raises(TypeError, match="'BLOCK'"):
        scale_kernel[(1,)](torch.zeros(4), torch.zeros(4), 4, backend=backend)


def test_unknown_keyword(backend):
    with pytest.raises(TypeError, match="'BLOCKSIZE'"):
        scale_kernel[(1,)](torch.zeros(4), torch.zeros(4), 4, BLOCKSIZE=4, backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        pypto.jit(backend="gpu")(lambda x: None)


def test_empty_grid_launches_nothing(backend):
    out = torch.full((8,), 7.0)
    scale_kernel[(0,)](torch.ones(8), out, 8, BLOCK=8, backend=backend)
    assert torch.equal(out, torch.full((8,), 7.0))


@pypto.jit
def names_like_locals(b, p, s, key, kernel, N: pl.constexpr):
    o = pl.arange(0, N)
    pl.store(kernel + o, pl.load(b + o) + pl.load(p + o) * s + key)


def test_parameter_names_do_not_clash_with_the_launcher(backend):
    b, p, out = torch.randn(8), torch.randn(8), torch.zeros(8)
    names_like_locals[(1,)](b, p, 3.0, 2, out, N=8, backend=backend)
    torch.testing.assert_close(out, b + p * 3.0 + 2)
