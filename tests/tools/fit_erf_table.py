"""Fit the coefficient table of the prelude's erf (``pypto_erf_tab`` in codegen/prelude.py).

    python tests/tools/fit_erf_table.py     # prints the C table

erf on |x| <= 3.92 is cut into 32 intervals of width 1/8 centred on k/8 (the lane's
interval is |x| + 2^20 rounded to a multiple of 1/8: its low mantissa bits are k). Each
interval has a degree-4 polynomial in d = |x| - k/8 whose constant term is erf(k/8)
rounded to float, so that the result is one FMA of that constant and a small correction.
Intervals 0-2 (|x| <= 5/16) instead share ``|x| + |x| q(x^2)``, q of degree 3: near 0 a
result relative to |x| needs no cancellation, and around the binades of erf there
(0.0625, 0.125, 0.25) the correction would be as large as the result.

Coefficients are fitted one at a time, lowest order first, each rounded to float before
the next is refitted, minimizing the largest error in float ulps of the result (Lawson's
iteration on weighted least squares). The worst error of the table now in the prelude is
0.98 ulp, over every float (``tests/e2e/test_prelude_math.py`` with PYPTO_EXHAUSTIVE=1).
Needs only numpy.
"""

from __future__ import annotations

import math

import numpy as np

INTERVALS = 32
WIDTH = 1 / 8
DEGREE = 4
SMALL_INTERVALS = 3  # |x| <= 5/16
SATURATE = 3.92  # erf rounds to 1 beyond
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _f32(v: float) -> float:
    return float(np.float32(v))


def _ulp(v: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(v).astype(np.float32)).astype(np.float64)


def _lawson(a: np.ndarray, y: np.ndarray, scale: np.ndarray, iters: int = 300) -> np.ndarray:
    """Coefficients minimizing max |a @ c - y| * scale (weighted least squares, reweighted)."""
    w = np.full(len(y), 1 / len(y))
    best, best_err = None, math.inf
    for _ in range(iters):
        s = np.sqrt(w) * scale
        sol = np.linalg.lstsq(a * s[:, None], y * s, rcond=None)[0]
        err = np.abs(a @ sol - y) * scale
        if err.max() < best_err:
            best, best_err = sol, err.max()
        w = w * (err + 1e-30)
        w /= w.sum()
    return best


def _one_at_a_time(a: np.ndarray, y: np.ndarray, scale: np.ndarray, fixed: list) -> list:
    coefs = list(fixed)
    for j in range(len(coefs), a.shape[1]):
        rest = y - (a[:, :j] @ np.array(coefs) if j else 0)
        coefs.append(_f32(_lawson(a[:, j:], rest, scale)[0]))
    return coefs


def fit_interval(k: int) -> list[float]:
    """The DEGREE + 1 coefficients of interval ``k``, constant term first."""
    if k < SMALL_INTERVALS:  # |x| + |x| q(x^2): the constant term is unused
        x = np.linspace(0, (SMALL_INTERVALS - 0.5) * WIDTH, 6001)[1:]
        basis = np.vander(x * x, DEGREE, increasing=True) * x[:, None]
        return [0.0, *_one_at_a_time(basis, _erf(x) - x, 1 / _ulp(_erf(x)), [])]
    centre = k * WIDTH
    top = WIDTH / 2 if k < INTERVALS - 1 else SATURATE - centre
    d = np.linspace(-WIDTH / 2, top, 4001)
    y = _erf(centre + d)
    basis = np.vander(d, DEGREE + 1, increasing=True)
    return _one_at_a_time(basis, y, 1 / _ulp(y), [_f32(math.erf(centre))])


def _literal(v: float) -> str:
    if v == 0:
        return "0.0f"
    mantissa, exponent = float.hex(v).split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"


def c_table() -> str:
    """The rows of ``pypto_erf_tab``: row j holds the d^j coefficients of the intervals."""
    table = [fit_interval(k) for k in range(INTERVALS)]
    rows = []
    for j in range(DEGREE + 1):
        lits = [_literal(table[k][j]) for k in range(INTERVALS)]
        lines = [", ".join(lits[i : i + 5]) for i in range(0, INTERVALS, 5)]
        rows.append("  {" + ",\n   ".join(lines) + "},")
    return "\n".join(rows)


if __name__ == "__main__":
    print(c_table())
