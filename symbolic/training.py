"""A whole training step as one graph: an optimizer's update rule applied to symbols."""

from __future__ import annotations

from typing import Any

from symbolic.symbol import Symbol, variable


def optimizer_updates(optimizer: Any, grads: list) -> dict:
    """The `updates=` of one training step: `optimizer`'s rule for each of its parameters,
    its state (momentum, Adam's moments and step count) held in variables named after the
    parameter.

        grads = S.grad(loss, opt.params)
        step = S.compile(loss, inputs=[x, t], updates=S.optimizer_updates(opt, grads))
    """
    updates: dict[Any, Symbol] = {}
    for param, grad in zip(optimizer.params, grads):
        state = {key: variable(value, name=f"{param.name}_{key}")
                 for key, value in optimizer.init_state(param.data).items()}
        new_param, new_state = optimizer.rule(param, grad, state)
        updates[param] = new_param
        updates.update((state[key], new_state[key]) for key in state)
    return updates
