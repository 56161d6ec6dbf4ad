"""Reverse-mode autodiff over the tape: each result that needs a gradient keeps a `Node`
(the op, its inputs, its params); `backward` walks the nodes in reverse topological order
and applies each op's VJP formulas, which are ordinary `F` code (so with `create_graph=True`
the backward pass is itself recorded, and gradients of gradients work).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any

from common.autodiff import backpropagate
from common.backend import array_module
from common.methods import ArrayMethods
from common.ops.core import fmt


class Node:
    """One tape entry: how a tensor was made. `inputs` is None once the graph was freed."""

    __slots__ = ("op", "inputs", "params", "versions")

    def __init__(self, op: Any, inputs: tuple, params: dict, versions: list | None = None) -> None:
        self.op = op  # an OpDef, or a custom Function's adapter
        self.inputs = inputs  # the op's arguments: tensors, parameters, arrays, scalars
        self.params = params
        if versions is None:  # Tensor._apply passes the versions it read while scanning
            versions = [getattr(a, "_version", 0) for a in inputs]
        self.versions = versions  # each input's version now: backward detects later edits

    @property
    def name(self) -> str:
        return self.op.name

    def __repr__(self) -> str:
        return f"<{self.op.name}Backward>"


# ---- grad mode --------------------------------------------------------------------------
# Per thread, as in torch: one thread's no_grad() or backward() must not stop another from
# recording. A ContextVar gives that (each new thread starts at the default, True), and its
# bound `get` is as cheap to call as a global is to read: Tensor._apply calls it per op.

grad_mode: ContextVar[bool] = ContextVar("grad_mode", default=True)
_outer_modes: ContextVar[tuple] = ContextVar("outer_grad_modes", default=())  # to restore
is_grad_enabled = grad_mode.get  # () -> whether ops are recorded now, in this thread


class set_grad_enabled(contextlib.ContextDecorator):
    """Record the tape inside iff `mode` (`with E.set_grad_enabled(False):` or as a decorator).

    The mode to restore is kept in this thread's context, not on the instance, so one
    instance may be entered recursively and by several threads at once.
    """

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)

    def __enter__(self) -> None:
        _outer_modes.set(_outer_modes.get() + (grad_mode.get(),))
        grad_mode.set(self.mode)

    def __exit__(self, *exc: Any) -> None:
        *outer, previous = _outer_modes.get()
        _outer_modes.set(tuple(outer))
        grad_mode.set(previous)


class no_grad(set_grad_enabled):
    """Run without recording the tape (`with E.no_grad():` or `@E.no_grad()`)."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Record the tape again inside a `no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)


# ---- the backward pass ------------------------------------------------------------------

FREED = (
    "backward through the graph a second time: its saved values were freed after the first "
    "backward (or E.grad) call. Fix: pass retain_graph=True to the first call if you need to "
    "differentiate through the same graph again."
)


def _needs_grad(value: Any) -> bool:
    return isinstance(value, ArrayMethods) and value.requires_grad


def _parents(tensor: Any) -> tuple | None:
    node = getattr(tensor, "_node", None)
    if node is None:
        return None
    inputs, versions = node.inputs, node.versions
    if inputs is None:
        raise RuntimeError(FREED)
    for i in range(len(inputs)):  # indexing: zip() costs twice as much on a few inputs
        if getattr(inputs[i], "_version", 0) != versions[i]:
            raise _modified_in_place(node, i)
    return node.op, inputs, node.params


def _modified_in_place(node: Node, position: int) -> RuntimeError:
    version, now = node.versions[position], node.inputs[position]._version
    return RuntimeError(
        f"backward: input {position} of {node.name} was modified in place after "
        f"{node.name} used it (version {version} -> {now}), so its gradient "
        "would be wrong. Fix: update it after backward(), or use an out-of-place op."
    )


def _free(tensor: Any) -> None:
    tensor._node.inputs = None


def propagate(roots: list, seeds: list, wanted: set | None, create_graph: bool, free: bool) -> dict:
    """Gradients of `roots` (weighted by `seeds`) for the tensors whose id is in `wanted`
    (None: every leaf and every tensor with retain_grad()). Returns {id: (tensor, grad)}."""
    if wanted is None:
        capture = lambda t: t._node is None or t._retains_grad
    else:
        capture = lambda t: id(t) in wanted
    with set_grad_enabled(create_graph):
        return backpropagate(
            roots, seeds, _parents, id, _needs_grad, capture, _free if free else None
        )


def _seed(output: Any, grad: Any) -> Any:
    from eager.tensor import Tensor, as_tensor

    if grad is None:
        if output.numel() != 1:
            raise RuntimeError(
                f"backward: the output has shape {fmt(output.shape)}, not a single value, so "
                "the gradient to start from is ambiguous. Fix: reduce it first (.sum() or "
                ".mean()), or pass grad= with the output's shape."
            )
        return Tensor._make(array_module([output.data]).ones_like(output.data))
    grad = as_tensor(grad, device=output.device)
    if grad.shape != output.shape:
        raise RuntimeError(
            f"backward: grad has shape {fmt(grad.shape)} but the output has shape "
            f"{fmt(output.shape)}. Fix: pass a grad of the output's shape."
        )
    return grad


def _check_differentiable(output: Any, what: str) -> None:
    if not _needs_grad(output):
        raise RuntimeError(
            f"{what}: this tensor does not require grad, so there is no graph to differentiate: "
            "no input with requires_grad=True was used to compute it, or it was computed "
            "under no_grad(). Fix: create the leaves with requires_grad=True."
        )


def backward(
    output: Any, grad: Any = None, retain_graph: bool | None = None, create_graph: bool = False
) -> None:
    """Accumulate d(output)/d(leaf) into every leaf's `.grad` (and retain_grad() tensors)."""
    _check_differentiable(output, "backward")
    seed = _seed(output, grad)
    keep = create_graph if retain_graph is None else retain_graph
    found = propagate([output], [seed], None, create_graph, free=not keep)
    for tensor, g in found.values():
        _accumulate(tensor, g, create_graph)


def _accumulate(tensor: Any, g: Any, create_graph: bool) -> None:
    from eager.tensor import Tensor

    if not create_graph:
        g = Tensor._make(g.data.copy())  # a grad is never shared with another tensor
    if tensor.grad is None:
        tensor.grad = g
    elif create_graph:
        tensor.grad = tensor.grad + g
    else:
        tensor.grad.data += g.data


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple:
    """The gradients of `outputs` with respect to `inputs`, returned, not stored in `.grad`."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    single = not isinstance(inputs, (list, tuple))
    inputs = [inputs] if single else list(inputs)
    seeds = (
        grad_outputs if isinstance(grad_outputs, (list, tuple)) else [grad_outputs] * len(outputs)
    )
    for i, x in enumerate(inputs):
        if not _needs_grad(x):
            raise RuntimeError(
                f"grad: input {i} does not require grad. Fix: create it with "
                "requires_grad=True (or call .requires_grad_())."
            )
    for out in outputs:
        _check_differentiable(out, "grad")
    seeds = [_seed(out, s) for out, s in zip(outputs, seeds)]
    keep = create_graph if retain_graph is None else retain_graph
    found = propagate(outputs, seeds, {id(x) for x in inputs}, create_graph, free=not keep)
    result = []
    for i, x in enumerate(inputs):
        if id(x) not in found:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} was not used to compute the outputs. "
                    "Fix: pass allow_unused=True to get None for it."
                )
            result.append(None)
        else:
            result.append(found[id(x)][1])
    return tuple(result)
