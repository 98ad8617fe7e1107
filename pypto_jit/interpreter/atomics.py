"""Rules for ATOMIC_RMW and ATOMIC_CAS.

A block atomic acts lane by lane in row-major order, each lane seeing the
effect of the earlier ones, and returns the value each lane found (0 for
masked-off lanes, which touch nothing). Lanes that hit different elements
are independent, so the lanes are applied in rounds: round ``r`` holds the
``r``-th lane (in row-major order) of every address, and within a round the
addresses are distinct and can be updated as one numpy operation.

Semantics per kind (``old`` in memory, ``new`` from the lane):

* ``add``: ``old + new`` in the type's arithmetic (ints wrap; f16/bf16 add in
  f32 and round);
* ``max`` / ``min``: store ``new`` if ``new > old`` (``new < old``), as C's
  "compare, then store" loop does: a NaN ``new`` never replaces anything and a
  NaN in memory stays (NaN propagation is not required of atomics);
* ``and`` / ``or`` / ``xor``: bitwise; ``xchg``: store ``new``.

ATOMIC_CAS stores ``value`` where memory equals ``cmp`` bit for bit (as C's
``atomic_compare_exchange`` compares object representations): for floats,
-0.0 does not match 0.0 and a NaN matches the same NaN bits.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..ir.ops import Op
from ..ir.types import ScalarType, scalar_of
from .memory import TensorArg, check_bounds
from .numerics import ARITH, F32, bf16_bits, bf16_to_f32, scalarize
from .registry import Ptr, register


def _rounds(offs: np.ndarray) -> Iterator[np.ndarray]:
    """Split positions of ``offs`` into rounds of distinct offsets, keeping each
    offset's positions in order across rounds."""
    if offs.size == 0:
        return
    order = np.argsort(offs, kind="stable")
    ranked = offs[order]
    pos = np.arange(offs.size)
    first = np.ones(offs.size, bool)
    first[1:] = ranked[1:] != ranked[:-1]
    rank = np.empty(offs.size, np.int64)
    rank[order] = pos - np.maximum.accumulate(np.where(first, pos, 0))
    by_rank = np.argsort(rank, kind="stable")
    yield from np.split(by_rank, np.cumsum(np.bincount(rank))[:-1])


def _read(tensor: TensorArg, off: np.ndarray) -> np.ndarray:
    raw = tensor.flat[off]
    return bf16_to_f32(raw) if tensor.bf16 else raw


def _write(tensor: TensorArg, off: np.ndarray, value: np.ndarray) -> None:
    tensor.flat[off] = bf16_bits(value) if tensor.bf16 else value


def _in_type(t: ScalarType, fn, old, new):
    """``fn(old, new)`` in the compute format of ``t``, rounded back to ``t``."""
    widen, narrow = ARITH.get(t.name, (None, None))
    if widen is not None:
        old, new = widen(old), widen(new)
    out = fn(old, new)
    return np.asarray(narrow(out) if narrow is not None else out)


_COMBINE = {
    "add": np.add,
    "max": lambda old, new: np.where(new > old, new, old),
    "min": lambda old, new: np.where(new < old, new, old),
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "xor": np.bitwise_xor,
    "xchg": lambda old, new: new,
}


def _lanes(ptr: Ptr, *values):
    """Flat (offsets, values...) in row-major lane order, and the block shape."""
    off = np.asarray(ptr.off)
    flat = [np.broadcast_to(np.asarray(v), off.shape).reshape(-1) for v in values]
    return off.shape, off.reshape(-1), flat


@register(Op.ATOMIC_RMW)
def _atomic_rmw(ctx, op, ptr: Ptr, value, mask=None):
    kind = op.attr("kind")
    t = scalar_of(op.operands[1].type)
    tensor = ctx.tensors[ptr.param]
    shape, off, (new,) = _lanes(ptr, value)
    mask_flat = None if mask is None else np.broadcast_to(np.asarray(mask), shape).reshape(-1)
    check_bounds(ctx, op, f"atomic_{kind} on", tensor, off, mask_flat)
    old = np.zeros(off.shape, new.dtype)  # masked-off lanes return 0
    active = np.arange(off.size) if mask_flat is None else np.flatnonzero(mask_flat)
    combine = _COMBINE[kind]
    for lanes in _rounds(off[active]):
        lanes = active[lanes]
        cur = _read(tensor, off[lanes])
        old[lanes] = cur
        _write(tensor, off[lanes], _in_type(t, combine, cur, new[lanes]))
    return scalarize(old.reshape(shape))


def _bits(tensor: TensorArg, values: np.ndarray) -> np.ndarray:
    """Values as they sit in memory, as unsigned integers (for bitwise comparison)."""
    if tensor.bf16:  # held as float32 with the bf16 bits on top: exact, NaNs included
        return (values.astype(F32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    raw = np.ascontiguousarray(values, dtype=tensor.storage)
    return raw.view(f"u{raw.dtype.itemsize}")


@register(Op.ATOMIC_CAS)
def _atomic_cas(ctx, op, ptr: Ptr, cmp, value):
    tensor = ctx.tensors[ptr.param]
    shape, off, (want, new) = _lanes(ptr, cmp, value)
    check_bounds(ctx, op, "atomic_cas on", tensor, off, None)
    old = np.zeros(off.shape, new.dtype)
    for lanes in _rounds(off):
        cur = _read(tensor, off[lanes])
        old[lanes] = cur
        hit = _bits(tensor, cur) == _bits(tensor, want[lanes])
        _write(tensor, off[lanes][hit], new[lanes][hit])
    return scalarize(old.reshape(shape))
