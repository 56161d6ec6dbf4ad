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

import numpy as np

from common.methods import ArrayMethods
from common.ops.core import fmt
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
        return [self._checked(as_tensor(grad), x, index) if need and grad is not None else None
                for index, (grad, x, need) in enumerate(zip(grads, inputs, needs))]

    def _checked(self, grad: Tensor, x: Any, index: int) -> Tensor:
        """`grad` if it can be input `index`'s gradient, else an error naming both shapes or
        dtypes. Unlike an op's VJP, a hand-written backward is not trusted: a wrong shape would
        otherwise be summed or broadcast into a plausible-looking `.grad`."""
        where = f"{self.name}.backward returned a gradient for input {index}"
        if not _sums_down_to(grad.shape, x.shape):
            raise RuntimeError(
                f"{where} of shape {fmt(grad.shape)}, but that input has shape {fmt(x.shape)}. "
                f"Fix: return a gradient of shape {fmt(x.shape)} (the shape of forward argument "
                f"{index}); one that shape broadcasts to is also accepted and summed down."
            )
        if not np.can_cast(grad.dtype, x.dtype, "same_kind"):
            raise RuntimeError(
                f"{where} of dtype {grad.dtype}, which that input's dtype {x.dtype} cannot "
                f"hold. Fix: return a gradient of dtype {x.dtype} (cast it with .astype)."
            )
        return grad


def _sums_down_to(grad_shape: tuple, shape: tuple) -> bool:
    """Whether broadcasting `shape` gives `grad_shape`, so that summing undoes it (torch's
    rule for a custom Function's gradient: "expected shape compatible with ...")."""
    try:
        return np.broadcast_shapes(shape, grad_shape) == tuple(grad_shape)
    except ValueError:
        return False


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
        if any(needs) and autograd.is_grad_enabled():
            return Tensor._make(out.data, True, Node(_FunctionOp(cls, ctx), args, {}))
        return out
