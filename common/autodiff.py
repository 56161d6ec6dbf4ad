"""The reverse-mode driver both engines share: walk the values reachable from the outputs in
reverse topological order, apply each op's VJP formulas, undo broadcasting, and add up the
gradients of values used more than once.

The engine says how to read its graph through three functions: `parents(v)` gives the
`(op, inputs, params)` that made `v` (None for a leaf), `key(v)` identifies a value, and
`needs_grad(v)` says whether a gradient must flow to it.
"""

from __future__ import annotations

from typing import Any, Callable

from common import functional as F


class PartialTuple(dict):
    """Cotangents of some outputs of a multi-output op (a control-flow node), by output
    index; the outputs not listed have a zero cotangent."""

    def __add__(self, other: PartialTuple) -> PartialTuple:
        merged = PartialTuple(self)
        for index, g in other.items():
            merged[index] = merged[index] + g if index in merged else g
        return merged


def topological_order(roots: list, parents: Callable, key: Callable, needs_grad: Callable) -> list:
    """(value, made_by, needs) for the values reachable from `roots` that need a gradient,
    each after its inputs: made_by is `parents(value)` (None for a leaf or an op with no
    VJP) and needs flags the inputs a gradient must reach; both are read once, here."""
    order, seen = [], set()
    stack = [(root, None, None) for root in roots]
    while stack:
        value, made_by, needs = stack.pop()
        if made_by is not None:  # second visit: its inputs are all in `order` now
            order.append((value, made_by, needs))
            continue
        k = key(value)
        if k in seen:
            continue
        seen.add(k)
        made_by = parents(value)
        if made_by is None or made_by[0].vjp is None:  # a leaf, or nothing flows through
            order.append((value, None, None))
            continue
        needs = []  # filled below, before the second visit reads it
        stack.append((value, made_by, needs))
        for a in made_by[1]:
            need = needs_grad(a)
            needs.append(need)
            if need and key(a) not in seen:
                stack.append((a, None, None))
    return order


def _as_input_gradient(grad: Any, x: Any) -> Any:
    """`grad` summed over broadcast axes and cast to `x`'s dtype (done once, for every op)."""
    if isinstance(grad, PartialTuple):
        return grad
    shape = grad.shape
    if shape != x.shape or shape is None or None in shape:  # the common case skips this
        grad = F.sum_to_like(grad, x)
    return grad if grad.dtype == x.dtype else F.cast(grad, x.dtype)


def backpropagate(
    roots: list,
    seeds: list,
    parents: Callable,
    key: Callable,
    needs_grad: Callable,
    capture: Callable,
    after: Callable | None = None,
) -> dict:
    """Gradients of `roots` weighted by `seeds`, for every value `capture(value)` accepts.

    Returns {key: (value, grad)}. `after(value)` runs once a value's VJP has been applied
    (the eager engine frees the tape there).
    """
    order = topological_order(roots, parents, key, needs_grad)
    grads: dict[Any, Any] = {}
    for root, seed in zip(roots, seeds):
        k = key(root)
        grads[k] = seed if k not in grads else grads[k] + seed
    found = {}
    for value, made_by, needs in reversed(order):
        k = key(value)
        g = grads.pop(k, None)
        if g is None:
            continue
        if capture(value):
            found[k] = (value, g)
        if made_by is None:
            continue
        op, inputs, params = made_by
        for x, need, grad in zip(inputs, needs, op.grad_formulas(g, value, inputs, needs, params)):
            if need and grad is not None:
                grad = _as_input_gradient(grad, x)
                kx = key(x)
                grads[kx] = grad if kx not in grads else grads[kx] + grad
        if after is not None:
            after(value)
    return found
