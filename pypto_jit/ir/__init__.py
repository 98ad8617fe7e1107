"""The IR: types, ops, nodes, builder, printer/parser and verifier."""

from .types import BlockType, PtrType, ScalarType, Type, parse_type

# Only the types load with the package: a launch that hits the cache needs them for
# dtypes, and nothing else here (the nodes, the builder and type inference cost a
# new process milliseconds; the parser pulls in lark).
_LAZY = {
    "Builder": "builder", "IRTypeError": "infer", "infer": "infer", "Block": "nodes",
    "Module": "nodes", "Operation": "nodes", "Param": "nodes", "Value": "nodes",
    "structurally_equal": "nodes", "Op": "ops", "IRParseError": "parser",
    "parse_module": "parser", "print_module": "printer", "VerifyError": "verifier",
    "verify": "verifier",
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
