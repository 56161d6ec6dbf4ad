"""Control flow that works in both engines: `cond`, `while_loop`, `scan`.

Eagerly they are plain Python (the tape records whatever ran). Given symbols, the symbolic
engine turns them into control-flow nodes whose bodies are subgraphs, because Python's own
`if` and `for` cannot look at values that do not exist yet.

A carry or a sequence is one array or a tuple of arrays; `scan` slices sequences along
axis 0 and stacks the per-step outputs along axis 0, as jax.lax.scan does.
"""

from __future__ import annotations

from typing import Any, Callable

from common import functional as F
from common.dispatch import owner_engine
from common.ops import control as _control_ops  # noqa: F401  (declares the control ops)
from common.ops.core import OpError

__all__ = ["cond", "while_loop", "scan"]


def leaves(tree: Any) -> list:
    """The arrays of a carry: a tuple or list gives its items, anything else is one leaf."""
    return list(tree) if isinstance(tree, (tuple, list)) else [tree]


def rebuild(like: Any, values: list) -> Any:
    """`values` in the structure of `like` (a tuple, or a single value)."""
    return tuple(values) if isinstance(like, (tuple, list)) else values[0]


def _control_engine(values: list) -> Any:
    """The engine class that turns control flow into graph nodes, if any argument has one."""
    engine = owner_engine(values)
    return engine if hasattr(engine, "_control") else None


def cond(pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
    """`true_fn(*operands)` if `pred` holds, else `false_fn(*operands)`."""
    engine = _control_engine([pred, *operands])
    if engine is not None:
        return engine._control("cond", pred, true_fn, false_fn, operands)
    return true_fn(*operands) if bool(pred) else false_fn(*operands)


def while_loop(
    cond_fn: Callable, body_fn: Callable, init: Any, max_iterations: int | None = None
) -> Any:
    """Apply `body_fn` to the carry while `cond_fn(carry)` holds; return the final carry.

    `max_iterations` stops the loop after that many iterations even if `cond_fn` still
    holds, as TF's `maximum_iterations` does. Its gradient (symbols) comes two ways: without
    the bound the loop saves the carry of each iteration it runs (TF1's way, memory grows
    with the trip count); with it, the loop is a scan of `max_iterations` steps, each
    running the body or keeping the carry (JAX's way: shapes and memory fixed in advance,
    and the steps after the loop has ended still test `cond_fn`).
    """
    if max_iterations is not None and (
        not isinstance(max_iterations, int)
        or isinstance(max_iterations, bool)
        or max_iterations < 0
    ):
        raise OpError(
            f"while_loop: max_iterations must be an int >= 0 or None, got "
            f"{max_iterations!r}. Fix: pass a Python int."
        )
    engine = _control_engine(leaves(init))
    if engine is not None:
        return engine._control("while_loop", cond_fn, body_fn, init, max_iterations)
    carry, iterations = init, 0
    while (max_iterations is None or iterations < max_iterations) and bool(cond_fn(carry)):
        carry, iterations = body_fn(carry), iterations + 1
    return carry


def scan(fn: Callable, init: Any, xs: Any) -> tuple[Any, Any]:
    """Loop `carry, y = fn(carry, x)` over the leading axis of `xs`; return the final carry
    and the stacked `y`s (None if `fn` returns no y)."""
    engine = _control_engine(leaves(init) + leaves(xs))
    if engine is not None:
        return engine._control("scan", fn, init, xs)
    length = len(leaves(xs)[0])
    if length == 0:
        raise OpError("scan: the sequence is empty. Fix: scan over at least one step.")
    carry, steps = init, []
    for t in range(length):
        carry, y = fn(carry, rebuild(xs, [x[t] for x in leaves(xs)]))
        steps.append(y)
    if steps[0] is None:
        return carry, None
    stacked = [F.stack([leaves(s)[i] for s in steps]) for i in range(len(leaves(steps[0])))]
    return carry, rebuild(steps[0], stacked)
