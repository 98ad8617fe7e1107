"""The prelude's erf coefficients are what ``tests/tools/fit_erf_table.py`` fits today.

Compared within about four float ulps: the fit runs LAPACK, whose last bits may differ between
machines and libraries before each coefficient is rounded to float.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from pypto_jit.codegen import prelude

_LITERAL = re.compile(r"-?0x[0-9a-f.]+p[-+]?\d+f|0\.0f")


def _values(text: str) -> np.ndarray:
    return np.array([float.fromhex(t[:-1]) if "x" in t else 0.0 for t in _LITERAL.findall(text)])


def test_the_erf_table_is_the_fitted_one():
    path = Path(__file__).resolve().parent.parent / "tools" / "fit_erf_table.py"
    spec = importlib.util.spec_from_file_location("fit_erf_table", path)
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    text = prelude.prelude("pypto_erff")
    start = text.index("pypto_erf_tab[5][32] __attribute__((aligned(64))) = {")
    ours = _values(text[start : text.index("};", start)].split("= {", 1)[1])
    fitted = _values(fit.c_table())
    assert ours.shape == fitted.shape == (5 * 32,)
    np.testing.assert_allclose(ours, fitted, rtol=3e-7, atol=0)
