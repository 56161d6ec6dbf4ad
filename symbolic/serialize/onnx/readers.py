"""The way back: each ONNX op type -> a reader applying `F` ops to its inputs. `F` ops work
on symbols and eager tensors alike, so one reading of a file serves both engines (the walk,
and the readers of If, Loop and Scan, are in symbolic/serialize/onnx/imports.py).

A reader gets a view of the node (`ReadNode` in imports.py): `node.input(i)` is a value
(a symbol, a tensor or a numpy array), `node.const(i)` one that must be known while
reading (a shape, axes, pads: an initializer or a Constant's output), `node.attr(name)`.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from common import functional as F
from common.ops.core import aval_of, broadcast_shapes
from common.ops.indexing import ARRAY


class OnnxImportError(ValueError):
    """A model the importer cannot read: names the node and what it would need."""


def _dtype(value) -> np.dtype:
    return np.dtype(aval_of(value).dtype)


def _shape(value) -> tuple:
    return tuple(aval_of(value).shape)


def _elementwise(fn):
    return lambda node: fn(*node.inputs())


def _variadic(fn):
    def read(node):
        result, *rest = node.inputs()
        for value in rest:
            result = fn(result, value)
        return result

    return read


def _div(node):
    """ONNX divides integers toward zero (C's rule); numpy's // rounds down."""
    x, y = node.inputs()
    if _dtype(x).kind == "f" or _dtype(y).kind == "f":
        return F.div(x, y)
    down = F.floor_divide(x, y)
    inexact = F.logical_and(F.ne(F.remainder(x, y), 0), F.ne(F.lt(x, 0), F.lt(y, 0)))
    return down + F.cast(inexact, _dtype(down))


def _mod(node):
    if node.attr("fmod", 0):
        raise node.error("Mod with fmod=1 (C's remainder) has no diptych op")
    return F.remainder(*node.inputs())


def _cast(node):
    return F.cast(node.input(0), helper.tensor_dtype_to_np_dtype(node.attr("to")))


def _clip(node):
    low, high = (node.const(i) if node.has(i) else None for i in (1, 2))
    return F.clamp(
        node.input(0),
        min=None if low is None else low.item(),
        max=None if high is None else high.item(),
    )


def _gemm(node):
    """alpha op(A) op(B) + beta C; A B^T is diptych's `linear` (a Gemm with transB=1)."""
    a, b = node.input(0), node.input(1)
    a = F.transpose(a) if node.attr("transA", 0) else a
    y = F.linear(a, b) if node.attr("transB", 0) else F.matmul(a, b)
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    y = y if alpha == 1.0 else y * alpha
    if node.has(2):
        c = node.input(2)
        y = y + (c if beta == 1.0 else c * beta)
    return y


def _softmax(fn):
    def read(node):
        x = node.input(0)
        axis = node.attr("axis", -1 if node.opset >= 13 else 1) % len(_shape(x))
        if node.opset < 13 and axis != len(_shape(x)) - 1:
            raise node.error("before opset 13, Softmax flattens the axes after `axis`")
        return fn(x, axis=axis)

    return read


# ---- shapes -----------------------------------------------------------------------------


def _reshape(node):
    x, shape = node.input(0), [int(d) for d in node.const(1)]
    if not node.attr("allowzero", 0):  # 0 copies the input's size there
        shape = [_shape(x)[i] if d == 0 else d for i, d in enumerate(shape)]
    return F.reshape(x, tuple(-1 if d is None else d for d in shape))


def _given_axes(node, index: int | None):
    """Axes as an input (newer opsets) or as the `axes` attribute (older); None if neither."""
    if index is not None and node.has(index):
        return np.ravel(node.const(index))
    axes = node.attr("axes")
    return None if axes is None else np.ravel(axes)


def _axes(node, rank: int, index: int | None = 1) -> list[int] | None:
    """The node's axes, made non-negative for a result of `rank` axes."""
    axes = _given_axes(node, index)
    return None if axes is None else [int(a) % rank for a in axes]


def _unsqueeze(node):
    x, count = node.input(0), len(_given_axes(node, 1))
    for axis in sorted(_axes(node, len(_shape(x)) + count)):
        x = F.expand_dims(x, axis)
    return x


def _squeeze(node):
    x = node.input(0)
    return F.squeeze(x, _axes(node, len(_shape(x))))


def _expand(node):
    x = node.input(0)
    return F.broadcast_to(x, broadcast_shapes("Expand", _shape(x), tuple(node.const(1))))


def _pad(node):
    x, pads = node.input(0), [int(p) for p in node.const(1)]
    value = node.const(2).item() if node.has(2) else 0
    if (
        node.attr("mode", b"constant") not in (b"constant", "constant")
        or value != 0
        or min(pads) < 0
    ):
        raise node.error(
            "only zero padding (mode constant, value 0, no negative pads) has a diptych op"
        )
    rank = len(_shape(x))
    return F.pad(x, list(zip(pads[:rank], pads[rank:])))


def _bound(value: int):
    """ONNX's stand-ins for 'to the end' (INT64_MAX, INT64_MIN) as Python's None."""
    return None if abs(int(value)) >= 2**62 else int(value)


def _slice(node):
    x = node.input(0)
    starts, ends = node.const(1), node.const(2)
    axes = _axes(node, len(_shape(x)), index=3) or list(range(len(starts)))
    steps = node.const(4) if node.has(4) else np.ones(len(starts), np.int64)
    index = [slice(None)] * len(_shape(x))
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis] = slice(_bound(start), _bound(end), int(step))
    return F.getitem(x, tuple(index))


def _gather(node):
    x = node.input(0)
    axis = node.attr("axis", 0) % len(_shape(x))
    indices = node.const(1) if node.is_const(1) else node.input(1)
    part = int(indices) if isinstance(indices, np.ndarray) and indices.ndim == 0 else indices
    return F.getitem(x, (slice(None),) * axis + (part,))


def _compress(node):
    x, condition = node.input(0), node.input(1)
    axis = node.attr("axis")
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    return F.getitem(x, (slice(None),) * (axis % len(_shape(x))) + (condition,))


def _flatten(node):
    x = node.input(0)
    axis = node.attr("axis", 1) % (len(_shape(x)) + 1)
    lead = int(np.prod(_shape(x)[:axis]))
    return F.reshape(x, (lead, -1))


def _scatter_elements(node):
    data, indices, updates = node.input(0), node.const(1), node.input(2)
    if len(_shape(data)) != 1:
        raise node.error("ScatterElements is read for 1-d data only (as diptych writes it)")
    if node.attr("reduction", b"none") in (b"add", "add"):
        return data + F.scatter_add(updates, data, (ARRAY,), indices)
    return F.setitem(data, indices, updates)


# ---- reductions -------------------------------------------------------------------------


def _reduction(fn, axes_as_input_from: int):
    def read(node):
        x = node.input(0)
        takes_input = node.opset >= axes_as_input_from
        axes = _axes(node, len(_shape(x)), index=1 if takes_input else None)
        if not axes and node.attr("noop_with_empty_axes", 0):
            return x
        return fn(
            x, axis=None if not axes else tuple(axes), keepdims=bool(node.attr("keepdims", 1))
        )

    return read


def _arg_reduction(fn):
    def read(node):
        if node.attr("select_last_index", 0):
            raise node.error("select_last_index=1 (the last extremum) has no diptych op")
        x = node.input(0)
        return fn(
            x, axis=node.attr("axis", 0) % len(_shape(x)), keepdims=bool(node.attr("keepdims", 1))
        )

    return read


def _one_hot(node):
    indices, depth = node.input(0), int(node.const(1))
    off, on = node.const(2)
    if node.attr("axis", -1) not in (-1, len(_shape(indices))):
        raise node.error("OneHot along an axis other than the last has no diptych op")
    if _dtype(indices).kind == "f":
        indices = F.cast(indices, np.int64)
    hot = F.one_hot(indices, depth, np.asarray(off).dtype)
    return hot if (off, on) == (0, 1) else hot * (on - off) + off


# ---- values known while reading ---------------------------------------------------------


_CONSTANT_ATTRIBUTES = {
    "value": numpy_helper.to_array,
    "value_float": np.float32,
    "value_floats": lambda v: np.asarray(v, np.float32),
    "value_int": np.int64,
    "value_ints": lambda v: np.asarray(v, np.int64),
}


def _constant(node):
    for name, convert in _CONSTANT_ATTRIBUTES.items():
        value = node.attr(name)
        if value is not None:
            return np.asarray(convert(value))
    raise node.error("a Constant of this kind (sparse, strings) has no diptych form")


def _constant_of_shape(node):
    value = node.attr("value")
    fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return np.full(tuple(int(d) for d in node.const(0)), fill.reshape(()))


def _shape_of(node):
    shape = _shape(node.input(0))
    if None in shape:
        raise node.error("the value's shape is known only when the graph runs")
    return np.asarray(shape[node.attr("start", 0) : node.attr("end", None)], np.int64)


_ONE_TO_ONE = {
    "Add": F.add, "Sub": F.sub, "Mul": F.mul, "Pow": F.pow, "Neg": F.neg, "Exp": F.exp,
    "Log": F.log, "Sqrt": F.sqrt, "Abs": F.abs, "Sign": F.sign, "Tanh": F.tanh,
    "Sigmoid": F.sigmoid, "Relu": F.relu, "Sin": F.sin, "Cos": F.cos, "Erf": F.erf,
    "MatMul": F.matmul, "Where": F.where, "Equal": F.eq, "Less": F.lt, "LessOrEqual": F.le,
    "Greater": F.gt, "GreaterOrEqual": F.ge, "And": F.logical_and, "Or": F.logical_or,
    "Not": F.logical_not, "Identity": lambda x: x, "Floor": lambda x: F.floor_divide(x, 1),
}  # fmt: skip

READERS = {
    **{op: _elementwise(fn) for op, fn in _ONE_TO_ONE.items()},
    "Max": _variadic(F.maximum), "Min": _variadic(F.minimum), "Sum": _variadic(F.add),
    "Div": _div, "Mod": _mod, "Cast": _cast, "Clip": _clip, "Gemm": _gemm,
    "Softmax": _softmax(F.softmax), "LogSoftmax": _softmax(F.log_softmax),
    "Reshape": _reshape, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Expand": _expand,
    "Transpose": lambda node: F.permute(node.input(0), node.attr(
        "perm", list(reversed(range(len(_shape(node.input(0)))))))),
    "Concat": lambda node: F.concat(node.inputs(), axis=node.attr("axis")),
    "Pad": _pad, "Slice": _slice, "Gather": _gather, "Compress": _compress,
    "Flatten": _flatten, "ScatterElements": _scatter_elements,
    "ReduceSum": _reduction(F.sum, 13), "ReduceMax": _reduction(F.max, 18),
    "ReduceMin": _reduction(F.min, 18), "ReduceMean": _reduction(F.mean, 18),
    "ArgMax": _arg_reduction(F.argmax), "ArgMin": _arg_reduction(F.argmin),
    "OneHot": _one_hot, "Constant": _constant, "ConstantOfShape": _constant_of_shape,
    "Shape": _shape_of,
}  # fmt: skip
