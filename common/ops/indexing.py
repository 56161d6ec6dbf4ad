"""Indexing: `x[index]` (getitem), its adjoint scatter_add, and `setitem`, the value of
`x[index] = value` as a new array (how symbols, which cannot change, write through a mask;
eager tensors record it for an in-place write that needs a gradient).

An index is split into a static template (ints, slices, None, Ellipsis) kept in the
params, and array parts (integer or boolean arrays, tensors, symbols) passed as inputs,
where the template holds `ARRAY` in their place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F
from common.dispatch import apply
from common.ops.core import Aval, OpDef, OpError, ShapeError, declare, fmt

__all__ = ["getitem", "scatter_add", "setitem"]

ARRAY = "<array>"


def split_index(index: Any) -> tuple[tuple, list]:
    """`index` as (template, array parts): the template goes in the params, the arrays in
    the inputs (so tensors and symbols among them become graph inputs)."""
    parts = index if isinstance(index, tuple) else (index,)
    template, arrays = [], []
    for part in parts:
        if isinstance(part, (slice, int, np.integer, type(None), type(Ellipsis))):
            template.append(int(part) if isinstance(part, np.integer) else part)
        elif isinstance(part, (list, bool)) or hasattr(part, "shape"):
            template.append(ARRAY)
            arrays.append(np.asarray(part) if isinstance(part, (list, bool)) else part)
        else:
            raise OpError(
                f"getitem: cannot index with a {type(part).__name__}. Fix: use ints, "
                "slices, None, ..., or integer/boolean arrays."
            )
    return tuple(template), arrays


def join_index(template: tuple, arrays) -> tuple:
    """The index again, each `ARRAY` in `template` replaced by the next of `arrays`."""
    arrays = iter(arrays)
    # by value, not identity: a template read back from generated source or a file holds
    # an equal string, not this object
    return tuple(
        next(arrays) if isinstance(part, str) and part == ARRAY else part for part in template
    )


_UNKNOWN = 1_000_003  # stands in for an unknown dimension while numpy works out the shape


def _getitem_abstract(x: Aval, *index_avals: Aval, index: tuple) -> Aval:
    for a in index_avals:
        if a.dtype.kind not in "biu":
            raise OpError(
                f"getitem: index arrays must hold integers or booleans, got "
                f"{a.dtype}. Fix: convert the index with .astype(int)."
            )
    if any(a.dtype == np.bool_ for a in index_avals):
        return Aval((None,) + x.shape[sum(a.ndim for a in index_avals) :], x.dtype)
    ghost = np.lib.stride_tricks.as_strided(
        np.zeros(1, np.int8), tuple(_UNKNOWN if d is None else d for d in x.shape), (0,) * x.ndim
    )
    fakes = [np.zeros(tuple(1 if d is None else d for d in a.shape), np.intp) for a in index_avals]
    try:
        shape = ghost[join_index(index, fakes)].shape
    except IndexError as exc:
        raise OpError(
            f"getitem: {exc} (input shape {fmt(x.shape)}). Fix: keep every index inside its axis."
        ) from None
    return Aval(tuple(None if d >= _UNKNOWN - 1_000 else d for d in shape), x.dtype)


def _getitem_vjp(g, out, x, *arrays, index):
    grads = [F.scatter_add(g, x, index, *arrays)]
    return grads + [None] * len(arrays)


GETITEM = declare(OpDef(
    "getitem", "shape", lambda xp, x, *arrays, index: x[join_index(index, arrays)],
    _getitem_abstract, vjp=_getitem_vjp, view=True,
    samples=lambda rng: [
        ((rng.normal(size=(4, 5)), np.array([0, 4, 4])), {"index": (slice(1, 3), ARRAY)}),
        ((rng.normal(size=(4, 5)), np.array([[3], [0]])), {"index": (ARRAY, slice(None, None, 2))}),
        ((rng.normal(size=(4, 5)),), {"index": (1, slice(None, None, -2))}),
    ],
))  # fmt: skip


def _scatter_add_kernel(xp, g, like, *arrays, index):
    out = xp.zeros(like.shape, dtype=g.dtype)
    where = join_index(index, arrays)
    if arrays:  # repeated indices must accumulate
        if xp is np:
            np.add.at(out, where, g)
        else:
            import cupyx  # only on the GPU path

            cupyx.scatter_add(out, where, g)
    else:
        out[where] = g
    return out


SCATTER_ADD = declare(OpDef(
    "scatter_add", "shape", _scatter_add_kernel,
    lambda g, like, *arrays, index: Aval(like.shape, g.dtype),
    vjp=lambda h, out, g, like, *arrays, index: [F.getitem(h, join_index(index, arrays))]
    + [None] * (len(arrays) + 1),
    samples=lambda rng: [((rng.normal(size=(2, 3)), rng.normal(size=(4, 3))),
                          {"index": (slice(1, 3),)})],
))  # fmt: skip


def _setitem_kernel(xp, x, value, *arrays, index):
    out = x.copy()
    out[join_index(index, arrays)] = value
    return out


def _setitem_abstract(x: Aval, value: Aval, *index_avals: Aval, index: tuple) -> Aval:
    """`x`'s type, once `value` is known to fit the part of `x` that `index` picks."""
    part = _getitem_abstract(x, *index_avals, index=index).shape
    fits = value.ndim <= len(part) and all(
        v in (1, p) or None in (v, p) for v, p in zip(value.shape[::-1], part[::-1])
    )
    if not fits:
        raise ShapeError(
            f"setitem: a value of shape {fmt(value.shape)} does not fit x[index] "
            f"of shape {fmt(part)} (x is {fmt(x.shape)}). Fix: give the value the "
            "shape of the part it replaces, or one that broadcasts to it."
        )
    return Aval(x.shape, x.dtype)


SETITEM = declare(OpDef(
    "setitem", "shape", _setitem_kernel, _setitem_abstract,
    vjp=(lambda g, out, x, value, *arrays, index: setitem(g, join_index(index, arrays), 0),
         lambda g, out, x, value, *arrays, index: F.getitem(g, join_index(index, arrays))),
    samples=lambda rng: [
        ((rng.normal(size=(4, 5)), rng.normal(size=(2, 5))), {"index": (slice(1, 3),)}),
        ((rng.normal(size=(4, 5)), rng.normal(size=()), rng.normal(size=(4, 5)) > 0),
         {"index": (ARRAY,)}),
        ((rng.normal(size=(4, 5)), rng.normal(size=(3, 1)), np.array([3, 0, 2])),
         {"index": (ARRAY, slice(None))}),
    ],
))  # fmt: skip


# ---- the public functions ---------------------------------------------------------------


def getitem(x: Any, index: Any) -> Any:
    """`x[index]`: ints, slices, None, ..., and integer or boolean arrays."""
    template, arrays = split_index(index)
    return apply(GETITEM, x, *arrays, index=template)


def scatter_add(g: Any, like: Any, index: tuple, *arrays: Any) -> Any:
    """Zeros shaped like `like` with `g` added at `index` (repeats add up): getitem's VJP."""
    return apply(SCATTER_ADD, g, like, *arrays, index=index)


def setitem(x: Any, index: Any, value: Any) -> Any:
    """`x` with `x[index] = value`, as a new array (`x` is unchanged): the out-of-place write
    that works on symbols too. Gradients flow to `value` where it was written, and to `x`
    elsewhere."""
    template, arrays = split_index(index)
    return apply(SETITEM, x, value, *arrays, index=template)
