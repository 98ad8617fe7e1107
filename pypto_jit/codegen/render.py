"""``render_c``: one kernel module -> one C11 translation unit.

The unit exports the three ABI functions of ``runtime_c/include/pypto_runtime.h``:
``pypto_program`` (one program of the grid; it unpacks ``iargs``/``fargs`` in
parameter order and runs the body), ``pypto_stack_bytes`` and ``pypto_kernel_abi``.
"""

from __future__ import annotations

from ..ir.nodes import Module, Param
from ..ir.types import ScalarType
from . import blockops, control, memory, rules, sideeffects  # noqa: F401 - registers rules
from .ctype import mem, reg
from .emitter import Emitter
from .prelude import prelude

MODES = ("cpu", "sim")
# Stack beyond the block arrays: scalars, spills, libm and helper calls.
_STACK_MARGIN = 16384

_SIGNATURE = (
    "PYPTO_EXPORT int pypto_program(const int64_t *iargs, const double *fargs, int64_t pid0,\n"
    "                               int64_t pid1, int64_t pid2, const pypto_ctx *ctx) {"
)


def render_c(module: Module, mode: str, debug: bool = False) -> str:
    """C source of ``module`` for the ``cpu`` or the checking ``sim`` backend.

    Memory accesses must carry the ``param`` attr (``passes.address.annotate_addresses``).
    ``device_assert`` is checked in sim mode, and in cpu mode when ``debug`` is set.
    """
    if mode not in MODES:
        raise ValueError(f"render_c mode must be one of {MODES}, got {mode!r}")
    r = Emitter(module, mode, debug)
    r.emit("(void)iargs; (void)fargs; (void)pid0; (void)pid1; (void)pid2; (void)ctx;")
    _unpack(r)
    r.block(module.body)
    r.emit("return 0;")
    stack = r.stack_bytes + 64 * r.arrays + _STACK_MARGIN
    body = "\n".join([_SIGNATURE, *r.lines, "}"])
    return "\n".join(
        [
            f"/* pypto-jit kernel '{_comment(module.name)}', {mode} backend (generated) */",
            prelude(body),
            "PYPTO_EXPORT int32_t pypto_kernel_abi(void) { return PYPTO_ABI_VERSION; }",
            f"PYPTO_EXPORT int64_t pypto_stack_bytes(void) {{ return INT64_C({stack}); }}",
            "",
            body,
            "",
        ]
    )


def _unpack(r: Emitter) -> None:
    """Bind every parameter: tensors to a typed base pointer, scalars to a local."""
    islot = fslot = 0
    for k, (param, value) in enumerate(zip(r.module.params, r.module.body.args, strict=True)):
        r.emit(f"/* {_comment(param.name)}: {param.kind} {_comment(str(param.type))} */")
        if param.kind == "tensor":
            _tensor(r, k, param, islot)
            islot += 1 + 2 * len(param.shape)
            continue
        t = param.type
        if not isinstance(t, ScalarType):
            raise NotImplementedError(f"no C rule for a scalar parameter of type {t}")
        if t.is_float:
            expr = f"({reg(t)})fargs[{fslot}]"
            if t.name in ("f16", "bf16"):
                expr = f"pypto_round_{t.name}((float)fargs[{fslot}])"  # through f32
            fslot += 1
        else:
            expr = f"({reg(t)})(iargs[{islot}] != 0)" if t.is_bool else f"({reg(t)})iargs[{islot}]"
            islot += 1
        r.emit(f"const {reg(t)} a{k} = {expr};")
        r.bind(value, f"a{k}")


def _tensor(r: Emitter, k: int, param: Param, slot: int) -> None:
    r.slots[k] = slot
    t = param.type.elem
    r.emit(f"{mem(t)} *const p{k} = ({mem(t)} *)(intptr_t)iargs[{slot}];")
    if r.mode == "sim":
        rank = len(param.shape)
        shapes, strides = f"iargs + {slot + 1}", f"iargs + {slot + 1 + rank}"
        r.emit(f"int64_t p{k}_lo;")
        r.emit(f"const int64_t p{k}_span = pypto_span({shapes}, {strides}, {rank}, &p{k}_lo);")


def _comment(text: str) -> str:
    return text.replace("*/", "* /")
