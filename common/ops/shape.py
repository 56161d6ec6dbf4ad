"""Shape ops: reshape, permute, broadcast, expand/squeeze, concat, pad (indexing is in
`common.ops.indexing`).

Most of these return views (`view=True`): no data moves, and the memory planner knows
never to write into their output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F
from common.dispatch import apply
from common.ops.core import (
    Aval,
    OpDef,
    OpError,
    ShapeError,
    aval_of,
    broadcast_shapes,
    declare,
    fmt,
    normalize_axes,
    same_as_input,
    uniform_samples,
)

__all__ = [
    "reshape", "permute", "transpose", "broadcast_to", "broadcast_like", "expand_dims",
    "squeeze", "concat", "cat", "stack", "pad", "stop_gradient", "detach", "flatten",
]  # fmt: skip


def _ndim(x: Any) -> int:
    return x.ndim if hasattr(x, "ndim") else np.ndim(x)


def _known_or_minus_one(shape: tuple) -> tuple:
    """A shape to reshape back to: one unknown dimension can be inferred (-1), more cannot."""
    if sum(d is None for d in shape) > 1:
        raise ShapeError(
            f"reshape: cannot undo a reshape of {fmt(shape)}, which has several "
            "unknown dimensions. Fix: give the placeholder concrete sizes, or "
            "use S.function, which traces once per input shape."
        )
    return tuple(-1 if d is None else d for d in shape)


# ---- reshape ----------------------------------------------------------------------------


def _reshape_abstract(x: Aval, shape: tuple) -> Aval:
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: at most one dimension may be -1, got {fmt(shape)}")
    if None in x.shape:
        return Aval(tuple(None if d == -1 else d for d in shape), x.dtype)
    size = int(np.prod(x.shape))
    known = int(np.prod([d for d in shape if d != -1]))
    if -1 in shape:
        if known == 0 or size % known:
            raise ShapeError(
                f"reshape: cannot reshape {fmt(x.shape)} ({size} elements) "
                f"into {fmt(shape)}. Fix: the known dimensions must divide {size}."
            )
        shape = tuple(size // known if d == -1 else d for d in shape)
    elif known != size:
        raise ShapeError(
            f"reshape: cannot reshape {fmt(x.shape)} ({size} elements) into "
            f"{fmt(shape)} ({known} elements). Fix: keep the element count."
        )
    return Aval(tuple(shape), x.dtype)


RESHAPE = declare(OpDef(
    "reshape", "shape", lambda xp, x, shape: xp.reshape(x, shape), _reshape_abstract,
    vjp=(lambda g, out, x, shape: F.reshape(g, _known_or_minus_one(x.shape)),), view=True,
    samples=uniform_samples([((3, 4),)], shape=(2, -1)),
))  # fmt: skip


# ---- permute, broadcast, expand, squeeze ------------------------------------------------


def _permute_abstract(x: Aval, dims: tuple) -> Aval:
    if sorted(dims) != list(range(x.ndim)):
        raise ShapeError(
            f"permute: {dims} is not a permutation of the {x.ndim} axes of "
            f"{fmt(x.shape)}. Fix: name every axis 0..{x.ndim - 1} once."
        )
    return Aval(tuple(x.shape[d] for d in dims), x.dtype)


PERMUTE = declare(OpDef(
    "permute", "shape", lambda xp, x, dims: xp.transpose(x, dims), _permute_abstract,
    vjp=(lambda g, out, x, dims: F.permute(g, tuple(int(i) for i in np.argsort(dims))),),
    view=True, samples=uniform_samples([((2, 3, 4),)], dims=(2, 0, 1)),
))  # fmt: skip


def _broadcast_to_abstract(x: Aval, shape: tuple) -> Aval:
    out = broadcast_shapes("broadcast_to", x.shape, shape)
    if len(x.shape) > len(shape) or any(a != b and None not in (a, b) for a, b in zip(out, shape)):
        raise ShapeError(
            f"broadcast_to: cannot broadcast {fmt(x.shape)} to {fmt(shape)}. "
            "Fix: the input's dimensions must be 1 or equal to the target's."
        )
    return Aval(tuple(shape), x.dtype)


BROADCAST_TO = declare(OpDef(
    "broadcast_to", "shape", lambda xp, x, shape: xp.broadcast_to(x, shape),
    _broadcast_to_abstract, vjp=(lambda g, out, x, shape: F.sum_to_like(g, x),), view=True,
    samples=uniform_samples([((3, 1),)], shape=(2, 3, 4)),
))  # fmt: skip


def _broadcast_like_kernel(xp, x, like):
    return x if x.shape == like.shape else xp.broadcast_to(x, like.shape)


def _broadcast_like_abstract(x: Aval, like: Aval) -> Aval:
    return Aval(_broadcast_to_abstract(x, like.shape).shape, x.dtype)


BROADCAST_LIKE = declare(OpDef(
    "broadcast_like", "shape", _broadcast_like_kernel,
    _broadcast_like_abstract, vjp=(lambda g, out, x, like: F.sum_to_like(g, x), None),
    view=True, samples=uniform_samples([((3, 1), (2, 3, 4))]),
))  # fmt: skip

EXPAND_DIMS = declare(OpDef(
    "expand_dims", "shape", lambda xp, x, axis: xp.expand_dims(x, axis),
    lambda x, axis: Aval(x.shape[:axis] + (1,) + x.shape[axis:], x.dtype),
    vjp=(lambda g, out, x, axis: F.squeeze(g, axis),), view=True,
    samples=uniform_samples([((3, 4),)], axis=1),
))  # fmt: skip


def _squeeze_abstract(x: Aval, axis: tuple) -> Aval:
    for a in axis:
        if x.shape[a] not in (1, None):
            raise ShapeError(
                f"squeeze: axis {a} of {fmt(x.shape)} has size {x.shape[a]}, "
                "not 1. Fix: squeeze only axes of size 1."
            )
    return Aval(tuple(d for i, d in enumerate(x.shape) if i not in axis), x.dtype)


def _expand_axes(g: Any, axes: tuple) -> Any:
    for a in axes:  # ascending: each lands where the squeezed axis was
        g = F.expand_dims(g, a)
    return g


SQUEEZE = declare(OpDef(
    "squeeze", "shape", lambda xp, x, axis: xp.squeeze(x, axis), _squeeze_abstract,
    vjp=(lambda g, out, x, axis: _expand_axes(g, axis),), view=True,
    samples=uniform_samples([((3, 1, 4),)], axis=(1,)),
))  # fmt: skip

STOP_GRADIENT = declare(OpDef(
    "stop_gradient", "shape", lambda xp, x: x, same_as_input, vjp=None, view=True,
))  # fmt: skip


# ---- concatenation and padding ----------------------------------------------------------


def _concat_abstract(*xs: Aval, axis: int) -> Aval:
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or any(
            a != b and None not in (a, b)
            for i, (a, b) in enumerate(zip(x.shape, first.shape))
            if i != axis
        ):
            raise ShapeError(
                f"concat: shapes {fmt(first.shape)} and {fmt(x.shape)} differ "
                f"outside axis {axis}. Fix: match every other dimension."
            )
    sizes = [x.shape[axis] for x in xs]
    total = None if None in sizes else int(np.sum(sizes))
    shape = first.shape[:axis] + (total,) + first.shape[axis + 1 :]
    return Aval(shape, np.result_type(*(x.dtype for x in xs)))


def _concat_vjp(g, out, *xs, axis):
    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        grads.append(F.getitem(g, (slice(None),) * axis + (slice(start, stop),)))
        start = stop
    return grads


CONCAT = declare(OpDef(
    "concat", "shape", lambda xp, *xs, axis: xp.concatenate(xs, axis=axis), _concat_abstract,
    vjp=_concat_vjp, samples=uniform_samples([((2, 3), (4, 3))], axis=0),
))  # fmt: skip


def _pad_kernel(xp, x, widths):
    out = xp.zeros(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, widths)), dtype=x.dtype)
    out[tuple(slice(lo, lo + d) for d, (lo, _) in zip(x.shape, widths))] = x
    return out


PAD = declare(OpDef(
    "pad", "shape", _pad_kernel,
    lambda x, widths: Aval(tuple(None if d is None else d + lo + hi
                                 for d, (lo, hi) in zip(x.shape, widths)), x.dtype),
    vjp=(lambda g, out, x, widths: F.getitem(
        g, tuple(slice(lo, -hi if hi else None) for lo, hi in widths)),),
    samples=uniform_samples([((2, 3),)], widths=((1, 0), (2, 1))),
))  # fmt: skip


# ---- the public functions ---------------------------------------------------------------


def reshape(x: Any, *shape: Any) -> Any:
    """`x` with a new shape; one dimension may be -1. `reshape(x, 2, 3)` or `(x, (2, 3))`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    shape = tuple(int(d) for d in shape)
    if shape == tuple(x.shape):
        return x
    return apply(RESHAPE, x, shape=shape)


def flatten(x: Any, start_dim: int = 1, end_dim: int = -1) -> Any:
    """Merge the axes from `start_dim` to `end_dim` (both included) into one; by default
    every axis after the batch axis."""
    shape = tuple(x.shape)
    first, last = (
        normalize_axes("flatten", d, len(shape))[0] if shape else 0 for d in (start_dim, end_dim)
    )
    if first > last:
        raise ShapeError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for "
            f"shape {fmt(shape)}. Fix: give start_dim <= end_dim."
        )
    return reshape(x, shape[:first] + (-1,) + shape[last + 1 :])


def permute(x: Any, dims: Any) -> Any:
    """Reorder the axes: `permute(x, (2, 0, 1))`."""
    return apply(PERMUTE, x, dims=normalize_axes_order(dims, _ndim(x)))


def normalize_axes_order(dims: Any, ndim: int) -> tuple:
    return tuple(int(d) % max(ndim, 1) for d in dims)


def transpose(x: Any, dim0: int = -2, dim1: int = -1) -> Any:
    """Swap two axes (by default the last two, as a matrix transpose)."""
    ndim = _ndim(x)
    if ndim == 2 and {dim0, dim1} in ({-2, -1}, {0, 1}):
        return apply(PERMUTE, x, dims=(1, 0))
    dims = list(range(ndim))
    a, b = normalize_axes("transpose", dim0, ndim)[0], normalize_axes("transpose", dim1, ndim)[0]
    dims[a], dims[b] = dims[b], dims[a]
    return apply(PERMUTE, x, dims=tuple(dims))


def broadcast_to(x: Any, shape: tuple) -> Any:
    return apply(BROADCAST_TO, x, shape=tuple(shape))


def broadcast_like(x: Any, like: Any) -> Any:
    """`x` broadcast to the shape of `like` (known when the graph runs, if not before)."""
    return apply(BROADCAST_LIKE, x, like)


def expand_dims(x: Any, axis: int) -> Any:
    """Insert an axis of size 1 at `axis`."""
    ndim = _ndim(x) + 1
    return apply(EXPAND_DIMS, x, axis=normalize_axes("expand_dims", axis, ndim)[0])


def squeeze(x: Any, axis: Any = None) -> Any:
    """Remove axes of size 1 (all of them when `axis` is None)."""
    if axis is None:
        axis = tuple(i for i, d in enumerate(x.shape) if d == 1)
    return apply(SQUEEZE, x, axis=normalize_axes("squeeze", axis, _ndim(x)))


def stop_gradient(x: Any) -> Any:
    """`x`, through which no gradient flows (`detach` in torch)."""
    return apply(STOP_GRADIENT, x)


detach = stop_gradient


def concat(xs: Any, axis: int = 0) -> Any:
    """Join arrays along an existing axis."""
    xs = list(xs)
    if not xs:
        raise OpError("concat: nothing to concatenate. Fix: pass at least one array.")
    axis = normalize_axes("concat", axis, max(aval_of(x).ndim for x in xs))[0]
    return apply(CONCAT, *xs, axis=axis)


cat = concat  # torch's name


def stack(xs: Any, axis: int = 0) -> Any:
    """Join arrays along a new axis."""
    xs = list(xs)
    if not xs:
        raise OpError("stack: nothing to stack. Fix: pass at least one array.")
    axis = normalize_axes("stack", axis, aval_of(xs[0]).ndim + 1)[0]
    return concat([expand_dims(x, axis) for x in xs], axis)


def pad(x: Any, widths: Any) -> Any:
    """Zero padding: `widths` holds a (before, after) pair per axis."""
    return apply(PAD, x, widths=tuple((int(lo), int(hi)) for lo, hi in widths))
