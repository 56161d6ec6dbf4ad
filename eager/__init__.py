"""The eager (define-by-run) engine: ops run at once, and a tape records them for autograd.

import eager as E
x = E.tensor([[1., 2.], [3., 4.]], requires_grad=True)
y = F.tanh(x @ x).sum(); y.backward(); x.grad
"""

from common.random import manual_seed
from eager.autograd import (
    Node,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from eager.creation import (
    arange,
    from_numpy,
    full,
    linspace,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from eager.function import Function, FunctionContext
from eager.tensor import Tensor, as_tensor

__all__ = [
    "Function", "FunctionContext", "Node", "Tensor", "arange", "as_tensor", "enable_grad",
    "from_numpy", "full", "grad", "is_grad_enabled", "linspace", "manual_seed", "no_grad",
    "ones", "ones_like", "rand", "randn", "render", "set_grad_enabled", "tensor", "zeros",
    "zeros_like",
]  # fmt: skip


def __getattr__(name: str):
    """`E.render(tensor, path)` draws the tape (eager.visualize.render), imported on first use:
    `import eager` does not load Graphviz."""
    if name == "render":
        from eager.visualize import render

        return render
    raise AttributeError(f"module 'eager' has no attribute {name!r}")
