"""Helpers for checking and timing kernels: ``do_bench``, ``assert_close``, ``print_table``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def do_bench(
    fn: Callable[[], Any],
    warmup: int = 5,
    rep: int = 50,
    quantiles: Sequence[float] | None = None,
    min_time: float = 0.05,
) -> Any:
    """Time ``fn()`` in seconds: the median (or the requested quantiles) of ``rep`` runs.

    Runs at least ``rep`` times and at least ``min_time`` seconds in all, so short
    calls are measured over many repetitions.
    """
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < rep or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    if quantiles is None:
        return statistics.median(times)
    return [float(np.quantile(times, q)) for q in quantiles]


def per_call(fn: Callable[[], Any], calls: int = 1000, reps: int = 7) -> float:
    """Median seconds per call of a very short ``fn``, timed in batches of ``calls``."""
    results = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - t0) / calls)
    return statistics.median(results)


def assert_close(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """numpy's ``assert_allclose`` on torch tensors or numpy arrays (NaNs must match)."""
    np.testing.assert_allclose(_np(actual), _np(expected), rtol=rtol, atol=atol)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float() if str(x.dtype) == "torch.bfloat16" else x.detach()
        return x.numpy()
    return np.asarray(x)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print (and return) a plain aligned table."""
    cells = [list(map(str, header))] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    text = "\n".join(lines)
    print(text)
    return text


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.2f}" if abs(x) < 1e4 else f"{x:.3g}"
    return str(x)
