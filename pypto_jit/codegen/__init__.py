"""IR -> C11 for the ``cpu`` and ``sim`` backends: one renderer, per-op rules in tables."""

from .render import MODES, render_c

__all__ = ["MODES", "render_c"]
