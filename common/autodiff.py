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


def topological_order(roots: list, parents: Callable, key: Callable,
                      needs_grad: Callable) -> list:
    """Values reachable from `roots` that need a gradient, each after its inputs."""
    order, seen = [], set()
    stack = [(root, False) for root in roots]
    while stack:
        value, expanded = stack.pop()
        if expanded:
            order.append(value)
            continue
        if key(value) in seen:
            continue
        seen.add(key(value))
        made_by = parents(value)
        if made_by is None:
            order.append(value)
            continue
        stack.append((value, True))
        stack.extend((a, False) for a in made_by[1] if needs_grad(a) and key(a) not in seen)
    return order


def _shape_known_equal(a: tuple | None, b: tuple | None) -> bool:
    return a is not None and a == b and None not in a


def backpropagate(roots: list, seeds: list, parents: Callable, key: Callable,
                  needs_grad: Callable, capture: Callable,
                  after: Callable | None = None) -> dict:
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
    for value in reversed(order):
        g = grads.pop(key(value), None)
        if g is None:
            continue
        if capture(value):
            found[key(value)] = (value, g)
        made_by = parents(value)
        if made_by is None:
            continue
        op, inputs, params = made_by
        if op.vjp is None:  # not differentiable (comparisons, stop_gradient): nothing flows
            continue
        needs = [needs_grad(a) for a in inputs]
        for x, need, grad in zip(inputs, needs, op.grad_formulas(g, value, inputs, needs, params)):
            if not need or grad is None:
                continue
            if not isinstance(grad, PartialTuple):
                if not _shape_known_equal(grad.shape, x.shape):
                    grad = F.sum_to_like(grad, x)  # undo broadcasting, once, for every op
                if grad.dtype != x.dtype:
                    grad = F.cast(grad, x.dtype)  # a gradient has its input's dtype
            k = key(x)
            grads[k] = grad if k not in grads else grads[k] + grad
        if after is not None:
            after(value)
    return found
