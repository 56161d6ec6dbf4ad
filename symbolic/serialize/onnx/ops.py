"""The export table: each registered op name (common/ops) -> the builder writing it as ONNX
nodes, and `NO_ONNX_FORM`, the ops ONNX cannot express, with the reason. Indexing and
windows are built in symbolic/serialize/onnx/indexing.py, control flow in control.py; the way back
is symbolic/serialize/onnx/readers.py.

ONNX wants both operands of Add in one dtype where numpy promotes; each builder casts its
operands to the dtype diptych's rules gave the result (docs/dtypes.md), so a weak Python
literal becomes a constant of its operand's dtype: `x_f32 * 2` writes `Mul(x, f32 2.0)`.
"""

from __future__ import annotations

import numpy as np

from common.ops.core import result_dtype
from symbolic.serialize.onnx import control, indexing
from symbolic.serialize.onnx.emitter import Call, Emitter, unsupported

BOOL, INT64 = np.dtype(bool), np.dtype(np.int64)


def _result(call: Call) -> np.dtype:
    return call.aval.dtype


def _promoted(call: Call) -> np.dtype:
    """The dtype numpy compares in: the operands' promotion (a comparison's result is bool)."""
    return result_dtype(*(a.aval for a in call.args))


def same_dtype(onnx_op: str, dtype_of=_result, **attrs):
    """A builder for an op that is one ONNX op on operands cast to one dtype."""

    def build(emit: Emitter, call: Call) -> str:
        dtype = dtype_of(call)
        return emit.node(onnx_op, [emit.operand(a, dtype) for a in call.args], **attrs)

    return build


def _operands(emit: Emitter, call: Call, dtype=None) -> list[str]:
    return [emit.operand(a, dtype or call.aval.dtype) for a in call.args]


# ---- elementwise ------------------------------------------------------------------------


def _ne(emit: Emitter, call: Call) -> str:
    return emit.node("Not", [same_dtype("Equal", _promoted)(emit, call)])


def _log1p(emit: Emitter, call: Call) -> str:
    (x,) = _operands(emit, call)
    return emit.node("Log", [emit.node("Add", [x, emit.constant(1, call.aval.dtype)])])


def _floor_divide(emit: Emitter, call: Call) -> str:
    """Floats: floor(x / y). Integers: (x - x mod y) / y, exact (ONNX's integer Div
    truncates toward zero, Python's // rounds down)."""
    x, y = _operands(emit, call)
    if call.aval.dtype.kind == "f":
        return emit.node("Floor", [emit.node("Div", [x, y])])
    return emit.node("Div", [emit.node("Sub", [x, emit.node("Mod", [x, y], fmod=0)]), y])


def _remainder(emit: Emitter, call: Call) -> str:
    """The remainder with the divisor's sign: ONNX's Mod for integers; for floats (where ONNX
    has only C's fmod) x - floor(x / y) * y."""
    x, y = _operands(emit, call)
    if call.aval.dtype.kind != "f":
        return emit.node("Mod", [x, y], fmod=0)
    quotient = emit.node("Floor", [emit.node("Div", [x, y])])
    return emit.node("Sub", [x, emit.node("Mul", [quotient, y])])


def _clamp(emit: Emitter, call: Call) -> str:
    dtype = call.aval.dtype
    bounds = [
        "" if call.params.get(k) is None else emit.constant(call.params[k], dtype)
        for k in ("min", "max")
    ]
    return emit.node("Clip", [emit.operand(call.args[0], dtype), *bounds])


def _where(emit: Emitter, call: Call) -> str:
    cond, x, y = call.args
    dtype = call.aval.dtype
    return emit.node(
        "Where", [emit.operand(cond, BOOL), emit.operand(x, dtype), emit.operand(y, dtype)]
    )


def _cast(emit: Emitter, call: Call) -> str:
    return emit.operand(call.args[0], call.aval.dtype)  # a Cast, or nothing when equal


def _binary_cross_entropy(emit: Emitter, call: Call) -> str:
    """(t - 1) max(log(1 - p), -100) - t max(log p, -100), the kernel's formula."""
    p, t = _operands(emit, call)
    dtype = call.aval.dtype
    one, floor = emit.constant(1, dtype), emit.constant(-100, dtype)
    log_p = emit.node("Max", [emit.node("Log", [p]), floor])
    log_not_p = emit.node("Max", [emit.node("Log", [emit.node("Sub", [one, p])]), floor])
    kept = emit.node("Mul", [emit.node("Sub", [t, one]), log_not_p])
    return emit.node("Sub", [kept, emit.node("Mul", [t, log_p])])


# ---- reductions -------------------------------------------------------------------------


def reduce(emit: Emitter, onnx_op: str, x: str, axes: tuple | None, keepdims: bool) -> str:
    """ONNX reductions take axes as an input (ReduceSum from opset 13, the others from 18)
    or as an attribute (before); no axes means all of them."""
    if axes is None:
        return emit.node(onnx_op, [x], keepdims=int(keepdims))
    if not axes:  # numpy: over no axis at all
        return emit.node("Identity", [x])
    if onnx_op == "ReduceSum" or emit.opset >= 18:
        return emit.node(onnx_op, [x, emit.ints(list(axes))], keepdims=int(keepdims))
    return emit.node(onnx_op, [x], axes=list(axes), keepdims=int(keepdims))


def _reduction(onnx_op: str):
    def build(emit: Emitter, call: Call) -> str:
        (x,) = _operands(emit, call)  # sum: bools and small ints are summed as int64
        return reduce(emit, onnx_op, x, call.params["axis"], call.params["keepdims"])

    return build


def _arg_reduction(onnx_op: str):
    def build(emit: Emitter, call: Call) -> str:
        x, axis, keepdims = call.args[0], call.params["axis"], call.params["keepdims"]
        if axis is not None:
            return emit.node(onnx_op, [x.name], axis=axis, keepdims=int(keepdims))
        flat = emit.node("Reshape", [x.name, emit.ints([-1])])
        index = emit.node(onnx_op, [flat], axis=0, keepdims=0)
        return emit.node("Reshape", [index, emit.ints(list(call.aval.shape))])

    return build


def _sum_to_like(emit: Emitter, call: Call) -> str:
    """The sum over the axes broadcasting added: known only from known shapes."""
    x, like = call.args
    if x.aval.shape is None or None in x.aval.shape or None in like.aval.shape:
        raise unsupported(
            call,
            "which axes to sum depends on sizes unknown while exporting. "
            "Fix: give the placeholders concrete shapes.",
        )
    lead = x.aval.ndim - like.aval.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(like.aval.shape) if d == 1 and x.aval.shape[lead + i] != 1
    )
    summed = reduce(emit, "ReduceSum", x.name, axes, True)
    return emit.node("Reshape", [summed, emit.ints(list(like.aval.shape))])


# ---- matrices ---------------------------------------------------------------------------


def _linear(emit: Emitter, call: Call) -> str:
    """x @ w.T: a Gemm for a float matrix, else a MatMul with the weight transposed."""
    x, w = _operands(emit, call)
    if call.args[0].aval.ndim == 2 and call.aval.dtype.kind == "f":
        return emit.node("Gemm", [x, w], transB=1)
    return emit.node("MatMul", [x, emit.node("Transpose", [w], perm=[1, 0])])


# ---- shapes -----------------------------------------------------------------------------


def _reshape(emit: Emitter, call: Call) -> str:
    shape = emit.ints(list(call.params["shape"]))
    return emit.node("Reshape", [call.args[0].name, shape], allowzero=1)


def _squeeze(emit: Emitter, call: Call) -> str:
    axes = call.params["axis"]
    if not axes:
        return emit.node("Identity", [call.args[0].name])
    return emit.node("Squeeze", [call.args[0].name, emit.ints(list(axes))])


def _pad(emit: Emitter, call: Call) -> str:
    widths = call.params["widths"]
    pads = emit.ints([lo for lo, _ in widths] + [hi for _, hi in widths])
    zero = emit.constant(0, call.aval.dtype)
    return emit.node("Pad", [call.args[0].name, pads, zero], mode="constant")


def _one_hot(emit: Emitter, call: Call) -> str:
    labels = emit.operand(call.args[0], INT64)
    depth = emit.ints(call.params["num_classes"])
    values = emit.constant([0, 1], call.aval.dtype)
    return emit.node("OneHot", [labels, depth, values], axis=-1)


def _permute(emit: Emitter, call: Call) -> str:
    return emit.node("Transpose", [call.args[0].name], perm=list(call.params["dims"]))


def _broadcast_to(emit: Emitter, call: Call) -> str:
    return emit.node("Expand", [call.args[0].name, emit.ints(list(call.params["shape"]))])


def _broadcast_like(emit: Emitter, call: Call) -> str:
    x, like = call.args
    return emit.node("Expand", [x.name, emit.node("Shape", [like.name])])


def _expand_dims(emit: Emitter, call: Call) -> str:
    return emit.node("Unsqueeze", [call.args[0].name, emit.ints([call.params["axis"]])])


def _concat(emit: Emitter, call: Call) -> str:
    return emit.node("Concat", _operands(emit, call), axis=call.params["axis"])


# ---- the table --------------------------------------------------------------------------

_ONE_OP = {
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "neg": "Neg",
    "maximum": "Max", "minimum": "Min", "clone": "Identity", "stop_gradient": "Identity",
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "sign": "Sign", "tanh": "Tanh",
    "sigmoid": "Sigmoid", "relu": "Relu", "sin": "Sin", "cos": "Cos", "erf": "Erf",
    "matmul": "MatMul",
}  # fmt: skip
_COMPARISONS = {"eq": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater",
                "ge": "GreaterOrEqual"}  # fmt: skip
_LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_not": "Not"}

BUILDERS = {
    **{name: same_dtype(op) for name, op in _ONE_OP.items()},
    **{name: same_dtype(op, _promoted) for name, op in _COMPARISONS.items()},
    **{name: same_dtype(op, lambda call: BOOL) for name, op in _LOGICAL.items()},
    "ne": _ne, "log1p": _log1p, "floor_divide": _floor_divide, "remainder": _remainder,
    "clamp": _clamp, "where": _where, "cast": _cast,
    "binary_cross_entropy": _binary_cross_entropy,
    "sum": _reduction("ReduceSum"), "max": _reduction("ReduceMax"),
    "min": _reduction("ReduceMin"), "argmax": _arg_reduction("ArgMax"),
    "argmin": _arg_reduction("ArgMin"), "sum_to_like": _sum_to_like, "linear": _linear,
    "reshape": _reshape, "squeeze": _squeeze, "pad": _pad, "one_hot": _one_hot,
    "permute": _permute, "broadcast_to": _broadcast_to, "broadcast_like": _broadcast_like,
    "expand_dims": _expand_dims, "concat": _concat,
    **indexing.BUILDERS,
    **control.BUILDERS,
}  # fmt: skip

NO_ONNX_FORM = {
    "bernoulli": "it draws random numbers from diptych's generator, and ONNX's Bernoulli "
    "draws from the runtime's own, so no exported model could give diptych's results. "
    "Fix: export the model for inference (dropout with training=False is the identity)",
}
