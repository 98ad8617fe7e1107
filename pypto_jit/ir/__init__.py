"""The IR: types, ops, nodes, builder, printer/parser and verifier."""

from .builder import Builder
from .infer import IRTypeError, infer
from .nodes import Block, Module, Operation, Param, Value, structurally_equal
from .ops import Op
from .parser import IRParseError, parse_module
from .printer import print_module
from .types import BlockType, PtrType, ScalarType, Type, parse_type
from .verifier import VerifyError, verify

__all__ = [
    "Block", "BlockType", "Builder", "IRTypeError", "Module", "Op", "Operation", "Param",
    "PtrType", "ScalarType", "Type", "Value", "infer", "parse_type", "structurally_equal",
    "IRParseError", "VerifyError", "parse_module", "print_module", "verify",
]  # fmt: skip
