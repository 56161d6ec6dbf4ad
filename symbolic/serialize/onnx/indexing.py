"""Indexing and sliding windows as ONNX: getitem by Slice, Gather and Unsqueeze where one
node per index part gives numpy's result; otherwise, and for setitem, scatter_add and
fold, by positions found while exporting (`positions`): the op's own kernel run on the
numbers 0..n-1 says where each value comes from or goes.

    x[:, 1:3]          -> Slice(x, [1], [3], [1], [1])
    x[[0, 2], [1, 1]]  -> Gather(Reshape(x, [-1]), [1, 9])       for x of shape (4, 4)
"""

from __future__ import annotations

import math

import numpy as np
from onnx import numpy_helper

from common.ops import OPS
from common.ops.indexing import ARRAY
from symbolic.serialize.onnx.emitter import INT64_MAX, INT64_MIN, Arg, Call, Emitter, unsupported

BOOL, INT64 = np.dtype(bool), np.dtype(np.int64)


def _unfold(emit: Emitter, call: Call) -> str:
    """Windows by two Gathers: rows (OH, kh) of H, then columns (OW, kw) of W, reordered to
    (N, C, OH, OW, kh, kw); the window positions need H and W known."""
    x, (kh, kw), (sh, sw) = call.args[0], call.params["size"], call.params["stride"]
    oh, ow = call.aval.shape[2:4]
    if oh is None or ow is None:
        raise unsupported(
            call,
            "the window positions depend on a height or width unknown "
            "while exporting. Fix: give the input a concrete shape.",
        )
    rows = np.arange(oh)[:, None] * sh + np.arange(kh)[None, :]
    cols = np.arange(ow)[:, None] * sw + np.arange(kw)[None, :]
    picked = emit.node("Gather", [x.name, emit.ints(rows)], axis=2)  # (N, C, OH, kh, W)
    picked = emit.node("Gather", [picked, emit.ints(cols)], axis=4)  # (N, C, OH, kh, OW, kw)
    return emit.node("Transpose", [picked], perm=[0, 1, 2, 4, 3, 5])


# ---- data moved by position: getitem's general case, setitem, scatter_add, fold ---------


def positions(call: Call, op_name: str, shape: tuple, *arrays: Arg, **params) -> np.ndarray:
    """Where each element of a data-moving op's output comes from: the op's own kernel run
    on the numbers 0..n-1 laid out in `shape` (so the positions are numpy's by construction).
    Needs the shape and every index array known while exporting."""
    values = [a.value for a in arrays]
    if shape is None or None in shape or any(v is None for v in values):
        raise unsupported(
            call,
            "where the values go depends on sizes or index arrays unknown while exporting. "
            "Fix: give the placeholders concrete shapes and index with constant arrays.",
        )
    numbers = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    return np.asarray(OPS[op_name].kernel(np, numbers, *values, **params))


def _flat(emit: Emitter, name: str) -> str:
    return emit.node("Reshape", [name, emit.ints([-1])])


def _scatter(emit: Emitter, call: Call, where: np.ndarray, updates: str, into: str | None) -> str:
    """`updates` written (into a copy of `into`) or added (into zeros) at flat positions,
    reshaped to the result's shape."""
    size = math.prod(call.aval.shape)
    if into is None:
        zero = np.zeros(1, call.aval.dtype)
        base = emit.node(
            "ConstantOfShape", [emit.ints([size])], value=numpy_helper.from_array(zero, "zero")
        )
    else:
        base = _flat(emit, into)
    updates = _flat(emit, emit.node("Expand", [updates, emit.ints(list(where.shape))]))
    written = emit.node(
        "ScatterElements",
        [base, emit.ints(where.reshape(-1)), updates],
        axis=0,
        reduction="none" if into is not None else "add",
    )
    return emit.node("Reshape", [written, emit.ints(list(call.aval.shape))])


def _getitem(emit: Emitter, call: Call) -> str:
    x, arrays, index = call.args[0], call.args[1:], call.params["index"]
    if _stepwise(index, arrays):
        return _index_in_steps(emit, x.name, _without_ellipsis(index, x.aval.ndim, arrays), arrays)
    if index == (ARRAY,) and arrays[0].aval.dtype == BOOL and x.aval.shape is not None:
        return _masked(emit, call)
    where = positions(call, "getitem", x.aval.shape, *arrays, index=index)
    return emit.node("Gather", [_flat(emit, x.name), emit.ints(where)], axis=0)


def _stepwise(index: tuple, arrays: tuple) -> bool:
    """Whether one ONNX node per index part gives numpy's result: with no index array, or
    one integer array and no int (numpy moves the axes of several advanced indices)."""
    if not arrays:
        return True
    only = arrays[0].aval
    return (
        len(arrays) == 1
        and only.dtype.kind in "iu"
        and only.shape is not None
        and not any(isinstance(p, int) for p in index)
    )


def _without_ellipsis(index: tuple, ndim: int, arrays: tuple) -> tuple:
    used = sum(isinstance(p, (int, slice)) for p in index) + sum(
        a.aval.ndim if a.aval.dtype == BOOL else 1 for a in arrays
    )
    parts: list = []
    for part in index:
        parts += [slice(None)] * (ndim - used) if part is Ellipsis else [part]
    return tuple(parts)


def _index_in_steps(emit: Emitter, value: str, index: tuple, arrays: tuple) -> str:
    axis, arrays = 0, iter(arrays)
    for part in index:
        if part is None:
            value = emit.node("Unsqueeze", [value, emit.ints([axis])])
            axis += 1
        elif isinstance(part, slice):
            if part != slice(None):
                value = _slice(emit, value, axis, part)
            axis += 1
        elif isinstance(part, str) and part == ARRAY:
            array = next(arrays)
            value = emit.node("Gather", [value, emit.operand(array, INT64)], axis=axis)
            axis += array.aval.ndim
        else:  # an int: a scalar index drops the axis
            value = emit.node("Gather", [value, emit.ints(part)], axis=axis)
    return value


def _slice(emit: Emitter, value: str, axis: int, part: slice) -> str:
    step = 1 if part.step is None else part.step
    start = part.start if part.start is not None else 0 if step > 0 else INT64_MAX
    stop = part.stop if part.stop is not None else INT64_MAX if step > 0 else INT64_MIN
    bounds = [emit.ints([v]) for v in (start, stop, axis, step)]
    return emit.node("Slice", [value, *bounds])


def _masked(emit: Emitter, call: Call) -> str:
    """x[mask]: the rows of x flattened over the mask's axes where the flat mask holds."""
    x, mask = call.args
    rest = list(x.aval.shape[mask.aval.ndim :])
    if None in rest:
        raise unsupported(
            call,
            "a boolean mask over an input whose trailing sizes are unknown "
            "while exporting. Fix: give the input a concrete shape.",
        )
    rows = emit.node("Reshape", [x.name, emit.ints([-1, *rest])])
    return emit.node("Compress", [rows, _flat(emit, mask.name)], axis=0)


def _setitem(emit: Emitter, call: Call) -> str:
    x, value, *arrays = call.args
    index, dtype = call.params["index"], call.aval.dtype
    new = emit.operand(value, dtype)
    whole_mask = index == (ARRAY,) and arrays[0].aval.dtype == BOOL
    if whole_mask and arrays[0].aval.shape == x.aval.shape and value.aval.ndim == 0:
        return emit.node("Where", [arrays[0].name, new, x.name])
    where = positions(call, "getitem", x.aval.shape, *arrays, index=index)
    return _scatter(emit, call, where, new, into=x.name)


def _scatter_add(emit: Emitter, call: Call) -> str:
    g, like, *arrays = call.args
    where = positions(call, "getitem", like.aval.shape, *arrays, index=call.params["index"])
    return _scatter(emit, call, where, g.name, into=None)


def _fold(emit: Emitter, call: Call) -> str:
    shape, size, stride = call.params["shape"], call.params["size"], call.params["stride"]
    where = positions(call, "unfold", tuple(shape), size=size, stride=stride)
    return _scatter(emit, call, where, call.args[0].name, into=None)


BUILDERS = {
    "getitem": _getitem,
    "setitem": _setitem,
    "scatter_add": _scatter_add,
    "unfold": _unfold,
    "fold": _fold,
}
