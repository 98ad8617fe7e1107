"""The source part of the cache key: what must change it, and what it reads to be cheap."""

from __future__ import annotations

import importlib.util
import itertools
import textwrap

import pytest

from pypto_jit.frontend.digest import definition_text, dependency_digest

_names = itertools.count()

HEADER = """
import pypto_jit as pypto
import pypto_jit.language as pl
"""

KERNELS = """
SCALE = pl.constexpr({scale})


@pypto.jit
def helper(x):
    return x * SCALE  # {helper_comment}


@pypto.jit
def kernel(x_ptr, out_ptr, BLOCK: pl.constexpr):
    offs = pl.arange(0, BLOCK)
    pl.store(out_ptr + offs, helper(pl.load(x_ptr + offs)){extra})
    # a comment after the last line of code


def unrelated():
    return {unrelated}
"""


def load(tmp_path, text: str):
    """Import ``text`` as a fresh module from its own file (kernels need a source file)."""
    name = f"digest_case_{next(_names)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_digest(tmp_path, **changes) -> str:
    fields = {"scale": 2, "helper_comment": "x", "extra": "", "unrelated": 1, **changes}
    return dependency_digest(load(tmp_path, HEADER + KERNELS.format(**fields)).kernel)


def test_the_definition_runs_from_the_decorator_to_the_last_line_of_code(tmp_path):
    m = load(tmp_path, HEADER + KERNELS.format(scale=2, helper_comment="x", extra="", unrelated=1))
    text = definition_text(m.kernel.fn)
    assert text.startswith("@pypto.jit\ndef kernel(")
    assert text.rstrip().endswith("helper(pl.load(x_ptr + offs)))")


def test_the_digest_depends_on_nothing_but_what_the_kernel_reaches(tmp_path):
    base = kernel_digest(tmp_path)
    assert kernel_digest(tmp_path) == base  # the same source in another module and file
    assert kernel_digest(tmp_path, unrelated=2) == base
    assert kernel_digest(tmp_path, extra=", mask=offs < BLOCK") != base  # the kernel
    assert kernel_digest(tmp_path, helper_comment="y") != base  # a helper it calls
    assert kernel_digest(tmp_path, scale=3) != base  # a constexpr global a helper reads


def test_a_helper_bound_to_another_function_changes_the_digest(tmp_path):
    m = load(tmp_path, HEADER + KERNELS.format(scale=2, helper_comment="x", extra="", unrelated=1))
    other = load(tmp_path, HEADER + "@pypto.jit\ndef helper(x):\n    return x + 1\n")
    before = dependency_digest(m.kernel)
    m2 = load(tmp_path, HEADER + KERNELS.format(scale=2, helper_comment="x", extra="", unrelated=1))
    m2.helper = other.helper
    assert dependency_digest(m2.kernel) != before


MUTUAL = """
@pypto.jit
def ping(x):
    return x  # pong calls this


@pypto.jit
def pong(x):
    return ping(x)
"""


@pytest.mark.parametrize("first", ["ping", "pong"])
def test_mutual_references_end_and_do_not_depend_on_order(tmp_path, first):
    m = load(tmp_path, HEADER + MUTUAL)
    getattr(m, first).dependency_digest  # noqa: B018 - computed first, then the other
    fresh = load(tmp_path, HEADER + MUTUAL)
    assert m.ping.dependency_digest == dependency_digest(fresh.ping)
    assert m.pong.dependency_digest == dependency_digest(fresh.pong)
    assert m.ping.dependency_digest != m.pong.dependency_digest
