"""pypto_jit.testing: do_bench units and quantiles, perf_report tables and files."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pypto_jit.testing import (
    Benchmark,
    assert_close,
    bench_interleaved,
    do_bench,
    perf_report,
    save_table,
    tutorial_args,
)


def test_do_bench_reports_milliseconds():
    ms = do_bench(lambda: time.sleep(0.002), warmup=1, rep=5, min_time=0.0)
    assert 1.5 < ms < 50


def test_do_bench_quantiles_are_ordered():
    lo, mid, hi = do_bench(
        lambda: sum(range(1000)), rep=20, quantiles=[0.2, 0.5, 0.8], flush_cache=True
    )
    assert 0 < lo <= mid <= hi


def test_perf_report_prints_and_saves(tmp_path, capsys):
    @perf_report(
        Benchmark(
            x_names=["n"],
            x_vals=[1, 2, 3],
            line_arg="p",
            line_vals=[1, 10],
            line_names=["one", "ten"],
            plot_name="demo",
            ylabel="units",
        )
    )
    def bench(n, p):
        return n * p

    tables = bench.run(print_data=True, save_path=str(tmp_path))
    assert tables == [[[1, 1, 10], [2, 2, 20], [3, 3, 30]]]
    out = capsys.readouterr().out
    assert "demo (units)" in out and "ten" in out
    md = (tmp_path / "demo.md").read_text().splitlines()
    assert md[0] == "| n | one | ten |" and md[-1] == "| 3 | 3 | 30 |"


def test_assert_close_catches_a_difference():
    assert_close(np.ones(3), np.ones(3))
    with pytest.raises(AssertionError):
        assert_close(np.ones(3), np.array([1.0, 1.0, 2.0]))


def test_bench_interleaved_warms_before_timing():
    calls = {"a": 0}

    def fn():
        calls["a"] += 1

    result = bench_interleaved({"a": fn}, rounds=1, settle=0.0, per_turn=2, warm=0.01)
    assert set(result) == {"a"} and result["a"] >= 0
    assert calls["a"] > 3  # many untimed warm-up calls, then the two timed ones


def test_save_table_writes_and_appends(tmp_path):
    out = tmp_path / "bench"
    save_table(str(out), "t", "first")
    save_table(str(out), "t", "second", append=True)
    assert (out / "t.md").read_text() == "first\n\nsecond\n"
    save_table(None, "t", "ignored")  # no directory: nothing written
    save_table(str(out), "t", "again")
    assert (out / "t.md").read_text() == "again\n"


def test_tutorial_args():
    args = tutorial_args("A tutorial.\n\nMore text.", ["--quick", "--out", "d"])
    assert (args.quick, args.bench, args.out) == (True, False, "d")
    with pytest.raises(SystemExit):
        tutorial_args("A tutorial.", ["--unknown"])
