"""Python ast -> IR: one ``visit_<Node>`` per accepted construct.

Everything not listed here is rejected by name with
``UnsupportedConstructError``. Errors are wrapped once, in ``visit``, with the
user's file:line:col and the source line.
"""

from __future__ import annotations

import ast
import builtins as py_builtins
import types

from ..errors import CompilationError, TypeCheckError, UnsupportedConstructError
from ..ir import Builder, IRTypeError, Op
from ..language import core as lang
from .builtins import call_builtin, const_int
from .control import ControlFlow
from .semantic import PY_BINARY, PY_COMPARE, Semantic
from .source import KernelSource
from .tensor_attrs import tensor_attribute
from .values import SemanticError, Tensor, describe

_BINOPS = {
    ast.Add: Op.ADD, ast.Sub: Op.SUB, ast.Mult: Op.MUL, ast.Div: Op.DIV,
    ast.FloorDiv: Op.IDIV, ast.Mod: Op.MOD, ast.BitAnd: Op.AND, ast.BitOr: Op.OR,
    ast.BitXor: Op.XOR, ast.LShift: Op.SHL, ast.RShift: Op.SHR,
}  # fmt: skip
_CMPOPS = {
    ast.Lt: Op.LT,
    ast.LtE: Op.LE,
    ast.Gt: Op.GT,
    ast.GtE: Op.GE,
    ast.Eq: Op.EQ,
    ast.NotEq: Op.NE,
}
_MAX_INLINE_DEPTH = 32


class _Return(Exception):
    """Internal: carries a helper's return value out of its body."""


class Lowering(ControlFlow, ast.NodeVisitor):
    """Lowers one function body (the kernel, or an inlined helper) into ``builder``."""

    def __init__(self, src: KernelSource, builder: Builder, env: dict, ctx: LoweringContext):
        self.src = src
        self.b = builder
        self.sem = Semantic(builder)
        self.env = env
        self.ctx = ctx
        self.returned: object = None
        self.partial: set[str] = set()  # names bound in only one branch of a runtime if

    # -- error boundary ---------------------------------------------------------
    def visit(self, node: ast.AST):
        if not hasattr(node, "lineno"):
            return super().visit(node)
        loc = self.src.loc(node)
        saved, self.b.loc = self.b.loc, loc
        try:
            return super().visit(node)
        except (CompilationError, _Return):
            raise
        except SemanticError as e:
            raise TypeCheckError(str(e), loc, self.src.source_line(loc)) from None
        except (IRTypeError, ValueError, TypeError) as e:
            raise TypeCheckError(str(e), loc, self.src.source_line(loc)) from None
        finally:
            self.b.loc = saved

    def error(self, node: ast.AST, message: str, cls=UnsupportedConstructError):
        loc = self.src.loc(node)
        return cls(message, loc, self.src.source_line(loc))

    def generic_visit(self, node: ast.AST):
        raise self.error(node, f"'{type(node).__name__}' is not supported in a kernel")

    # -- statements ---------------------------------------------------------------
    def visit_body(self, stmts: list[ast.stmt]) -> None:
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, ast.Return) and i != len(stmts) - 1:
                raise self.error(stmt, "'return' must be the last statement of the function")
            self.visit(stmt)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # docstring
        self.visit(node.value)

    def visit_Pass(self, node: ast.Pass) -> None:
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self.visit(node.value)
        for target in node.targets:
            self.assign(target, value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is None:
            raise self.error(node, "a bare annotation without a value is not supported")
        value = self.visit(node.value)
        if isinstance(value, lang.constexpr):
            value = value.value
        self.assign(node.target, value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if not isinstance(node.target, ast.Name):
            raise self.error(node, "augmented assignment is supported on names only")
        current = self.lookup(node.target.id, node.target)
        self.env[node.target.id] = self.binary(node.op, current, self.visit(node.value), node)

    def assign(self, target: ast.expr, value) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = value
            self.partial.discard(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, tuple) or len(value) != len(target.elts):
                raise self.error(
                    target,
                    f"cannot unpack {describe(value)} into {len(target.elts)} names",
                    TypeCheckError,
                )
            for t, v in zip(target.elts, value, strict=True):
                self.assign(t, v)
        else:
            raise self.error(target, f"assignment to '{type(target).__name__}' is not supported")

    def visit_Return(self, node: ast.Return) -> None:
        if self.ctx.depth == 0 and node.value is not None:
            raise self.error(node, "a kernel cannot return a value; store it with pl.store")
        self.returned = self.visit(node.value) if node.value is not None else None

    def visit_Assert(self, node: ast.Assert) -> None:
        cond = self.visit(node.test)
        msg = self.visit(node.msg) if node.msg is not None else None
        if isinstance(cond, Tensor):  # a run-time condition: checked on the device
            text = str(msg) if msg is not None else ast.unparse(node.test)
            call_builtin(self, "device_assert", [cond, text], {})
        elif not cond:
            text = msg if msg is not None else "assertion failed"
            raise self.error(node, f"static assertion failed: {text}", TypeCheckError)

    # -- expressions --------------------------------------------------------------
    def visit_Constant(self, node: ast.Constant):
        return node.value

    def visit_Name(self, node: ast.Name):
        return self.lookup(node.id, node)

    def lookup(self, name: str, node: ast.AST):
        if name in self.env:
            return self.env[name]
        if name in self.partial:
            raise self.error(
                node,
                f"'{name}' is assigned in only one branch of an 'if' and cannot be used after it",
                TypeCheckError,
            )
        if name in self.src.fn.__globals__:
            return self.ctx.read_global(self.src, name, self.src.fn.__globals__[name], self, node)
        closure = _closure_vars(self.src.fn)
        if name in closure:
            return self.ctx.read_global(self.src, name, closure[name], self, node)
        if hasattr(py_builtins, name):
            return getattr(py_builtins, name)
        raise self.error(node, f"name '{name}' is not defined", TypeCheckError)

    def visit_Tuple(self, node: ast.Tuple):
        return tuple(self.visit(e) for e in node.elts)

    visit_List = visit_Tuple

    def visit_Attribute(self, node: ast.Attribute):
        base = self.visit(node.value)
        if isinstance(base, Tensor):
            return tensor_attribute(self, base, node.attr)
        if isinstance(base, (types.ModuleType, lang.dtype, type)) or _is_jit(base):
            try:
                value = getattr(base, node.attr)
            except AttributeError:
                raise self.error(
                    node, f"{describe(base)} has no attribute '{node.attr}'", TypeCheckError
                ) from None
            return value.value if isinstance(value, lang.constexpr) else value
        raise self.error(node, f"attribute '{node.attr}' of {describe(base)} is not supported")

    def visit_Subscript(self, node: ast.Subscript):
        base = self.visit(node.value)
        index = self.visit(node.slice)
        if isinstance(base, tuple):
            return base[const_int(index, "tuple index")]
        if isinstance(base, Tensor):
            return self.index_block(base, index, node)
        raise self.error(node, f"indexing {describe(base)} is not supported")

    def visit_Slice(self, node: ast.Slice):
        if node.lower or node.upper or node.step:
            raise self.error(node, "only ':' slices are supported when indexing blocks")
        return slice(None)

    def index_block(self, x: Tensor, index, node: ast.AST) -> Tensor:
        """``x[:, None]``: ':' keeps an axis, None inserts one."""
        items = index if isinstance(index, tuple) else (index,)
        if any(i is not None and i != slice(None) for i in items):
            raise self.error(node, "blocks can only be indexed with ':' and None")
        if sum(i == slice(None) for i in items if i is not None) != len(x.shape):
            raise self.error(
                node, f"index has the wrong number of ':' for {x.type}", TypeCheckError
            )
        v, axis = x.value, 0
        for i in items:
            if i is None:
                v = self.b.typed(Op.EXPAND_DIMS, v, axis=axis)
            axis += 1
        return Tensor(v, x.param)

    def visit_BinOp(self, node: ast.BinOp):
        return self.binary(node.op, self.visit(node.left), self.visit(node.right), node)

    def binary(self, op: ast.operator, a, b, node: ast.AST):
        if type(op) not in _BINOPS:
            raise self.error(node, f"operator '{type(op).__name__}' is not supported")
        ir_op = _BINOPS[type(op)]
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            try:
                return PY_BINARY[ir_op](a, b)
            except (TypeError, ZeroDivisionError) as e:
                raise self.error(
                    node, f"compile-time arithmetic failed: {e}", TypeCheckError
                ) from None
        return self.sem.binary(ir_op, a, b)

    def visit_UnaryOp(self, node: ast.UnaryOp):
        x = self.visit(node.operand)
        if not isinstance(x, Tensor):
            return {
                ast.USub: lambda v: -v,
                ast.UAdd: lambda v: +v,
                ast.Not: lambda v: not v,
                ast.Invert: lambda v: ~v,
            }[type(node.op)](x)
        if isinstance(node.op, ast.UAdd):
            return x
        if isinstance(node.op, ast.USub):
            return self.sem.unary(Op.NEG, x)
        if isinstance(node.op, ast.Not):
            if x.is_block:
                raise self.error(node, "'not' on a block; use '~' or '== 0'", TypeCheckError)
            return self.sem.compare(Op.EQ, x, 0)
        return self.sem.unary(Op.NOT, x)

    def visit_Compare(self, node: ast.Compare):
        left, result = self.visit(node.left), None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if type(op) not in _CMPOPS:
                raise self.error(node, f"comparison '{type(op).__name__}' is not supported")
            right = self.visit(right_node)
            if isinstance(left, Tensor) or isinstance(right, Tensor):
                value = self.sem.compare(_CMPOPS[type(op)], left, right)
            else:
                value = PY_COMPARE[_CMPOPS[type(op)]](left, right)
            result = value if result is None else self.logical(Op.AND, result, value, node)
            left = right
        return result

    def visit_BoolOp(self, node: ast.BoolOp):
        op = Op.AND if isinstance(node.op, ast.And) else Op.OR
        result = self.visit(node.values[0])
        for value_node in node.values[1:]:
            if not isinstance(result, Tensor):  # short-circuit on compile-time values
                if (op is Op.AND) != bool(result):
                    return result
                result = self.visit(value_node)
                continue
            result = self.logical(op, result, self.visit(value_node), node)
        return result

    def logical(self, op: Op, a, b, node: ast.AST):
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            return (a and b) if op is Op.AND else (a or b)
        a, b = self.sem.to_tensor(a), self.sem.to_tensor(b)
        if a.is_block or b.is_block:
            raise self.error(node, "'and'/'or' on blocks; use '&' / '|'", TypeCheckError)
        a, b = (self.sem.compare(Op.NE, x, 0) if not x.scalar.is_bool else x for x in (a, b))
        return self.sem.binary(op, a, b)

    def visit_IfExp(self, node: ast.IfExp):
        cond = self.visit(node.test)
        if not isinstance(cond, Tensor):
            return self.visit(node.body if cond else node.orelse)
        return self.sem.where(cond, self.visit(node.body), self.visit(node.orelse))

    def visit_Call(self, node: ast.Call):
        fn = self.visit(node.func)
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                args.extend(self.visit(a.value))
            else:
                args.append(self.visit(a))
        kwargs = {k.arg: self.visit(k.value) for k in node.keywords if k.arg is not None}
        if fn in lang.BUILTINS:
            return call_builtin(self, lang.BUILTINS[fn], args, kwargs)
        if isinstance(fn, _BoundMethod):
            return fn(*args, **kwargs)
        if _is_jit(fn):
            return self.ctx.inline(fn, args, kwargs, self, node)
        if fn is lang.constexpr:
            return args[0]
        if fn in (min, max):
            return self.py_minmax(fn, args, node)
        if fn in (int, float, bool, len, abs) and not any(isinstance(a, Tensor) for a in args):
            return fn(*args, **kwargs)
        if fn is print:  # as Triton: device_print, unless everything is known now
            if any(isinstance(a, Tensor) for a in args):
                prefix = args.pop(0) if args and isinstance(args[0], str) else ""
                return call_builtin(self, "device_print", [prefix, *args], {})
            return call_builtin(self, "static_print", args, {})
        if isinstance(getattr(fn, "__self__", None), lang.dtype):  # x.dtype.is_floating()
            return fn(*args, **kwargs)
        name = getattr(fn, "__name__", describe(fn))
        raise self.error(
            node,
            f"calling '{name}' is not supported in a kernel; only pl.* "
            "functions and other @pypto.jit functions can be called",
        )

    def py_minmax(self, fn, args, node):
        if len(args) < 2:
            raise self.error(node, f"{fn.__name__}() needs at least two arguments")
        op = Op.MINIMUM if fn is min else Op.MAXIMUM
        result = args[0]
        for a in args[1:]:
            if isinstance(result, Tensor) or isinstance(a, Tensor):
                result = self.sem.minmax(op, result, a)
            else:
                result = fn(result, a)
        return result


class _BoundMethod:
    """A method of a ``Tensor`` (``x.to``, ``x.stride``) waiting for its call."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def _is_jit(obj) -> bool:
    return getattr(obj, "__pypto_jit__", False) is True


def _is_constexpr_annotation(ann: ast.expr | None) -> bool:
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        return ann.value.split(".")[-1] == "constexpr"
    return (
        isinstance(ann, ast.Attribute)
        and ann.attr == "constexpr"
        or isinstance(ann, ast.Name)
        and ann.id == "constexpr"
    )


def _closure_vars(fn) -> dict:
    if not fn.__closure__:
        return {}
    return {
        n: c.cell_contents for n, c in zip(fn.__code__.co_freevars, fn.__closure__, strict=True)
    }


class LoweringContext:
    """State shared by the kernel and every helper inlined into it."""

    def __init__(self) -> None:
        self.depth = 0
        self.layouts: dict[int, tuple] = {}  # tensor param index -> (value, shape, strides)

    def read_global(self, src: KernelSource, name: str, value, lw: Lowering, node: ast.AST):
        if isinstance(value, lang.constexpr):
            return value.value
        if isinstance(value, (types.ModuleType, lang.dtype, type)) or callable(value):
            return value
        if value is None:
            return None
        raise lw.error(
            node,
            f"global '{name}' is a {type(value).__name__}, not a constexpr: "
            f"kernels may read only constexpr globals ({name} = pl.constexpr(...))",
            TypeCheckError,
        )

    def inline(self, jit_fn, args: list, kwargs: dict, caller: Lowering, node: ast.AST):
        if self.depth >= _MAX_INLINE_DEPTH:
            raise caller.error(node, "helper calls nest too deeply (recursion is not supported)")
        src = jit_fn.source
        params = src.tree.args
        names = [a.arg for a in params.args]
        if params.vararg or params.kwarg or params.kwonlyargs:
            raise caller.error(
                node, "helpers with *args, **kwargs or keyword-only parameters are not supported"
            )
        env = dict(zip(names, args, strict=False))
        if len(args) > len(names):
            raise caller.error(
                node,
                f"{src.fn.__name__}() takes {len(names)} arguments, {len(args)} given",
                TypeCheckError,
            )
        for k, v in kwargs.items():
            if k not in names or k in env:
                raise caller.error(
                    node,
                    f"{src.fn.__name__}() got an unexpected or repeated argument '{k}'",
                    TypeCheckError,
                )
            env[k] = v
        defaults = dict(
            zip(names[len(names) - len(params.defaults) :], params.defaults, strict=True)
        )
        for n in names:
            if n not in env:
                if n not in defaults:
                    raise caller.error(
                        node, f"{src.fn.__name__}() missing argument '{n}'", TypeCheckError
                    )
                env[n] = Lowering(src, caller.b, {}, self).visit(defaults[n])
        for a in params.args:
            if _is_constexpr_annotation(a.annotation) and isinstance(env[a.arg], Tensor):
                raise caller.error(
                    node,
                    f"{src.fn.__name__}() parameter '{a.arg}' is a "
                    f"constexpr, but got the run-time value {env[a.arg].type}",
                    TypeCheckError,
                )
        self.depth += 1
        try:
            callee = Lowering(src, caller.b, env, self)
            callee.visit_body(src.tree.body)
        finally:
            self.depth -= 1
        return callee.returned
