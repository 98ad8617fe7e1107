"""Every tutorial runs (check against torch + a small benchmark) under pytest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "tutorials"
TUTORIALS = sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))


def _tutorial(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(path, capsys):
    module = _tutorial(path)
    module.main(["--quick"])
    assert "pypto-jit" in capsys.readouterr().out


def test_layer_norm_rejects_rows_past_the_fused_size():
    """Tutorial 05's forward takes a row of at most 64 KB, with and without autograd."""
    import torch

    ln = _tutorial(HERE / "05_layer_norm.py")
    n = 65536 // 4 + 1
    x, w, b = torch.randn(2, n), torch.ones(n), torch.zeros(n)
    with pytest.raises(RuntimeError, match="feature dim >= 64KB"):
        ln.layer_norm(x, (n,), w, b, 1e-5)
    with pytest.raises(RuntimeError, match="feature dim >= 64KB"):
        ln.layer_norm(x.requires_grad_(), (n,), w, b, 1e-5)


def _speed_targets():
    return _tutorial(HERE / "speed_targets.py")


def test_speed_target_verdicts():
    st = _speed_targets()
    assert st.verdict("softmax fp32 4096x1024", 30.0, 1.35) == ("1.1x / 1.3x", "aim met")
    assert st.verdict("softmax fp32 4096x1024", 30.0, 1.2) == ("1.1x / 1.3x", "floor met")
    assert st.verdict("softmax fp32 4096x1024", 30.0, 1.0)[1] == "BELOW FLOOR"
    assert st.verdict("vector add fp32, 2^24", 40.0, 1.2)[1] == "floor met"  # aim: 45 GB/s
    assert st.verdict("vector add fp32, 2^24", 46.0, 1.2)[1] == "aim met"
    assert st.verdict("launch, cache hit (16 elements)", 1.2, 0.9)[1] == "floor met"
    assert st.verdict("launch, cache hit (16 elements)", 1.6, 0.7)[1] == "BELOW FLOOR"
    assert st.verdict("first call, new process, warm cache", 1.5, None)[1] == "aim met"


def test_a_row_is_its_median_run():
    runs = [["softmax", 30.0, 27.0, "GB/s", 1.11], ["softmax", 20.0, 27.0, "GB/s", 0.74],
            ["softmax", 33.0, 26.0, "GB/s", 1.27]]  # fmt: skip
    assert _speed_targets().median_run(runs) == runs[0]


def test_first_call_rows_measure_fresh_processes():
    (cold, warm) = _speed_targets().first_call_rows(1)
    assert cold[0].startswith("first call, empty") and cold[1] > 0
    assert warm[0].startswith("first call, new process") and warm[1] > 0
