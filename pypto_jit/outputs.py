"""Calling styles: in place (every argument given) or return style (outputs allocated).

A parameter annotated ``pl.Out(...)`` may be left out of a launch. It is then
allocated with the array library of the inputs (torch if any input is a torch
tensor, else numpy), the kernel runs, and the outputs are returned. Any other
argument count is a ``TypeError`` that lists both accepted forms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .arguments import ir_dtype, is_torch, torch_types
from .ir import types as irt


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


def bind_arguments(
    fn: str, names: Sequence[str], outs: Sequence[int], args: tuple, kwargs: dict, defaults: dict
) -> tuple[list, list[int]]:
    """(bound arguments in parameter order, indices of outputs to allocate)."""
    for k in kwargs:
        if k not in names:
            raise TypeError(f"{fn}() got an unexpected argument '{k}'")
    given = len(args) + len(kwargs)
    required = sum(1 for n in names if n not in defaults)
    if not outs or given >= required:
        return _bind(fn, list(names), args, kwargs, defaults, outs), []
    others = [n for i, n in enumerate(names) if i not in outs]
    for i in outs:
        if names[i] in kwargs:
            raise TypeError(_counts(fn, names, outs, given, defaults))
    bound = _bind(fn, others, args, kwargs, defaults, outs, names)
    full = []
    it = iter(bound)
    for i in range(len(names)):
        full.append(MISSING if i in outs else next(it))
    return full, list(outs)


def _bind(fn, order, args, kwargs, defaults, outs, all_names=None) -> list:
    all_names = all_names or order
    if len(args) > len(order):
        raise TypeError(_counts(fn, all_names, outs, len(args) + len(kwargs), defaults))
    bound = list(args) + [MISSING] * (len(order) - len(args))
    for k, v in kwargs.items():
        i = order.index(k)
        if bound[i] is not MISSING:
            raise TypeError(f"{fn}() got multiple values for argument '{k}'")
        bound[i] = v
    missing = []
    for i, v in enumerate(bound):
        if v is MISSING:
            if order[i] in defaults:
                bound[i] = defaults[order[i]]
            else:
                missing.append(order[i])
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise TypeError(
            f"{fn}() missing argument{'s' if len(missing) > 1 else ''} {names}; "
            + _counts(fn, all_names, outs, len(args) + len(kwargs), defaults)
        )
    return bound


def _counts(fn: str, names: Sequence[str], outs: Sequence[int], given: int, defaults: dict) -> str:
    total = f"{len(names)} ({', '.join(names)})"
    if not outs:
        return f"{fn}() takes {total} arguments, got {given}"
    others = [n for i, n in enumerate(names) if i not in outs]
    return (
        f"{fn}() takes {total} arguments to run in place, or {len(others)} "
        f"({', '.join(others)}) leaving out the outputs to have them allocated and "
        f"returned; got {given}"
    )


def allocate_outputs(
    fn: str, names: Sequence[str], bound: list, outs: Sequence[int], describe: Callable[[int], Any]
) -> None:
    """Fill ``bound[i]`` for every output ``i`` with a new array.

    ``describe(i)`` gives a ``pl.Out`` annotation (kernels) or an ``ArgSpec``
    (compiled kernels, whose outputs have specialized shapes).
    """
    use_torch = any(is_torch(a) for a in bound)
    env = {n: a for n, a in zip(names, bound, strict=True) if a is not MISSING}
    for i in outs:
        shape, dtype = _resolve(fn, names[i], describe(i), env)
        bound[i] = _empty(names[i], shape, dtype, use_torch)
        env[names[i]] = bound[i]


def _resolve(fn: str, name: str, out: Any, env: dict) -> tuple[tuple[int, ...], irt.ScalarType]:
    from .frontend import ArgSpec

    if isinstance(out, ArgSpec):
        if any(d is None for d in out.shape):
            raise TypeError(
                f"{fn}(): cannot allocate output '{name}': its shape is not "
                "specialized; pass it yourself (in-place style)"
            )
        return tuple(out.shape), out.dtype
    if out.like is not None:
        like = env.get(out.like)
        if like is None or not hasattr(like, "shape"):
            raise TypeError(
                f"{fn}(): output '{name}' is declared like '{out.like}', which is "
                "not a tensor argument of this launch"
            )
        dtype = ir_dtype(out.dtype) if out.dtype is not None else _dtype_of(like)
        return tuple(like.shape), dtype
    shape = out.shape(dict(env)) if callable(out.shape) else out.shape
    dims = []
    for d in shape if isinstance(shape, (tuple, list)) else (shape,):
        value = env.get(d) if isinstance(d, str) else d
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"{fn}(): cannot allocate output '{name}': shape entry {d!r} is "
                "not an int or the name of an int argument; pass the output "
                "yourself (in-place style)"
            )
        dims.append(value)
    if out.dtype is None:
        raise TypeError(f"{fn}(): output '{name}' needs dtype= in its pl.Out annotation")
    return tuple(dims), ir_dtype(out.dtype)


def _dtype_of(a: Any) -> irt.ScalarType:
    from .arguments import tensor_dtype

    return tensor_dtype("like", a)


def _empty(name: str, shape: tuple[int, ...], dtype: irt.ScalarType, use_torch: bool) -> Any:
    if use_torch:
        import torch

        torch_dtype = {v: k for k, v in torch_types().items()}[dtype]
        return torch.empty(shape, dtype=torch_dtype)
    if dtype == irt.bf16:
        raise TypeError(f"output '{name}' is bfloat16, which numpy cannot hold; pass torch tensors")
    import numpy as np  # loaded by now if the arguments were numpy arrays

    return np.empty(shape, dtype=dtype.np_dtype)
