"""Parameter descriptions as stored in ``meta.json`` and shown in signatures.

Each parameter of a compiled kernel is a dict: ``name``, ``kind`` (tensor,
scalar or constexpr), ``dtype``, for tensors ``shape``/``strides`` (``None``
for dynamic entries) and ``direction`` (in, out or inout, read off the IR),
``facts``, ``value`` for constexprs, and ``out`` for ``pl.Out`` parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .frontend import ArgSpec
from .ir import types as irt
from .language import core as lang

if TYPE_CHECKING:
    from .ir import Module


def directions(module: Module) -> dict[int, str]:
    """IR parameter index -> "in" / "out" / "inout" from the loads and stores that use it."""
    from .ir.ops import Op  # the IR proper loads with the first compile

    writes_ops = (Op.STORE, Op.ATOMIC_RMW, Op.ATOMIC_CAS)
    reads: set[int] = set()
    writes: set[int] = set()
    for op in module.walk():
        k = op.attr("param")
        if k is None:
            continue
        if op.op is Op.LOAD:
            reads.add(k)
        elif op.op in writes_ops:
            writes.add(k)
    out = {}
    for k, p in enumerate(module.params):
        if p.kind == "tensor":
            out[k] = "inout" if k in reads and k in writes else "out" if k in writes else "in"
    return out


def param_meta(name: str, spec: ArgSpec, direction: str | None, out: Any) -> dict:
    d: dict[str, Any] = {"name": name, "kind": spec.kind}
    if spec.kind == "constexpr":
        d["value"] = _value_to_json(spec.value)
        return d
    d["dtype"] = str(spec.dtype)
    d["facts"] = [k for k, v in spec.facts if v]
    if spec.kind == "tensor":
        d["shape"] = list(spec.shape)
        d["strides"] = list(spec.strides)
        d["direction"] = direction
    if out is not None:
        d["out"] = _out_to_json(out)
    return d


def spec_from_meta(d: dict) -> ArgSpec:
    if d["kind"] == "constexpr":
        return ArgSpec("constexpr", value=_value_from_json(d.get("value")))
    facts = tuple((k, True) for k in d.get("facts", ()))
    dtype = irt.SCALARS[d["dtype"]]
    if d["kind"] == "tensor":
        return ArgSpec("tensor", dtype, tuple(d["shape"]), tuple(d["strides"]), facts)
    return ArgSpec("scalar", dtype, facts=facts)


def describe_params(params: list[dict]) -> str:
    """``x: in f32[1000], out: out f32[1000], n: i32, BLOCK: constexpr=1024``."""
    parts = []
    for p in params:
        if p["kind"] == "constexpr":
            parts.append(f"{p['name']}: constexpr={p.get('value')!r}")
        elif p["kind"] == "tensor":
            dims = ",".join("?" if d is None else str(d) for d in p["shape"])
            parts.append(f"{p['name']}: {p.get('direction') or 'tensor'} {p['dtype']}[{dims}]")
        else:
            parts.append(f"{p['name']}: {p['dtype']}")
    return ", ".join(parts)


def _value_to_json(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, lang.dtype):
        return {"dtype": v.name}
    if isinstance(v, (tuple, list)):
        return {"tuple": [_value_to_json(x) for x in v]}
    return {"repr": repr(v)}


def _value_from_json(v: Any) -> Any:
    if isinstance(v, dict):
        if "dtype" in v:
            return lang.DTYPES[v["dtype"]]
        if "tuple" in v:
            return tuple(_value_from_json(x) for x in v["tuple"])
        return _Opaque(v["repr"])
    return v


class _Opaque:
    """A constexpr value that JSON cannot hold; equal only to itself."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _out_to_json(out: lang.Out) -> dict:
    return {"like": out.like} if out.like is not None else {"like": None}
