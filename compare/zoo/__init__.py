"""The model zoo: each model written once with `F` and `common.nn`, run eagerly and compiled.

    from compare import zoo
    model = zoo.get("mlp_digits")
    module = model.build(model.size, seed=0)               # forward(*inputs) -> loss, *outputs
    inputs = model.make_inputs(model.batch, model.size, seed=0)   # name -> numpy array
    loss, logits = module(*(E.tensor(v) for v in inputs.values()))

A model's `forward` returns its loss (what is differentiated) or a tuple whose first item is
the loss and whose others are outputs that are compared too. The gradients compared are
those of every parameter and of the inputs named in `wrt`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from common import nn


class UnknownModelError(KeyError):
    """A model name that the zoo does not have: lists the ones it does."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Model:
    name: str
    description: str  # one line, for `diptych models`
    build: Callable[[int, int], nn.Module]  # build(size, seed); forward(*inputs)
    make_inputs: Callable[[int, int, int], dict[str, np.ndarray]]  # (batch, size, seed)
    batch: int  # default sizes: small enough for plain `diptych`
    size: int
    size_means: str  # what `size` scales, for tables and the --sizes plot
    wrt: tuple[str, ...] = ()  # inputs whose gradients are wanted, besides the parameters
    eager_forward: Callable[..., Any] | None = None  # an eager-only formulation, if any
    peer: Callable[..., Any] | None = None  # peer(m, params, *inputs) -> loss, on peers' ops
    lr: float = 0.1  # for `diptych train` (SGD)
    momentum: float = 0.0
    fresh_batches: bool = False  # `train` draws a new batch every step
    test_sizes: tuple[int, int] = (2, 4)  # (batch, size) for the fast differential tests

    def loss_and_outputs(self, module: nn.Module, inputs: list, eager: bool = False) -> list:
        """[loss, *outputs] of the model on engine values (eager tensors or symbols)."""
        if eager and self.eager_forward is not None:
            result = self.eager_forward(module, *inputs)
        else:
            result = module(*inputs)
        return list(result) if isinstance(result, (tuple, list)) else [result]


def _registry() -> dict[str, Model]:
    from compare.zoo import (
        attention,
        gelu_chain,
        lenet_digits,
        mlp_digits,
        neuron,
        pythagoras,
        rnn_varlen,
        two_layer_net,
    )

    modules = [
        pythagoras,
        neuron,
        two_layer_net,
        mlp_digits,
        lenet_digits,
        rnn_varlen,
        gelu_chain,
        attention,
    ]
    return {m.MODEL.name: m.MODEL for m in modules}


MODELS: dict[str, Model] = _registry()
QUICK = ("pythagoras", "neuron", "two_layer_net", "mlp_digits", "rnn_varlen")  # plain `diptych`


def get(name: str) -> Model:
    """The model called `name`, or an error listing the zoo."""
    if name not in MODELS:
        raise UnknownModelError(
            f"unknown model {name!r}. The zoo has: {', '.join(MODELS)}. "
            "Fix: pick one of those (`diptych models` describes them)."
        )
    return MODELS[name]
