"""Custom autograd operators: subclass `Function`, write `forward` and `backward` by hand.

    class Clamp01(E.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(0, 1)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * ((x >= 0) & (x <= 1))

    y = Clamp01.apply(x)
"""

from __future__ import annotations

from typing import Any

from common.methods import ArrayMethods
from eager import autograd
from eager.autograd import Node
from eager.tensor import Tensor, as_tensor


class FunctionContext:
    """`ctx`: what forward leaves for backward."""

    def __init__(self, needs_input_grad: tuple) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors


class _FunctionOp:
    """Adapts a Function subclass to the tape's op interface (`name`, `grad_formulas`)."""

    vjp = True

    def __init__(self, function: type, ctx: FunctionContext) -> None:
        self.name = function.__name__
        self.function = function
        self.ctx = ctx

    def grad_formulas(self, g, out, inputs, needs, params) -> list:
        grads = self.function.backward(self.ctx, g)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        if len(grads) != len(inputs):
            raise RuntimeError(
                f"{self.name}.backward returned {len(grads)} gradients for {len(inputs)} "
                "inputs. Fix: return one gradient per forward argument (None where there is none)."
            )
        return [None if gr is None else as_tensor(gr) for gr in grads]


class Function:
    """Base class of custom operators with hand-written gradients (torch.autograd.Function)."""

    @staticmethod
    def forward(ctx: FunctionContext, *args: Any) -> Any:
        raise NotImplementedError("subclasses of Function implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionContext, *grads: Any) -> Any:
        raise NotImplementedError("subclasses of Function implement backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args: Any) -> Tensor:
        needs = tuple(isinstance(a, ArrayMethods) and a.requires_grad for a in args)
        ctx = FunctionContext(needs)
        with autograd.no_grad():
            out = cls.forward(ctx, *args)
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return one Tensor, got "
                            f"{type(out).__name__}.")
        if autograd.grad_enabled and any(needs):
            return Tensor._make(out.data, True, Node(_FunctionOp(cls, ctx), args, {}))
        return out
