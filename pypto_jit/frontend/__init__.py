"""Python ast -> typed, specialized IR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .source import KernelSource
from .spec import ArgSpec

if TYPE_CHECKING:
    from ..ir import Module

__all__ = ["ArgSpec", "KernelSource", "lower"]


def lower(src: KernelSource, names: Sequence[str], specs: Sequence[ArgSpec]) -> Module:
    """Lower the kernel in ``src`` for one specialization (one ``ArgSpec`` per parameter).

    Tensor and scalar parameters become IR parameters (in order); constexpr
    parameters are bound to their values and disappear.
    """
    # The whole frontend and the IR proper load on the first compile, not with the package.
    from ..errors import CompilationError
    from ..ir import Builder, Module, Param
    from ..ir import types as irt
    from .lowering import Lowering, LoweringContext
    from .values import Tensor

    params, arg_types = [], []
    for name, spec in zip(names, specs, strict=True):
        if spec.kind == "tensor":
            params.append(
                Param(name, "tensor", irt.PtrType(spec.dtype), spec.shape, spec.strides, spec.facts)
            )
            arg_types.append(irt.PtrType(spec.dtype))
        elif spec.kind == "scalar":
            params.append(Param(name, "scalar", spec.dtype, facts=spec.facts))
            arg_types.append(spec.dtype)
    builder = Builder()
    args = iter(builder.open_block(tuple(arg_types)))
    ctx = LoweringContext()
    env: dict = {}
    for i, (name, spec) in enumerate(zip(names, specs, strict=True)):
        if spec.kind == "constexpr":
            env[name] = spec.value
            continue
        value = next(args)
        if spec.kind == "tensor":
            ctx.layouts[i] = (value, spec.shape, spec.strides)
            env[name] = Tensor(value, i)
        elif dict(spec.facts).get("equal1"):
            env[name] = 1  # Triton's specialization of integer arguments equal to 1
        else:
            env[name] = Tensor(value)
    lowering = Lowering(src, builder, env, ctx)
    try:
        lowering.visit_body(src.tree.body)
    except CompilationError as e:
        raise e.with_traceback(None) from None
    return Module(src.fn.__name__, tuple(params), builder.close_block())
