"""Every test and tutorial kernel's IR, lowered and optimized, survives print -> parse.

Needs no C compiler: kernels are lowered for real arguments but never built.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pypto_jit.arguments import arg_key
from pypto_jit.ir import structurally_equal
from pypto_jit.ir.parser import parse_module
from pypto_jit.ir.printer import print_module
from pypto_jit.pipeline import compile_module

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_roundtrip_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lower(kernel, *args, **kwargs):
    bound, _ = kernel._bind(args, kwargs)
    key = ["cpu"] + [
        (a,) if kernel._constexpr_flags[i] or a is None else arg_key(kernel.arg_names[i], a, [], [])
        for i, a in enumerate(bound)
    ]
    return compile_module(kernel.source, kernel.arg_names, kernel.specs(bound, tuple(key)), {})


def _cases():
    va = _load(ROOT / "tests/e2e/test_vector_add.py")
    t01 = _load(ROOT / "tutorials/01_vector_add.py")
    x, y, out = torch.rand(1000), torch.rand(1000), torch.empty(1000)
    m = torch.rand(7, 50)
    return {
        "add_kernel": (va.add_kernel, (x, y, out, 1000), {"BLOCK_SIZE": 300}),
        "add_unmasked": (va.add_unmasked, (x, y, out), {"BLOCK_SIZE": 1000}),
        "copy_bool": (va.copy_kernel, (x > 0.5, x > 0.5, 1000), {"BLOCK": 128}),
        "rebind": (va.rebind_kernel, (m, m, 50, 50), {"BLOCK": 64}),
        "constexpr_if": (va.constexpr_if_kernel, (x, out, 1000), {"SQUARE": True, "BLOCK": 64}),
        "for_range": (va.row_sum_loop, (m, out, 7, 50), {"BLOCK": 32}),
        "runtime_if": (va.runtime_if_kernel, (x, out, 1000, 2), {"BLOCK": 100}),
        "tutorial_01": (t01.add_kernel, (x, y, out, 1000), {"BLOCK_SIZE": 1024}),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_ir_round_trips(name):
    kernel, args, kwargs = CASES[name]
    lowered, optimized = _lower(kernel, *args, **kwargs)
    for module in (lowered, optimized):
        text = print_module(module)
        again = parse_module(text)
        assert structurally_equal(again, module)
        assert print_module(again) == text
