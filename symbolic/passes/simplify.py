"""Algebraic simplification: small patterns that give the same values with less work.

    x * 1 -> x    x + 0 -> x    x - 0 -> x    x / 1 -> x    x ** 1 -> x    --x -> x
    x ** 2 -> x * x    x ** 0.5 -> sqrt(x)    permute(permute(x)) -> one permute (or x)
    reshape(reshape(x)) -> one reshape    reshape / broadcast / sum_to / cast to x's own
    shape or dtype -> x    stop_gradient(x) -> x (gradients are already built by now)

`exp(log(x))` and `log(exp(x))` are left alone: neither is exact in floating point
(log(exp(x)) overflows past 88 in float32; exp(log(x)) rounds, and is nan for x < 0).
"""

from __future__ import annotations

from typing import Callable

from common.ops import OPS
from common.ops.core import aval_of
from symbolic.graph import Graph, Node, format_node, infer_aval, numbered
from symbolic.passes.rewrite import Rewriter, rewrite


def _is_number(arg: object, value: float) -> bool:
    """A literal or a single-valued constant equal to `value`."""
    if isinstance(arg, Node):
        return arg.op == "constant" and arg.value.size == 1 and arg.value.item() == value
    return isinstance(arg, (int, float)) and not isinstance(arg, bool) and arg == value


def _same_type(a: object, node: Node) -> bool:
    return (
        isinstance(a, Node)
        and a.shape == node.shape
        and a.dtype == node.dtype
        and node.shape is not None
    )


def identity_operand(node: Node, rw: Rewriter) -> Node | None:
    """x * 1, 1 * x, x + 0, 0 + x, x - 0, x / 1, x ** 1: the operand itself."""
    x, y = (node.inputs + (None, None))[:2]
    keep = {
        "mul": [(x, y, 1), (y, x, 1)],
        "add": [(x, y, 0), (y, x, 0)],
        "sub": [(x, y, 0)],
        "div": [(x, y, 1)],
        "pow": [(x, y, 1)],
    }.get(node.op.name, [])
    for operand, other, unit in keep:
        if _is_number(other, unit) and _same_type(operand, node):
            return operand
    return None


def strength_reduction(node: Node, rw: Rewriter) -> Node | None:
    """x ** 2 -> x * x, x ** 0.5 -> sqrt(x): cheaper kernels, and fusable ones."""
    if node.op.name != "pow" or not isinstance(node.inputs[0], Node):
        return None
    x, exponent = node.inputs
    for value, op, args in ((2, OPS["mul"], (x, x)), (0.5, OPS["sqrt"], (x,))):
        if _is_number(exponent, value) and infer_aval(op, [a.aval for a in args], {}) == node.aval:
            return rw.make(op, args, {}, (node,))  # only where shape and dtype stay the same
    return None


def double_negation(node: Node, rw: Rewriter) -> Node | None:
    inner = node.inputs[0]
    if node.op.name == "neg" and isinstance(inner, Node) and inner.op_name == "neg":
        return inner.inputs[0]
    return None


def chained_shape_ops(node: Node, rw: Rewriter) -> Node | None:
    """permute(permute(x)) and reshape(reshape(x)) collapse to one op, or to x."""
    inner = node.inputs[0]
    if not isinstance(inner, Node) or inner.op_name != node.op_name:
        return None
    if node.op.name == "permute":
        dims = tuple(inner.params["dims"][d] for d in node.params["dims"])
        if dims == tuple(range(len(dims))):
            return inner.inputs[0]
        return rw.make(node.op, (inner.inputs[0],), {"dims": dims}, (inner, node))
    if node.op.name == "reshape":
        source = inner.inputs[0]
        if _same_type(source, node) and None not in node.shape:
            return source
        return rw.make(node.op, (source,), dict(node.params), (inner, node))
    return None


def no_op(node: Node, rw: Rewriter) -> Node | None:
    """Ops that would give back their input unchanged: same shape, same dtype."""
    if node.op.name in (
        "reshape",
        "broadcast_to",
        "broadcast_like",
        "sum_to_like",
        "cast",
        "permute",
        "stop_gradient",
        "expand_dims",
        "squeeze",
    ):
        x = node.inputs[0]
        if node.op.name == "permute" and node.params["dims"] != tuple(
            range(len(node.params["dims"]))
        ):
            return None
        if node.op.name in ("expand_dims", "squeeze"):
            return None
        if _same_type(x, node) and (node.op.name == "stop_gradient" or None not in node.shape):
            return x
    return None


def implicit_broadcast(node: Node, rw: Rewriter) -> Node | None:
    """elementwise(broadcast(a), b) -> elementwise(a, b) when broadcasting gives the same
    shape anyway: the explicit broadcast was an identity (gradients of sums make these)."""
    if node.op.kind != "elementwise" or node.shape is None or None in node.shape:
        return None
    inputs = list(node.inputs)
    for i, a in enumerate(inputs):
        if isinstance(a, Node) and a.op_name in ("broadcast_like", "broadcast_to"):
            trial = inputs[:i] + [a.inputs[0]] + inputs[i + 1 :]
            avals = [t.aval if isinstance(t, Node) else aval_of(t) for t in trial]
            if infer_aval(node.op, avals, node.params) == node.aval:
                inputs = trial
    if inputs == list(node.inputs):
        return None
    return rw.make(node.op, tuple(inputs), node.params, (node,))


def squeeze_of_expand(node: Node, rw: Rewriter) -> Node | None:
    inner = node.inputs[0]
    if (
        node.op.name == "squeeze"
        and isinstance(inner, Node)
        and inner.op_name == "expand_dims"
        and node.params["axis"] == (inner.params["axis"],)
    ):
        return inner.inputs[0]
    return None


RULES: list[Callable[[Node, Rewriter], Node | None]] = [
    identity_operand,
    strength_reduction,
    double_negation,
    chained_shape_ops,
    no_op,
    squeeze_of_expand,
    implicit_broadcast,
]


@numbered
def simplify(graph: Graph) -> tuple[Graph, list[str]]:
    changes: list[str] = []

    def rule(node: Node, rw: Rewriter) -> Node | None:
        for pattern in RULES:
            result = pattern(node, rw)
            if result is not None:
                changes.append(f"{pattern.__name__}: {format_node(node, pad=0)} -> {result.label}")
                return result
        return None

    return rewrite(graph, rule), changes


__all__ = ["simplify", "RULES"]
