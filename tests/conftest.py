"""Shared test setup: a private kernel cache per test session, backends to parametrize over."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Tests never touch the user's cache. Each xdist worker gets its own directory.
if "PYPTO_TEST_KEEP_CACHE_DIR" not in os.environ:
    os.environ["PYPTO_CACHE_DIR"] = tempfile.mkdtemp(prefix="pypto-test-cache-")
    atexit.register(shutil.rmtree, os.environ["PYPTO_CACHE_DIR"], ignore_errors=True)

BACKENDS = ["cpu", "sim", "interpret"]
C_BACKENDS = ["cpu", "sim"]


def have_cc() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CC") or "cc", "gcc", "clang"))


needs_cc = pytest.mark.skipif(not have_cc(), reason="no C compiler on this machine")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param != "interpret" and not have_cc():
        pytest.skip("no C compiler on this machine")
    return request.param
