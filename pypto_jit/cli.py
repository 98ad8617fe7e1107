"""``python -m pypto_jit`` (installed as ``pypto-jit``): look into the cache, build the runtime.

pypto-jit cache path                  where the cache lives
pypto-jit cache list                  one line per compiled kernel
pypto-jit cache show KEY              an entry's metadata (a unique key prefix will do)
pypto-jit cache stats                 entry count and total size
pypto-jit cache clear                 remove every entry
pypto-jit cache prune [--max-bytes N] evict least-recently-used entries to fit N bytes
pypto-jit runtime build               build the C runtime shim and launch path now
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import cache, config

_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def human_size(n: int) -> str:
    """12345 -> '12.1 KiB' (binary units, one decimal; bytes as a whole number)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def human_age(seconds: float) -> str:
    """Coarse age as in `ls`-style tools: 42s, 5m, 2h, 3d."""
    seconds = max(0, int(seconds))
    for unit, width in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= width:
            return f"{seconds // width}{unit}"
    return f"{seconds}s"


def parse_size(text: str) -> int:
    """'1048576', '512k', '64M', '2GiB' -> bytes (binary multiples)."""
    s = text.strip().lower().removesuffix("ib").removesuffix("b")
    suffix = s[-1:] if s[-1:] in _SIZE_SUFFIXES else ""
    number = s[: len(s) - len(suffix)]
    try:
        value = float(number) * _SIZE_SUFFIXES[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1048576 or 64M)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"size must not be negative: {text!r}")
    return int(value)


def _text(value: Any, width: int) -> str:
    """A table cell: strings as-is, anything else as compact JSON, cut to ``width``."""
    if value is None:
        s = "-"
    elif isinstance(value, str):
        s = value
    else:
        s = json.dumps(value, separators=(",", ":"))
    return s if len(s) <= width else s[: width - 1] + "…"


# -------------------------------------------------------------------- commands


def _cache_path(args: argparse.Namespace) -> int:
    print(config.cache_dir())
    return 0


def _cache_list(args: argparse.Namespace) -> int:
    entries = sorted(cache.list_entries(), key=lambda e: e["last_used"], reverse=True)
    if not entries:
        print(f"no cached kernels in {config.cache_dir()}")
        return 0
    now = time.time()
    rows = [
        (
            e["key"][:12],
            _text(e["name"], 32),
            _text(e.get("backend") or "", 9),
            _text(e["signature"], 64),
            human_size(e["size"]),
            human_age(now - e["created"]),
        )
        for e in entries
    ]
    header = ("KEY", "NAME", "BACKEND", "SIGNATURE", "SIZE", "AGE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        # Text columns left-aligned, numbers right-aligned.
        pairs = enumerate(zip(r, widths, strict=True))
        cells = [c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in pairs]
        print("  ".join(cells).rstrip())
    return 0


def _cache_show(args: argparse.Namespace) -> int:
    try:
        info = cache.show(args.key)
    except KeyError as e:
        print(f"pypto-jit: {e.args[0]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    files = info.pop("files", {}) or {}
    if info.get("problem") is None:
        info.pop("problem", None)
    for k in sorted(info):
        v = info[k]
        if k == "created" and isinstance(v, (int, float)):
            v = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(v))} ({v})"
        print(f"{k + ':':<14}{v if isinstance(v, str) else json.dumps(v)}")
    print("files:")
    for name, rec in sorted(files.items()):
        size = rec.get("size") if isinstance(rec, dict) else None
        shown = human_size(size) if isinstance(size, int) else "?"
        print(f"  {name:<24}{shown:>12}")
    return 0


def _cache_stats(args: argparse.Namespace) -> int:
    s = cache.stats()
    print(f"dir:      {s['dir']}")
    print(f"entries:  {s['count']}")
    print(f"size:     {human_size(s['total_bytes'])} ({s['total_bytes']} bytes)")
    limit = _env_max_bytes()
    if limit is not None:
        print(f"limit:    {human_size(limit)} (PYPTO_CACHE_MAX_BYTES)")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    n = cache.clear()
    print(f"removed {n} {'entry' if n == 1 else 'entries'} from {config.cache_dir()}")
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    limit = args.max_bytes if args.max_bytes is not None else _env_max_bytes()
    if limit is None:
        print(
            "pypto-jit: cache prune needs a size: pass --max-bytes N or set PYPTO_CACHE_MAX_BYTES",
            file=sys.stderr,
        )
        return 2
    n = cache.prune(limit)
    left = cache.stats()
    print(
        f"removed {n} {'entry' if n == 1 else 'entries'}; "
        f"{left['count']} left, {human_size(left['total_bytes'])} (limit {human_size(limit)})"
    )
    return 0


def _env_max_bytes() -> int | None:
    try:
        return config.cache_max_bytes()
    except ValueError:
        print("pypto-jit: ignoring PYPTO_CACHE_MAX_BYTES: not an integer", file=sys.stderr)
        return None


def _runtime_build(args: argparse.Namespace) -> int:
    # Imported here: the shim needs cffi and a C compiler, which the cache
    # commands do not.
    from pypto_jit.runtime import fastpath
    from pypto_jit.runtime.shim import runtime

    print(runtime().path)
    try:
        print(fastpath.build_extension())
    except Exception as exc:  # launches still work, through Python
        print(f"pypto-jit: the C launch path was not built ({exc}); launches use Python")
    return 0


# ---------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pypto-jit", description="pypto-jit: inspect the kernel cache, build the runtime."
    )
    top = p.add_subparsers(dest="group", metavar="{cache,runtime}", required=True)

    c = top.add_parser("cache", help="inspect or empty the on-disk kernel cache")
    cs = c.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cs.add_parser("path", help="print the cache directory").set_defaults(fn=_cache_path)
    cs.add_parser("list", help="list cached kernels").set_defaults(fn=_cache_list)
    show = cs.add_parser("show", help="show one entry's metadata and files")
    show.add_argument("key", help="cache key or a unique prefix of one")
    show.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    show.set_defaults(fn=_cache_show)
    cs.add_parser("stats", help="entry count and total size").set_defaults(fn=_cache_stats)
    cs.add_parser("clear", help="remove every entry").set_defaults(fn=_cache_clear)
    prune = cs.add_parser("prune", help="evict least-recently-used entries to fit a size")
    prune.add_argument(
        "--max-bytes",
        type=parse_size,
        metavar="N",
        help="size to fit in (e.g. 1000000, 512M); default: PYPTO_CACHE_MAX_BYTES",
    )
    prune.set_defaults(fn=_cache_prune)

    r = top.add_parser("runtime", help="the C runtime shim")
    rs = r.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rs.add_parser("build", help="build the runtime shim now and print its path").set_defaults(
        fn=_runtime_build
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (argparse exits with 2 on bad usage)."""
    args = _parser().parse_args(argv)
    return args.fn(args)
