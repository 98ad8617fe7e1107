"""IR -> IR passes, run as one flat pipeline, top to bottom.

Each pass is a function ``Module -> Module`` in its own file. The list below is
the whole optimizer; ``run_pipeline`` runs it, verifying after every pass when
asked (the tests always ask) and dumping the IR (``PYPTO_DUMP_IR=1``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir.nodes import Module
from .canonicalize import canonicalize
from .carried_offsets import carry_offsets
from .cse import cse
from .dce import dce
from .fusion import fuse
from .mask_simplify import mask_simplify
from .nowrap import version_nowrap
from .prefix_mask import mark_prefix_masks
from .streaming import stream_stores
from .write_prefetch import prefetch_stores

Pass = Callable[[Module], Module]


def annotate_addresses(m: Module) -> Module:
    """Pointer provenance and contiguity (``address.py``), imported when first run."""
    from .address import annotate_addresses as run

    return run(m)


PIPELINE: list[tuple[str, Pass]] = [
    ("canonicalize", canonicalize),
    ("cse", cse),
    ("dce", dce),
    ("mask_simplify", mask_simplify),
    # Masks folded to constants leave ANDs, WHEREs and compares to clean up.
    ("canonicalize", canonicalize),
    ("dce", dce),
    # Pointer blocks a loop steps uniformly: carried as one scalar offset.
    ("carried_offsets", carry_offsets),
    # Before address: its then branches are where ``x % d`` is unit-stride.
    ("nowrap", version_nowrap),
    # Last: the analyses the renderer reads must describe the final IR.
    ("address", annotate_addresses),
    ("fusion", fuse),  # reads address's ``param``/``contig`` attrs
    ("streaming", stream_stores),  # reads fusion's ``fuse`` attrs
    ("prefix_mask", mark_prefix_masks),  # reads address's ``contig`` attrs
    ("write_prefetch", prefetch_stores),  # reads the three passes' attrs above
]


class PipelineError(RuntimeError):
    """The IR stopped verifying after a pass (a compiler bug, not a user error)."""


def run_pipeline(
    m: Module,
    *,
    verify: Callable[[Module], object] | None = None,
    dump: Callable[[str, Module], None] | None = None,
    passes: list[tuple[str, Pass]] | None = None,
) -> Module:
    """Run ``passes`` (default: ``PIPELINE``) in order on ``m``.

    ``verify(m)`` runs after each pass and should raise on invalid IR; the error
    is re-raised as a ``PipelineError`` naming the pass. ``dump(name, m)`` sees
    the module after each pass.
    """
    for index, (name, run) in enumerate(PIPELINE if passes is None else passes):
        m = run(m)
        if dump is not None:  # before verifying, so a broken module can be looked at
            dump(name, m)
        if verify is not None:
            try:
                verify(m)
            except Exception as e:
                raise PipelineError(f"IR does not verify after pass #{index} {name!r}: {e}") from e
    return m


__all__ = [
    "PIPELINE", "Pass", "PipelineError", "annotate_addresses", "canonicalize", "carry_offsets",
    "cse", "dce", "fuse", "mark_prefix_masks", "mask_simplify", "prefetch_stores", "run_pipeline",
    "stream_stores", "version_nowrap",
]  # fmt: skip
