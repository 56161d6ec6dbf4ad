"""two_layer_net: PyTorch's classic define-by-run example ("learning PyTorch with examples"):
x.mm(w1).clamp(min=0).mm(w2), sum-of-squares loss, plain SGD with lr 1e-6."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import nn
from compare.zoo import Model

H, D_OUT = 100, 10  # the tutorial's hidden and output sizes; `size` is its D_in (1000)


class TwoLayerNet(nn.Module):
    def __init__(self, d_in: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        self.w1 = nn.Parameter(nn.init.normal((d_in, H), 1.0, gen))  # randn, as the tutorial
        self.w2 = nn.Parameter(nn.init.normal((H, D_OUT), 1.0, gen))

    def forward(self, x: Any, y: Any) -> tuple:
        y_pred = x.mm(self.w1).clamp(min=0).mm(self.w2)
        return (y_pred - y).pow(2).sum(), y_pred


def make_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((batch, size)).astype(np.float32),
        "y": rng.standard_normal((batch, D_OUT)).astype(np.float32),
    }


def peer(m: Any, params: list, x: Any, y: Any) -> Any:
    w1, w2 = params
    return ((m.relu(x @ w1) @ w2 - y) ** 2).sum()


MODEL = Model(
    name="two_layer_net",
    description="PyTorch's classic example: x.mm(w1).clamp(min=0).mm(w2), sum of squares "
    "(N=64, D_in=1000, H=100, D_out=10)",
    build=TwoLayerNet,
    make_inputs=make_inputs,
    batch=64,
    size=1000,
    size_means="D_in",
    peer=peer,
    lr=1e-6,
    test_sizes=(4, 8),
)
