"""`S.grad`: the backward graph, built now from the same VJP rules the eager engine runs.

The shared driver (`common.autodiff`) walks the graph from `y` back to `xs`; each VJP
formula, applied to symbols, adds nodes instead of computing numbers. Gradients of
gradients work because the result is an ordinary graph.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np

from common import functional as F
from common.autodiff import backpropagate
from common.ops.core import OpError
from symbolic.graph import BackwardScope, Node, ancestors_in_order, building_backward
from symbolic.symbol import Symbol, as_symbol, constant

# What S.grad returned each node as: node -> the xs it is the gradient of (one node can be
# the gradient of several: `a + b` passes one cotangent to both). Pictures label outputs by it.
_gradient_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def gradient_of(node: Node) -> tuple[Node, ...]:
    """The nodes that S.grad returned `node` as the gradient of (empty for other nodes)."""
    return _gradient_of.get(node, ())


class _AtForwardLine:
    """A node's op for the driver: applying its VJP first points the scope at the node's
    line, so the gradient nodes built next (the VJP's, its unbroadcasting, the sums of
    gradients reaching an input twice) name the user's forward line."""

    def __init__(self, node: Node, scope: BackwardScope) -> None:
        self.node, self.scope, self.vjp = node, scope, node.op.vjp

    def grad_formulas(self, *args: Any) -> list:
        self.scope.line = self.node.source
        return self.node.op.grad_formulas(*args)


def _parents_in(scope: BackwardScope) -> Callable[[Symbol], tuple | None]:
    def parents(value: Symbol) -> tuple | None:
        node = value.node
        if node.is_source:
            return None
        inputs = tuple(Symbol(a) if isinstance(a, Node) else a for a in node.inputs)
        return _AtForwardLine(node, scope), inputs, node.params

    return parents


def _depending_on(xs: list[Node], roots: list[Node]) -> set[int]:
    """Ids of the nodes between `xs` and `roots`: only they can carry a gradient."""
    reach = {x.id for x in xs}
    for node in ancestors_in_order(roots):
        if node.id not in reach and any(isinstance(a, Node) and a.id in reach for a in node.inputs):
            reach.add(node.id)
    return reach


def _check_differentiable(x: Symbol, position: int) -> None:
    if x.dtype.kind != "f":
        raise OpError(
            f"grad: input {position} has dtype {x.dtype}; only floating-point values "
            "have gradients. Fix: differentiate with respect to float placeholders "
            "or variables."
        )


def _seed(y: Symbol) -> Symbol:
    if y.shape is not None and (None in y.shape or int(np.prod(y.shape)) != 1):
        raise OpError(
            f"grad: y has shape {y.shape}, not a single value, so the gradient to "
            "start from is ambiguous. Fix: reduce y first (F.sum or F.mean), or pass "
            "grad_y."
        )
    if y.shape is not None:  # known: the seed is a constant of y's own shape
        return constant(np.ones(y.shape, y.dtype))
    return F.broadcast_like(constant(np.ones((), y.dtype)), y)


def _seeds(ys: list[Symbol], grad_y: Any, scope: BackwardScope) -> list[Symbol]:
    if grad_y is not None:
        return [as_symbol(g) for g in (grad_y if isinstance(grad_y, (list, tuple)) else [grad_y])]
    seeds = []
    for y in ys:
        scope.line = y.node.source  # d(y)/d(y) = 1: made for the line that made y
        seeds.append(_seed(y))
    return seeds


def grad(y: Any, xs: Any, grad_y: Any = None) -> Any:
    """Symbols for d(y)/d(x) for each x in `xs` (zeros where y does not depend on x).

    `y` must be a single value unless `grad_y` (the gradient flowing into y) is given;
    a list of ys with a list of grad_ys gives the gradient of sum(<y_i, grad_y_i>).
    """
    with building_backward() as scope:  # every node made here is tagged `backward`
        return _grad(y, xs, grad_y, scope)


def _grad(y: Any, xs: Any, grad_y: Any, scope: BackwardScope) -> Any:
    ys = [as_symbol(v) for v in (y if isinstance(y, (list, tuple)) else [y])]
    single = not isinstance(xs, (list, tuple))
    xs = [as_symbol(x) for x in ([xs] if single else xs)]
    for i, x in enumerate(xs):
        _check_differentiable(x, i)
    seeds = _seeds(ys, grad_y, scope)
    reach = _depending_on([x.node for x in xs], [v.node for v in ys])
    wanted = {x.node.id for x in xs}

    def needs_grad(value: Any) -> bool:
        return (
            isinstance(value, Symbol) and value.node.id in reach and value.dtype.kind in "fO"
        )  # floats, and tuples of control-flow nodes

    found = backpropagate(
        ys,
        seeds,
        _parents_in(scope),
        lambda s: s.node.id,
        needs_grad,
        lambda s: s.node.id in wanted,
    )
    out = []
    for x in xs:
        if x.node.id in found:
            out.append(found[x.node.id][1])
        else:  # y does not depend on x: its gradient is zero, made for x's line
            scope.line = x.node.source
            out.append(F.broadcast_like(constant(np.zeros((), x.dtype)), x))
        _gradient_of[out[-1].node] = gradient_of(out[-1].node) + (x.node,)
    return out[0] if single else out
