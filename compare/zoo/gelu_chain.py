"""gelu_chain: a long elementwise chain on large arrays (GELU layers with a scale and a shift
each), the showcase for fusion: dozens of ops, each a full pass over memory when unfused."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import functional as F
from common import nn
from compare.zoo import Model

DEPTH = 6
C = math.sqrt(2 / math.pi)


def gelu(x: Any) -> Any:
    """GELU, tanh approximation (as in GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + F.tanh(C * (x + 0.044715 * x**3)))


class GeluChain(nn.Module):
    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        for i in range(DEPTH):
            setattr(self, f"scale{i}", nn.Parameter(1 + nn.init.normal((size,), 0.1, gen)))
            setattr(self, f"shift{i}", nn.Parameter(nn.init.normal((size,), 0.1, gen)))

    def forward(self, x: Any) -> tuple:
        for i in range(DEPTH):
            x = gelu(x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}"))
        return F.mean(x), x


def make_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, size)).astype(np.float32)}


def peer(m: Any, params: list, x: Any) -> Any:
    for scale, shift in zip(params[0::2], params[1::2]):
        x = x * scale + shift
        x = 0.5 * x * (1.0 + m.tanh(C * (x + 0.044715 * x**3)))
    return x.mean()


MODEL = Model(
    name="gelu_chain",
    description=f"{DEPTH} GELU layers (scale, shift, tanh-GELU) on a large array: the "
    "fusion showcase",
    build=GeluChain,
    make_inputs=make_inputs,
    batch=64,
    size=4096,
    size_means="features",
    wrt=("x",),
    peer=peer,
    lr=0.1,
    test_sizes=(3, 5),
)
