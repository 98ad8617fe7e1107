"""The IR: types, ops, nodes, builder, printer/parser and verifier."""

from .builder import Builder
from .infer import IRTypeError, infer
from .nodes import Block, Module, Operation, Param, Value, structurally_equal
from .ops import Op
from .types import BlockType, PtrType, ScalarType, Type, parse_type

# The textual form and the verifier load on first use: a launch that hits the cache
# needs neither (and the parser pulls in lark).
_LAZY = {
    "IRParseError": "parser", "parse_module": "parser", "print_module": "printer",
    "VerifyError": "verifier", "verify": "verifier",
}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Block", "BlockType", "Builder", "IRTypeError", "Module", "Op", "Operation", "Param",
    "PtrType", "ScalarType", "Type", "Value", "infer", "parse_type", "structurally_equal",
    "IRParseError", "VerifyError", "parse_module", "print_module", "verify",
]  # fmt: skip
