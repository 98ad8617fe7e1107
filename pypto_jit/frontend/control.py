"""Control flow: ``if``, ``for`` and ``while`` lowered to structured IR regions.

Compile-time conditions and ``pl.static_range`` loops are resolved while
lowering. Run-time ones become IF/FOR/WHILE ops: a name assigned in a branch
or loop body that was bound before it becomes a region result (loop-carried
for loops). Its type must stay the same; a Python number before a loop adopts
the type the body gives it (``acc = 0`` then ``acc += x`` is fine).
"""

from __future__ import annotations

import ast
import inspect

from ..errors import TypeCheckError
from ..ir import Op
from ..ir import types as irt
from ..language import builtins as lang
from .semantic import broadcast_shapes, computation_type, literal_type
from .values import Tensor, describe

_NUMBER = (bool, int, float)


def assigned_names(stmts: list[ast.stmt]) -> list[str]:
    """Names bound by assignments anywhere in ``stmts``, in order of first appearance."""
    seen: dict[str, None] = {}
    for stmt in stmts:
        for node in ast.walk(stmt):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)):
                targets = [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        seen.setdefault(n.id)
    return list(seen)


class ControlFlow:
    """Mixin of ``Lowering`` with the control-flow visitors."""

    # -- if ---------------------------------------------------------------------------
    def visit_If(self, node: ast.If) -> None:
        cond = self.visit(node.test)
        if not isinstance(cond, Tensor):
            self.visit_body(node.body if cond else node.orelse)
            return
        cond = self._scalar_condition(cond, node)
        before = dict(self.env)
        then_block, then_env = self._branch(node.body, before)
        else_block, else_env = self._branch(node.orelse, before)
        # Names bound in both branches and changed by at least one become IF results
        # (or stay compile-time values when both branches agree on one).
        changed = [
            n for n in dict.fromkeys([*then_env, *else_env])
            if n in then_env and n in else_env
            and not (then_env[n] is before.get(n) and else_env[n] is before.get(n))
        ]  # fmt: skip
        results = {n: self._merge_type(n, then_env[n], else_env[n], node) for n in changed}
        carried = [n for n in changed if results[n] is not None]
        # A name new in only one branch is unusable after the if.
        self.partial.update((set(then_env) ^ set(else_env)) - set(before))
        types = [results[n] for n in carried]
        then_block = self._finish(then_block, [then_env[n] for n in carried], types)
        else_block = self._finish(else_block, [else_env[n] for n in carried], types)
        op = self.b.emit(Op.IF, (cond.value,), tuple(types), regions=(then_block, else_block))
        for n in changed:
            if results[n] is None:
                self.env[n] = then_env[n]  # the same compile-time value in both branches
        for r, n in zip(op.results, carried, strict=True):
            self.env[n] = Tensor(r, _param_of(then_env[n], else_env[n]))

    def _branch(self, stmts, before):
        self.env = dict(before)
        self.b.open_block()
        self.visit_body(stmts)
        block, env = self.b.close_block(), self.env
        self.env = dict(before)
        return block, env

    def _merge_type(self, name, a, b, node):
        """The result type of a name bound to ``a`` in one branch and ``b`` in the other."""
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            if a is b or (type(a) is type(b) and a == b):
                return None
            if not (isinstance(a, _NUMBER) and isinstance(b, _NUMBER)):
                raise self._mismatch(name, a, b, node, "the branches of this 'if'")
        return self._common_type(name, a, b, node, "the branches of this 'if'")

    def _common_type(self, name, a, b, node, where):
        def typ(x):
            if isinstance(x, Tensor):
                return x.type
            if isinstance(x, _NUMBER):
                return literal_type(x)
            raise self._mismatch(name, a, b, node, where)

        ta, tb = typ(a), typ(b)
        if irt.is_ptr(ta) or irt.is_ptr(tb):
            if ta != tb:
                raise self._mismatch(name, a, b, node, where)
            return ta
        try:
            shp = broadcast_shapes(irt.shape(ta), irt.shape(tb))
        except Exception:
            raise self._mismatch(name, a, b, node, where) from None
        e = computation_type(
            irt.scalar_of(ta),
            not isinstance(a, Tensor),
            irt.scalar_of(tb),
            not isinstance(b, Tensor),
            False,
        )
        return irt.with_shape(e, shp)

    def _mismatch(self, name, a, b, node, where):
        return self.error(
            node,
            f"'{name}' has different types in {where}: {describe(a)} and {describe(b)}",
            TypeCheckError,
        )

    def _finish(self, block, values, result_types):
        """Append conversions and the YIELD of ``values`` (as ``result_types``) to ``block``."""
        self.b.open_block()
        self.b._blocks[-1] = (block.args, list(block.ops))
        converted = [self._convert(v, t).value for v, t in zip(values, result_types, strict=True)]
        self.b.yield_(*converted)
        return self.b.close_block()

    def _convert(self, v, t: irt.Type) -> Tensor:
        if irt.is_ptr(t):
            return v
        v = self.sem.to_tensor(v, irt.scalar_of(t)) if not isinstance(v, Tensor) else v
        v = self.sem.cast(v, irt.scalar_of(t)) if not v.is_ptr else v
        return self.sem.broadcast_to(v, irt.shape(t))

    def _scalar_condition(self, cond: Tensor, node) -> Tensor:
        if cond.is_block:
            raise self.error(node, f"condition must be a scalar, got {cond.type}", TypeCheckError)
        return cond if cond.scalar.is_bool else self.sem.compare(Op.NE, cond, 0)

    # -- for ------------------------------------------------------------------------
    def visit_For(self, node: ast.For) -> None:
        if node.orelse:
            raise self.error(node, "'for ... else' is not supported")
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "the loop variable must be a single name")
        it = node.iter
        fn = self.visit(it.func) if isinstance(it, ast.Call) else None
        if fn not in (range, lang.range, lang.static_range):
            raise self.error(
                it, "kernels can loop only over range(...), pl.range(...) or pl.static_range(...)"
            )
        args = [self.visit(a) for a in it.args]
        kwargs = {k.arg: self.visit(k.value) for k in it.keywords if k.arg is not None}
        if fn is range and kwargs:
            raise self.error(
                it,
                "range() takes no keyword arguments; pl.range(...) takes loop hints",
                TypeCheckError,
            )
        try:  # bind like the marker's signature (pl.range hints are accepted and ignored)
            bound = inspect.signature(fn if fn is not range else lang.static_range).bind(
                *args, **kwargs
            )
        except TypeError as e:
            raise self.error(it, f"{_loop_name(fn)}: {e}", TypeCheckError) from None
        a = bound.arguments
        bounds = [x for x in (a["arg1"], a.get("arg2"), a.get("step")) if x is not None]
        if fn is lang.static_range:
            self._static_for(node, _static_range(bounds, self, it))
        else:
            self._runtime_for(node, *_range_args(bounds, self, it))

    def _static_for(self, node: ast.For, values: range) -> None:
        for v in values:
            self.env[node.target.id] = v
            self.visit_body(node.body)

    def visit_Break(self, node: ast.Break) -> None:
        raise self.error(
            node,
            "'break' is not supported in a kernel: loops run to the end; "
            "use a 'while' loop whose condition turns false instead",
        )

    def visit_Continue(self, node: ast.Continue) -> None:
        raise self.error(
            node,
            "'continue' is not supported in a kernel; put the rest of the "
            "loop body under an 'if' instead",
        )

    def _runtime_for(self, node: ast.For, start, stop, step) -> None:
        if all(not isinstance(x, Tensor) for x in (start, stop, step)):
            if step == 0:
                raise self.error(node.iter, "range() step must not be zero", TypeCheckError)
            if len(range(start, stop, step)) == 0:
                return
        iv_t = irt.i64 if any(_scalar(x) == irt.i64 for x in (start, stop, step)) else irt.i32
        bounds = [self.sem.cast(self.sem.to_tensor(x), iv_t).value for x in (start, stop, step)]
        target = node.target.id
        saved_target = self.env.get(target)
        names = [n for n in assigned_names(node.body) if n in self.env and n != target]

        def body(inits, types):
            args = self.b.open_block((iv_t, *types))
            self.env[target] = Tensor(args[0])
            self._bind(names, args[1:], inits)
            self.visit_body(node.body)
            return [self.env.get(n) for n in names]

        def emit(inits, types, block):
            operands = (*bounds, *(i.value for i in inits))
            return self.b.emit(Op.FOR, operands, tuple(types), regions=(block,))

        self._loop(node, names, body, emit)
        self.env.pop(target, None)
        if saved_target is not None:
            self.env[target] = saved_target

    # -- while ----------------------------------------------------------------------
    def visit_While(self, node: ast.While) -> None:
        if node.orelse:
            raise self.error(node, "'while ... else' is not supported")
        names = [n for n in assigned_names(node.body) if n in self.env]
        regions = []

        def body(inits, types):
            regions.clear()
            args = self.b.open_block(tuple(types))
            self._bind(names, args, inits)
            cond = self.visit(node.test)
            if not isinstance(cond, Tensor):
                raise self.error(
                    node.test,
                    "a 'while' condition must depend on run-time "
                    "values; use 'for' or 'if' for compile-time ones",
                )
            cond = self._scalar_condition(cond, node.test)
            self.b.emit(Op.CONDITION, (cond.value, *args))
            regions.append(self.b.close_block())
            args = self.b.open_block(tuple(types))
            self._bind(names, args, inits)
            self.visit_body(node.body)
            return [self.env.get(n) for n in names]

        def emit(inits, types, block):
            return self.b.emit(
                Op.WHILE, tuple(i.value for i in inits), tuple(types), regions=(regions[0], block)
            )

        self._loop(node, names, body, emit)

    # -- shared loop machinery ----------------------------------------------------------
    def _bind(self, names, args, inits) -> None:
        for n, a, init in zip(names, args, inits, strict=True):
            self.env[n] = Tensor(a, init.param)

    def _loop(self, node, names, build_body, emit) -> None:
        """Build a loop carrying ``names``; re-type carried values if the body widens them.

        ``build_body(inits, types)`` opens the body block, lowers the body and returns
        the next value of every carried name, leaving the block open.
        """
        before = dict(self.env)
        values = [before[n] for n in names]
        types = [self._carried_type(n, v, node) for n, v in zip(names, values, strict=True)]
        for _attempt in range(3):
            self.env = dict(before)
            inits = [self._convert(v, t) for v, t in zip(values, types, strict=True)]
            nexts = build_body(inits, types)
            new_types = [
                self._common_type(
                    n,
                    Tensor(inits[i].value),
                    nexts[i],
                    node,
                    "this loop (before and after one iteration)",
                )
                for i, n in enumerate(names)
            ]
            if new_types == types:
                break
            self.b.close_block()  # discard this attempt and lower the body again
            types = new_types
        else:
            raise self.error(node, "loop-carried types did not settle", TypeCheckError)
        self.b.yield_(*(self._convert(v, t).value for v, t in zip(nexts, types, strict=True)))
        block = self.b.close_block()
        self.env = dict(before)
        op = emit(inits, types, block)
        for n, r, init in zip(names, op.results, inits, strict=True):
            self.env[n] = Tensor(r, init.param)

    def _carried_type(self, name, value, node) -> irt.Type:
        if isinstance(value, Tensor):
            return value.type
        if isinstance(value, _NUMBER):
            return literal_type(value)
        raise self.error(
            node,
            f"'{name}' ({describe(value)}) is reassigned inside a loop; only "
            "numbers and tensors can change from one iteration to the next",
            TypeCheckError,
        )


def _scalar(x) -> irt.ScalarType | None:
    if isinstance(x, Tensor):
        if x.is_block:
            raise TypeError(f"range() bounds must be scalars, got {x.type}")
        return x.scalar
    return literal_type(x) if isinstance(x, int) else None


def _loop_name(fn) -> str:
    return "range()" if fn is range else f"pl.{fn.__name__}()"


def _static_range(args, lw, node) -> range:
    for a in args:
        if isinstance(a, bool) or not isinstance(a, int):
            raise lw.error(
                node,
                f"pl.static_range bounds must be compile-time integers, got {describe(a)}",
                TypeCheckError,
            )
    if len(args) == 3 and args[2] == 0:
        raise lw.error(node, "pl.static_range() step must not be zero", TypeCheckError)
    return range(*args)


def _range_args(args, lw, node):
    if len(args) == 1:
        args = [0, args[0], 1]
    elif len(args) == 2:
        args = [args[0], args[1], 1]
    elif len(args) != 3:
        raise lw.error(node, "range() takes 1 to 3 arguments", TypeCheckError)
    for a in args:
        if not isinstance(a, Tensor) and (isinstance(a, bool) or not isinstance(a, int)):
            raise lw.error(
                node, f"range() bounds must be integers, got {describe(a)}", TypeCheckError
            )
        if isinstance(a, Tensor) and (not a.scalar.is_int or a.is_block):
            raise lw.error(
                node, f"range() bounds must be integer scalars, got {a.type}", TypeCheckError
            )
    return args


def _param_of(a, b):
    pa, pb = getattr(a, "param", None), getattr(b, "param", None)
    return pa if pa == pb else None
