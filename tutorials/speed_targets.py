"""The speed targets, measured in one run beside torch: the table `make bench` ends with.

Each row times the tutorial's own kernel against the torch reference with
interleaved rounds (medians), or, for the launch and first-call rows, the
latency itself. Each row runs in fresh processes (five by default, taken in
turns with the other rows) and the table shows the run with the median ratio: on
a shared machine one process now and then runs a whole row slow. First calls run
in fresh processes: one with an empty kernel cache (the runtime shim already
built, as `make install` leaves it) and one whose cache already holds the kernel.

    python tutorials/speed_targets.py [--rounds 5] [--processes 5] [--out build/bench]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import pypto_jit as pypto
from pypto_jit.testing import bench_interleaved, per_call, print_table, save_table

HERE = Path(__file__).resolve().parent


def tutorial(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Twenty timed calls per turn after 0.2 s of warm-up: with three, a turn that caught the
# pool's worker still on the caller's core now and then halved a whole row's median.
SAMPLING = dict(per_turn=20, warm=0.2)


def vector_add_row(rounds: int) -> list:
    add = tutorial("01_vector_add")
    x, y = torch.rand(2**24), torch.rand(2**24)
    out = torch.empty_like(x)
    t = bench_interleaved(
        {"pypto": lambda: add.add(x, y, out), "torch": lambda: torch.add(x, y, out=out)},
        rounds,
        **SAMPLING,
    )
    return _gbps("vector add fp32, 2^24", 3 * x.numel() * 4, t)


def softmax_row(rounds: int) -> list:
    softmax = tutorial("02_fused_softmax")
    x = torch.randn(4096, 1024)
    t = bench_interleaved(
        {"pypto": lambda: softmax.softmax(x), "torch": lambda: torch.softmax(x, dim=1)},
        rounds,
        **SAMPLING,
    )
    return _gbps("softmax fp32 4096x1024", 2 * x.numel() * 4, t)


def layer_norm_row(rounds: int) -> list:
    ln = tutorial("05_layer_norm")
    x, w, b, _ = ln._inputs(4096, 1024)

    def ln_pypto():
        with torch.no_grad():
            return ln.layer_norm(x, (1024,), w, b, 1e-5)

    def ln_torch():
        with torch.no_grad():
            return torch.nn.functional.layer_norm(x, (1024,), w, b, 1e-5)

    t = bench_interleaved({"pypto": ln_pypto, "torch": ln_torch}, rounds, **SAMPLING)
    return _gbps("layer norm fwd 4096x1024", 2 * x.numel() * 4, t)


def bias_gelu_row(rounds: int) -> list:
    gelu = tutorial("06_bias_gelu")
    x, bias = torch.randn(4096, 1024), torch.randn(1024)
    out = torch.empty_like(x)
    t = bench_interleaved(
        {"pypto": lambda: gelu.bias_gelu(x, bias, out), "torch": lambda: gelu.reference(x, bias)},
        rounds,
        **SAMPLING,
    )
    return _gbps("bias + GELU(erf) 4096x1024", 2 * x.numel() * 4, t)


def matmul_row(rounds: int) -> list:
    mm = tutorial("03_matmul")
    a, bm = torch.randn(1024, 1024), torch.randn(1024, 1024)
    fns = {mm._name(c): (lambda c=c: mm.matmul(a, bm, config=c)) for c in mm.CONFIGS}
    fns["torch"] = lambda: torch.mm(a, bm)
    t = bench_interleaved(fns, rounds, **SAMPLING)
    best = min((k for k in t if k != "torch"), key=t.get)
    flops = 2 * 1024**3
    ours, theirs = flops / t[best] / 1e6, flops / t["torch"] / 1e6
    return [f"matmul fp32 1024^3 ({best})", ours, theirs, "GFLOP/s", t["torch"] / t[best]]


def launch_row(rounds: int) -> list:
    add = tutorial("01_vector_add")
    x, y = torch.rand(16), torch.rand(16)
    out = torch.empty_like(x)
    add.add_kernel[(1,)](x, y, out, 16, BLOCK_SIZE=16)
    ours = statistics.median(
        per_call(lambda: add.add_kernel[(1,)](x, y, out, 16, BLOCK_SIZE=16)) for _ in range(rounds)
    )
    theirs = statistics.median(per_call(lambda: torch.add(x, y, out=out)) for _ in range(rounds))
    return ["launch, cache hit (16 elements)", ours * 1e6, theirs * 1e6, "us", theirs / ours]


# Each row runs in a process of its own: what one benchmark leaves behind (the allocator's
# state, 200 MB of freed vectors, woken pools) must not slow or speed up the next.
ROWS = {
    "vector_add": vector_add_row,
    "softmax": softmax_row,
    "layer_norm": layer_norm_row,
    "bias_gelu": bias_gelu_row,
    "matmul": matmul_row,
    "launch": launch_row,
}


def measured_rows(rounds: int, processes: int) -> list[list]:
    """Each row measured in ``processes`` fresh processes, taken in turns (a slow spell of
    the machine then hits every row alike); a row is the run with the median ratio."""
    runs: dict[str, list] = {name: [] for name in ROWS}
    for _ in range(processes):
        for name in ROWS:
            cmd = [sys.executable, __file__, "--row", name, "--rounds", str(rounds)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            runs[name].append(json.loads(done.stdout.splitlines()[-1]))
    return [median_run(r) for r in runs.values()]


def median_run(runs: list[list]) -> list:
    """The run (a row: name, ours, torch, unit, ratio) whose ratio is the median."""
    return sorted(runs, key=lambda row: row[-1])[len(runs) // 2]


def _gbps(name: str, nbytes: int, t: dict) -> list:
    return [
        name,
        nbytes / t["pypto"] / 1e6,
        nbytes / t["torch"] / 1e6,
        "GB/s",
        t["torch"] / t["pypto"],
    ]


# Run in a fresh interpreter: imports, then the first launch, timed on its own.
FIRST_CALL = """
import sys, time
sys.path.insert(0, {here!r})
import torch
import pypto_jit
spec = __import__("importlib.util").util.spec_from_file_location("va", {path!r})
va = __import__("importlib.util").util.module_from_spec(spec)
spec.loader.exec_module(va)
x = torch.rand(1024); y = torch.rand(1024); out = torch.empty_like(x)
t0 = time.perf_counter()
va.add_kernel[(1,)](x, y, out, 1024, BLOCK_SIZE=1024)
print(time.perf_counter() - t0)
assert torch.equal(out, x + y)
"""


def first_call_rows(runs: int) -> list[list]:
    code = FIRST_CALL.format(here=str(HERE), path=str(HERE / "01_vector_add.py"))
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="pypto-first-call-") as cache:
            env = dict(os.environ, PYPTO_CACHE_DIR=cache)
            build = [sys.executable, "-m", "pypto_jit", "runtime", "build"]
            subprocess.run(build, env=env, check=True, capture_output=True)
            cold.append(_run_timed(code, env))
            warm.append(_run_timed(code, env))
    return [
        ["first call, empty kernel cache", statistics.median(cold) * 1e3, None, "ms", None],
        ["first call, new process, warm cache", statistics.median(warm) * 1e3, None, "ms", None],
    ]


def _run_timed(code: str, env: dict) -> float:
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return float(done.stdout.split()[-1])


# name prefix -> (floor, aim, what is compared): "ratio" (torch time / ours, higher is
# better), "value" (our number, higher is better) or "latency" (our number, lower is better).
TARGETS = {
    "vector add": ((1.0, "ratio"), (45.0, "value")),
    "softmax": ((1.1, "ratio"), (1.3, "ratio")),
    "layer norm": ((1.2, "ratio"), (1.5, "ratio")),
    "bias + GELU": ((2.0, "ratio"), (3.0, "ratio")),
    "matmul": ((0.8, "ratio"), (1.0, "ratio")),
    "launch": ((1.5, "latency"), (1.0, "latency")),
    "first call, empty": ((300.0, "latency"), (150.0, "latency")),
    "first call, new process": ((5.0, "latency"), (2.0, "latency")),
}


def verdict(name: str, ours: float, ratio: float | None) -> tuple[str, str]:
    """("floor / aim" as text, which of them the row reaches)."""
    (floor, aim) = next(v for k, v in TARGETS.items() if name.startswith(k))

    def text(target):
        value, kind = target
        return f"{value:g}x" if kind == "ratio" else f"{value:g}"

    def met(target):
        value, kind = target
        if kind == "ratio":
            return ratio is not None and ratio >= value
        return ours >= value if kind == "value" else ours <= value

    status = "aim met" if met(aim) and met(floor) else "floor met" if met(floor) else "BELOW FLOOR"
    return f"{text(floor)} / {text(aim)}", status


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per row")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per first-call row")
    parser.add_argument(
        "--processes", type=int, default=5, help="fresh processes per measured row (median)"
    )
    parser.add_argument("--out", default=None, help="directory for the table")
    parser.add_argument("--row", choices=ROWS, help="measure one row, print it as JSON")
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(ROWS[args.row](args.rounds)))
        return
    rows = measured_rows(args.rounds, args.processes) + first_call_rows(args.runs)
    table = print_table(
        f"speed targets (pypto-jit {pypto.__version__}, medians; ratio = torch time / ours; "
        f"each row the median of {args.processes} processes)",
        ["benchmark", "pypto-jit", "torch", "unit", "ratio", "floor / aim", "status"],
        [
            [n, _num(a), _num(b), u, "" if r is None else f"{r:.2f}x", *verdict(n, a, r)]
            for n, a, b, u, r in rows
        ],
    )
    save_table(args.out, "speed_targets", table)


def _num(v) -> str:
    return "" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"


if __name__ == "__main__":
    main()
