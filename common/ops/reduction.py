"""Reductions over axes (sum, max, min, argmax, argmin; mean, var and std are composites) and
`sum_to_like`, the unbroadcast.

Axes are normalized by the public functions to a sorted tuple of non-negative ints (or None,
meaning all), so kernels, shape rules and VJPs see one canonical form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import functional as F
from common.dispatch import apply
from common.ops.core import (
    Aval,
    OpDef,
    OpError,
    ShapeError,
    declare,
    fmt,
    normalize_axes,
    uniform_samples,
)

__all__ = ["sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "sum_to_like"]

REDUCE_SAMPLES = uniform_samples([((3, 4),)], axis=(1,), keepdims=False)


def _ndim(x: Any) -> int:
    return x.ndim if hasattr(x, "ndim") else np.ndim(x)


def _array(value: Any) -> Any:
    """Reductions over every axis give numpy scalars; kernels always return arrays."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _reduced_shape(shape: tuple, axis: tuple | None, keepdims: bool) -> tuple:
    axes = range(len(shape)) if axis is None else axis
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _sum_dtype(dtype: Any) -> np.dtype:
    """numpy sums small ints and bools in the platform int."""
    dtype = np.dtype(dtype) if not isinstance(dtype, type) else np.dtype(dtype)
    if dtype.kind in "bi" and dtype.itemsize < 8:
        return np.dtype(np.int64)
    if dtype.kind == "u" and dtype.itemsize < 8:
        return np.dtype(np.uint64)
    return dtype


def _reduction_abstract(dtype_rule):
    def abstract(x: Aval, axis=None, keepdims=False) -> Aval:
        return Aval(_reduced_shape(x.shape, axis, keepdims), dtype_rule(x.dtype))

    return abstract


def _keepdims_view(g: Any, axis: tuple | None, keepdims: bool) -> Any:
    """`g` with the reduced axes reinserted as size 1, so it broadcasts against the input.
    (No shapes are read: the rule holds for symbols of unknown size too.)"""
    if keepdims or axis is None:
        return g
    for a in axis:  # ascending, so each insertion lands where the reduced axis was
        g = F.expand_dims(g, a)
    return g


def _sum_vjp(g, out, x, axis=None, keepdims=False):
    return F.broadcast_like(_keepdims_view(g, axis, keepdims), x)


def _extremum_vjp(g, out, x, axis=None, keepdims=False):
    """Ties share the gradient evenly (as torch.amax does)."""
    g = _keepdims_view(g, axis, keepdims)
    hit = F.cast(x == _keepdims_view(out, axis, keepdims), g.dtype)
    return g * hit / F.sum(hit, axis, keepdims=True)


def _reduction(name: str, dtype_rule, vjp) -> OpDef:
    """A reduction written as the array method of the same name (`x.sum(axis, ...)`)."""

    def kernel(xp, x, axis=None, keepdims=False, out=None):
        return _array(getattr(x, name)(axis=axis, keepdims=keepdims, out=out))

    return declare(
        OpDef(
            name,
            "reduction",
            kernel,
            _reduction_abstract(dtype_rule),
            writes_out=True,
            vjp=(vjp,),
            samples=REDUCE_SAMPLES,
        )
    )


SUM = _reduction("sum", _sum_dtype, _sum_vjp)
MAX = _reduction("max", np.dtype, _extremum_vjp)
MIN = _reduction("min", np.dtype, _extremum_vjp)


def _arg_reduction(name: str) -> OpDef:
    """The index of the extreme value along one axis (None: of the flattened array), as
    int64; the first one on ties, as numpy and torch. No gradient flows through it."""

    def kernel(xp, x, axis=None, keepdims=False):
        return _array(getattr(xp, name)(x, axis=axis, keepdims=keepdims).astype(np.int64))

    def abstract(x: Aval, axis=None, keepdims=False) -> Aval:
        axes = None if axis is None else (axis,)
        return Aval(_reduced_shape(x.shape, axes, keepdims), np.dtype(np.int64))

    return declare(
        OpDef(
            name,
            "reduction",
            kernel,
            abstract,
            samples=uniform_samples([((3, 4),)], axis=1, keepdims=False),
        )
    )


ARGMAX = _arg_reduction("argmax")
ARGMIN = _arg_reduction("argmin")


def _sum_to_kernel(xp, x, like):
    """Sum `x` down to the shape of `like` (the inverse of broadcasting `like` to `x`)."""
    shape = like.shape
    if x.shape == shape:  # only with sizes unknown when the graph was built
        return x.copy()  # a reduction's result owns its memory, so the planner can free x
    lead = x.ndim - len(shape)
    kept = tuple(lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1)
    if not kept:  # only leading axes were added by broadcasting: one plain sum
        return x.sum(axis=tuple(range(lead)))
    return x.sum(axis=tuple(range(lead)) + kept, keepdims=True).reshape(shape)


def _sum_to_abstract(x: Aval, like: Aval) -> Aval:
    lead = x.ndim - like.ndim
    ok = lead >= 0 and all(
        d == 1 or d == x.shape[lead + i] or None in (d, x.shape[lead + i])
        for i, d in enumerate(like.shape)
    )
    if not ok:
        raise ShapeError(f"sum_to_like: {fmt(x.shape)} does not broadcast from {fmt(like.shape)}")
    return Aval(like.shape, x.dtype)


SUM_TO_LIKE = declare(OpDef(
    "sum_to_like", "reduction", _sum_to_kernel, _sum_to_abstract,
    vjp=(lambda g, out, x, like: F.broadcast_like(g, x), None),
    samples=uniform_samples([((2, 3, 4), (3, 1))]),
))  # fmt: skip


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over `axis` (None: all axes)."""
    axis = None if axis is None else normalize_axes("sum", axis, _ndim(x))
    return apply(SUM, x, axis=axis, keepdims=keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over `axis` (None: all axes): the sum divided by the count."""
    shape = x.shape if hasattr(x, "shape") else ()
    axes = normalize_axes("mean", axis, len(shape))
    count = math.prod(shape[a] for a in axes)
    return sum(x, axis, keepdims) / count


def var(
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    *,
    correction: int = 1,
    unbiased: bool | None = None,
) -> Any:
    """Variance over `axis` (None: all axes): the squared deviations from the mean summed
    and divided by count - correction. As torch: correction=1 (Bessel's) by default, and
    `unbiased=False` means correction=0."""
    if unbiased is not None:
        correction = int(unbiased)
    shape = x.shape if hasattr(x, "shape") else ()
    axes = normalize_axes("var", axis, len(shape))
    count = math.prod(shape[a] for a in axes)
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) / (count - correction)


def std(
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    *,
    correction: int = 1,
    unbiased: bool | None = None,
) -> Any:
    """Standard deviation: the square root of `var` (same arguments)."""
    return F.sqrt(var(x, axis, keepdims, correction=correction, unbiased=unbiased))


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Largest value over `axis` (values only; ties share the gradient)."""
    axis = None if axis is None else normalize_axes("max", axis, _ndim(x))
    return apply(MAX, x, axis=axis, keepdims=keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Smallest value over `axis` (values only; ties share the gradient)."""
    axis = None if axis is None else normalize_axes("min", axis, _ndim(x))
    return apply(MIN, x, axis=axis, keepdims=keepdims)


def _single_axis(name: str, axis: Any, x: Any) -> int | None:
    """One non-negative axis, or None: an index is taken along one axis at a time."""
    if axis is None:
        return None
    if not isinstance(axis, (int, np.integer)):
        raise OpError(
            f"{name}: axis must be one int, or None for the flattened array; got "
            f"{axis!r}. Fix: reshape the axes into one first."
        )
    return normalize_axes(name, axis, _ndim(x))[0]


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the largest value along `axis` (None: in the flattened array), int64."""
    return apply(ARGMAX, x, axis=_single_axis("argmax", axis, x), keepdims=keepdims)


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the smallest value along `axis` (None: in the flattened array), int64."""
    return apply(ARGMIN, x, axis=_single_axis("argmin", axis, x), keepdims=keepdims)


def sum_to_like(x: Any, like: Any) -> Any:
    """Sum `x` down to the shape of `like`: the inverse of broadcasting (for gradients)."""
    shape = getattr(x, "shape", None)
    if shape is not None and shape == getattr(like, "shape", ()) and None not in shape:
        return x  # nothing was broadcast
    return apply(SUM_TO_LIKE, x, like)
