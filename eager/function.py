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

A forward may return a tuple of tensors; backward then gets one gradient per output (zeros
for an output nothing used), as in torch. A Function is eager-only: for a custom op that
also works on symbols, declare an `OpDef` (docs/custom_ops.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.autodiff import PartialTuple
from common.backend import array_module
from common.methods import ArrayMethods, ConcreteMethods
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


SYMBOLIC_ARGUMENT = (
    "{name}.apply got a symbol: an E.Function is eager-only (its forward runs now, on numbers, "
    "and only the eager tape calls its backward). Fix: declare the op once, for both engines, "
    "with a kernel, a shape rule and a VJP: `OP = common.ops.core.declare(OpDef(name, kind, "
    "kernel, abstract, vjp=(...,)))`, then `common.dispatch.apply(OP, x)` works on tensors and "
    "symbols alike; see docs/custom_ops.md. Or run this part of the model eagerly."
)


class _FunctionOp:
    """Adapts a Function subclass to the tape's op interface (`name`, `grad_formulas`).

    With several outputs its tape entry makes one hidden value that the outputs select from
    (`_Output`); the gradient reaching it is then a PartialTuple {output index: gradient}."""

    vjp = True

    def __init__(self, function: type, ctx: FunctionContext, outputs: tuple = ()) -> None:
        self.name = function.__name__
        self.function = function
        self.ctx = ctx
        # (array module, shape, dtype) per output, for the zero gradient of an unused one
        self.outputs = [(array_module([o.data]), o.shape, o.dtype) for o in outputs]

    def _output_grads(self, g: Any) -> list:
        if not self.outputs:
            return [g]
        return [
            g[i] if i in g else Tensor._make(xp.zeros(shape, dtype))
            for i, (xp, shape, dtype) in enumerate(self.outputs)
        ]

    def grad_formulas(self, g, out, inputs, needs, params) -> list:
        grads = self.function.backward(self.ctx, *self._output_grads(g))
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        if len(grads) != len(inputs):
            raise RuntimeError(
                f"{self.name}.backward returned {len(grads)} gradients for {len(inputs)} "
                "inputs. Fix: return one gradient per forward argument (None where there is none)."
            )
        return [
            self._checked(as_tensor(grad), x, index) if need and grad is not None else None
            for index, (grad, x, need) in enumerate(zip(grads, inputs, needs))
        ]

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


class _Output:
    """Output `index` of a multi-output Function: its gradient goes to that slot only."""

    vjp = True

    def __init__(self, function: type, index: int) -> None:
        self.name = f"{function.__name__}[{index}]"
        self.index = index

    def grad_formulas(self, g, out, inputs, needs, params) -> list:
        return [PartialTuple({self.index: g})]


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
    def apply(cls, *args: Any) -> Any:
        """Run forward now and record one tape entry: a Tensor, or a tuple of them when
        forward returns a tuple."""
        if any(isinstance(a, ArrayMethods) and not isinstance(a, ConcreteMethods) for a in args):
            raise TypeError(SYMBOLIC_ARGUMENT.format(name=cls.__name__))
        needs = tuple(isinstance(a, ArrayMethods) and a.requires_grad for a in args)
        ctx = FunctionContext(needs)
        with autograd.no_grad():
            out = cls.forward(ctx, *args)
        several = isinstance(out, tuple)
        outputs = out if several else (out,)
        if not outputs or not all(isinstance(o, Tensor) for o in outputs):
            got = ", ".join(type(o).__name__ for o in outputs) or "an empty tuple"
            raise TypeError(
                f"{cls.__name__}.forward must return a Tensor or a tuple of "
                f"Tensors, got {got}. Fix: wrap results with E.tensor."
            )
        if not (any(needs) and autograd.is_grad_enabled()):
            return out
        if not several:
            return Tensor._make(out.data, True, Node(_FunctionOp(cls, ctx), args, {}))
        whole = Tensor._make(outputs[0].data, True, Node(_FunctionOp(cls, ctx, outputs), args, {}))
        return tuple(
            Tensor._make(o.data, True, Node(_Output(cls, i), (whole,), {}))
            if o.dtype.kind == "f"
            else o  # no gradient flows through ints or bools
            for i, o in enumerate(outputs)
        )
