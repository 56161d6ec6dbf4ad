"""Optimizers as pure update rules over (parameter, gradient, state).

`rule(param, grad, state) -> (new_param, new_state)` is written with operators and `F`,
so it runs on arrays now (`step()`, eager training) or builds graph nodes from symbols
(the symbolic engine puts the same rule inside a compiled training step).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from common import functional as F
from common.backend import array_module
from common.methods import ArrayMethods
from common.nn.parameter import Parameter
from common.ops.core import DTypeError, ShapeError, fmt


class Optimizer:
    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(
                f"{type(self).__name__}: got no parameters to optimize. "
                "Fix: pass model.parameters()."
            )
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}.")
        self.lr = lr
        self.state: list[dict | None] = [None] * len(self.params)

    def init_state(self, param: Any) -> dict:
        """The state a parameter starts with (zeros shaped like it, counters at 0)."""
        return {}

    def rule(self, param: Any, grad: Any, state: dict) -> tuple[Any, dict]:
        raise NotImplementedError

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply the rule to every parameter that has a gradient, in place.

        All or nothing: every gradient and state is checked and every new value computed
        before the first parameter or state changes, so a step that fails (a wrongly shaped
        `.grad`) leaves the model and the optimizer as they were, ready to retry.
        """
        updates = []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad.data if isinstance(p.grad, ArrayMethods) else p.grad
            state = self.init_state(p.data) if self.state[i] is None else self.state[i]
            self._check(i, p, grad, state)
            updates.append((i, p, *self.rule(p.data, grad, state)))
        for i, p, new_value, new_state in updates:
            array_module([p.data]).copyto(p.data, new_value, casting="same_kind")
            self.state[i] = new_state

    def _check(self, index: int, param: Parameter, grad: Any, state: dict) -> None:
        """Refuse a gradient or state that does not fit its parameter, naming both (the
        checks run every step: the common case, all fitting, reads no more than it must)."""
        shape = param.data.shape
        if grad.shape != shape:
            raise ShapeError(
                f"{self._label(index)} has a gradient of shape {fmt(grad.shape)}, but the "
                f"parameter has shape {fmt(shape)}; no parameter was updated. Fix: give .grad "
                "the parameter's shape (sum a broadcast gradient down to it)."
            )
        if grad.dtype != param.dtype and not np.can_cast(grad.dtype, param.dtype, "same_kind"):
            raise DTypeError(
                f"{self._label(index)} has a gradient of dtype {grad.dtype}, which the "
                f"parameter's dtype {param.dtype} cannot hold; no parameter was updated. Fix: "
                f"cast the gradient to {param.dtype}."
            )
        for key, value in state.items():
            if hasattr(value, "shape") and value.shape != shape:
                raise ShapeError(
                    f"{self._label(index)} has shape {fmt(shape)}, but its optimizer state "
                    f"{key!r} has shape {fmt(value.shape)} (the parameter was replaced after "
                    "the optimizer was made); no parameter was updated. Fix: make a new "
                    "optimizer for the new parameters."
                )

    def _label(self, index: int) -> str:
        name = self.params[index].name
        label = f"{type(self).__name__}.step: parameter {index}"
        return label + (f" ({name!r})" if name else "")


def _zeros_like(x: Any) -> Any:
    return array_module([x]).zeros_like(x)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (torch's form) and weight decay."""

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def init_state(self, param: Any) -> dict:
        return {"momentum": _zeros_like(param)} if self.momentum else {}

    def rule(self, param: Any, grad: Any, state: dict) -> tuple[Any, dict]:
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            buf = self.momentum * state["momentum"] + grad
            state = {"momentum": buf}
            grad = grad + self.momentum * buf if self.nesterov else buf
        return param - self.lr * grad, state


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch's bias correction; weight decay as L2 on the gradient."""

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def init_state(self, param: Any) -> dict:
        return {"step": 0, "m": _zeros_like(param), "v": _zeros_like(param)}

    def rule(self, param: Any, grad: Any, state: dict) -> tuple[Any, dict]:
        b1, b2 = self.betas
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        step = state["step"] + 1
        m = b1 * state["m"] + (1 - b1) * grad
        v = b2 * state["v"] + (1 - b2) * grad * grad
        denom = F.sqrt(v) / F.sqrt(1 - b2**step) + self.eps
        new_param = param - (self.lr / (1 - b1**step)) * m / denom
        return new_param, {"step": step, "m": m, "v": v}
