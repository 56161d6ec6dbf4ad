"""A whole training step as one graph: an optimizer's update rule applied to symbols."""

from __future__ import annotations

from typing import Any

import numpy as np

from symbolic.graph import Node
from symbolic.symbol import Symbol, as_symbol, variable


def optimizer_updates(optimizer: Any, grads: list) -> dict:
    """The `updates=` of one training step: `optimizer`'s rule for each of its parameters,
    its state (momentum, Adam's moments and step count) held in variables named after the
    parameter.

        grads = S.grad(loss, opt.params)
        step = S.compile(loss, inputs=[x, t], updates=S.optimizer_updates(opt, grads))

    A parameter the loss does not depend on is left out, with no state: its gradient is
    None or the constant zero `S.grad` gives it. Eager `step()` skips it too (its `.grad`
    is None), as PyTorch does, so weight decay and momentum do not move it in either engine.
    """
    updates: dict[Any, Symbol] = {}
    for param, grad in zip(optimizer.params, grads):
        if _unconnected(grad):
            continue
        state = {
            key: variable(value, name=f"{param.name}_{key}")
            for key, value in optimizer.init_state(param.data).items()
        }
        # the rule reads the parameter as its variable: a Parameter itself computes now, so
        # `weight_decay * param` would bake in its value at build time
        new_param, new_state = optimizer.rule(as_symbol(param), grad, state)
        updates[param] = new_param
        updates.update((state[key], new_state[key]) for key in state)
    return updates


def _unconnected(grad: Any) -> bool:
    """Whether `grad` says "no path from the loss": None, or a constant zero, possibly
    broadcast (`S.grad`'s answer for such a parameter). A gradient that is merely zero
    when the graph runs is a real gradient, and the rule applies to it."""
    if grad is None:
        return True
    node = grad.node if isinstance(grad, Symbol) else None
    if node is not None and node.op_name == "broadcast_like":
        node = node.inputs[0] if isinstance(node.inputs[0], Node) else None
    return node is not None and node.op == "constant" and not np.any(node.value)
