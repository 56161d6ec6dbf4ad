"""neuron: tanh(w*x + b), the seeds' computational-graph example, with its gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F
from common import nn
from compare.zoo import Model


class Neuron(nn.Module):
    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        self.w = nn.Parameter(nn.init.normal((size,), 1.0, gen))
        self.b = nn.Parameter(nn.init.normal((), 1.0, gen))

    def forward(self, x: Any) -> tuple:
        out = F.tanh(x * self.w + self.b)
        return out.sum(), out


def make_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, size)).astype(np.float32)}


def peer(m: Any, params: list, x: Any) -> Any:
    w, b = params
    return m.tanh(x * w + b).sum()


MODEL = Model(
    name="neuron",
    description="tanh(w*x + b) with gradients for x, w and b: the seeds' computational graph",
    build=Neuron,
    make_inputs=make_inputs,
    batch=1,
    size=4,
    size_means="inputs",
    wrt=("x",),
    peer=peer,
)
