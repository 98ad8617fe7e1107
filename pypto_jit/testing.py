"""Checking and timing kernels: ``do_bench``, ``assert_close``, ``Benchmark`` + ``perf_report``.

Follows ``triton.testing``: ``do_bench`` returns milliseconds (the median, or the
requested quantiles), and ``perf_report`` turns a function of (x, provider) into
a table (and a PNG plot when matplotlib is installed).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_FLUSH_BYTES = 64 * 1024 * 1024  # larger than the last-level cache of the machines we run on
_flush_buffer: np.ndarray | None = None


def do_bench(
    fn: Callable[[], Any],
    warmup: int = 5,
    rep: int = 50,
    quantiles: Sequence[float] | None = None,
    flush_cache: bool = False,
    min_time: float = 0.05,
    settle: float = 0.0,
) -> Any:
    """Time ``fn()``: the median in milliseconds, or the given ``quantiles`` of the runs.

    Runs at least ``rep`` times and at least ``min_time`` seconds in all.
    ``flush_cache`` writes a buffer bigger than the caches before every run (its
    cost is not timed), to measure from memory rather than cache. ``settle``
    sleeps first, so thread pools that spin after the previous benchmark (torch's,
    BLAS's) have gone idle and do not steal the cores.
    """
    if settle:
        time.sleep(settle)
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < rep or time.perf_counter() - start < min_time:
        if flush_cache:
            _flush()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    if quantiles is None:
        return statistics.median(times)
    return [float(np.quantile(times, q)) for q in quantiles]


def bench_interleaved(
    fns: dict[str, Callable[[], Any]],
    rounds: int = 5,
    settle: float = 0.05,
    per_turn: int = 3,
    warm: float = 0.05,
) -> dict[str, float]:
    """Median milliseconds per call of each of ``fns``, measured in ``rounds`` rounds in
    which they take turns, so that a noisy neighbour slows them all alike.

    Each turn sleeps ``settle`` seconds (torch's and BLAS's worker threads spin for a
    while after their last call and would steal the cores being measured), runs
    untimed for ``warm`` seconds (woken pool threads need that long to move to their own
    cores), then times ``per_turn`` calls.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            time.sleep(settle)
            end = time.perf_counter() + warm
            fn()
            while time.perf_counter() < end:
                fn()
            for _ in range(per_turn):
                t0 = time.perf_counter()
                fn()
                times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def _flush() -> None:
    global _flush_buffer
    if _flush_buffer is None:
        _flush_buffer = np.empty(_FLUSH_BYTES // 8, dtype=np.int64)
    _flush_buffer.fill(0)


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


def save_table(out_dir: str | None, name: str, text: str, append: bool = False) -> None:
    """Write ``text`` to ``<out_dir>/<name>.md`` (created if needed); nothing if no out_dir."""
    if not out_dir:
        return
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.md"), "a" if append else "w") as f:
        f.write(("\n" if append else "") + text + "\n")


def tutorial_args(doc: str, argv: Sequence[str] | None = None) -> Any:
    """The command line every tutorial takes: ``--quick``, ``--bench``, ``--out DIR``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for tests")
    parser.add_argument("--bench", action="store_true", help="benchmark only (full sizes)")
    parser.add_argument("--out", default=None, help="directory for the benchmark table")
    return parser.parse_args(argv)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.2f}" if abs(x) < 1e4 else f"{x:.3g}"
    return str(x)


# -- Triton-style benchmark reports ------------------------------------------------------
@dataclass
class Benchmark:
    """One benchmark: x values on one axis, a line per provider, as ``triton.testing``."""

    x_names: list[str]
    x_vals: list[Any]
    line_arg: str
    line_vals: list[Any]
    line_names: list[str]
    plot_name: str
    args: dict[str, Any] = field(default_factory=dict)
    xlabel: str = ""
    ylabel: str = ""
    x_log: bool = False
    y_log: bool = False
    styles: list[tuple[str, str]] | None = None


class Mark:
    """What ``perf_report`` returns: call ``.run(print_data=True, save_path=...)``."""

    def __init__(self, fn: Callable[..., Any], benchmarks: Benchmark | list[Benchmark]):
        self.fn = fn
        self.benchmarks = benchmarks if isinstance(benchmarks, list) else [benchmarks]

    def run(
        self, print_data: bool = False, save_path: str | None = None, show_plots: bool = False
    ) -> list[list[list[Any]]]:
        """Measure every (x, line); print tables, write ``<plot_name>.md`` and ``.png``."""
        tables = []
        for bench in self.benchmarks:
            rows = []
            for x in bench.x_vals:
                xs = x if isinstance(x, (list, tuple)) else [x] * len(bench.x_names)
                kwargs = {**dict(zip(bench.x_names, xs, strict=True)), **bench.args}
                row = list(xs[:1]) if len(bench.x_names) == 1 else list(xs)
                for line in bench.line_vals:
                    value = self.fn(**kwargs, **{bench.line_arg: line})
                    row.append(value[0] if isinstance(value, (tuple, list)) else value)
                rows.append(row)
            header = [*bench.x_names, *bench.line_names]
            tables.append(rows)
            if print_data:
                print_table(f"{bench.plot_name} ({bench.ylabel})", header, rows)
            if save_path:
                _save(bench, header, rows, save_path, show_plots)
        return tables


def perf_report(benchmarks: Benchmark | list[Benchmark]) -> Callable[[Callable], Mark]:
    """Decorator: ``@perf_report(Benchmark(...)) def bench(x, provider): ...`` then ``.run()``."""
    return lambda fn: Mark(fn, benchmarks)


def _save(
    bench: Benchmark, header: list[str], rows: list[list[Any]], save_path: str, show: bool
) -> None:
    os.makedirs(save_path, exist_ok=True)
    base = os.path.join(save_path, bench.plot_name)
    with open(base + ".md", "w") as f:
        f.write(f"| {' | '.join(header)} |\n|{'---|' * len(header)}\n")
        for row in rows:
            f.write(f"| {' | '.join(_fmt(c) for c in row)} |\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the markdown table is always written; the plot needs matplotlib
    n_x = len(bench.x_names) if len(bench.x_names) > 1 else 1
    fig, ax = plt.subplots()
    xs = [r[0] for r in rows]
    for i, name in enumerate(bench.line_names):
        style = bench.styles[i] if bench.styles else None
        kw = {"color": style[0], "linestyle": style[1]} if style else {}
        ax.plot(xs, [r[n_x + i] for r in rows], label=name, **kw)
    ax.set_xlabel(bench.xlabel or bench.x_names[0])
    ax.set_ylabel(bench.ylabel)
    ax.set_xscale("log" if bench.x_log else "linear")
    ax.set_yscale("log" if bench.y_log else "linear")
    ax.set_title(bench.plot_name)
    ax.legend()
    fig.savefig(base + ".png")
    if show:
        plt.show()
    plt.close(fig)
