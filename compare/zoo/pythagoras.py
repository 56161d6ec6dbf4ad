"""pythagoras: c = (a**2 + b**2) ** 0.5, the seeds' example of immediate versus deferred
execution. At the default size (one number each) the step is all overhead, no arithmetic."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import nn
from compare.zoo import Model


class Pythagoras(nn.Module):
    def forward(self, a: Any, b: Any) -> tuple:
        c = (a**2 + b**2) ** 0.5
        return c.sum(), c


def make_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0.5, 2.0, (batch, size)).astype(np.float32) for name in "ab"}


def peer(m: Any, params: list, a: Any, b: Any) -> Any:
    return ((a**2 + b**2) ** 0.5).sum()


MODEL = Model(
    name="pythagoras",
    description="(a**2 + b**2) ** 0.5 and its gradients: the seeds' immediate-vs-deferred "
    "example, pure overhead at size 1",
    build=lambda size, seed: Pythagoras(),
    make_inputs=make_inputs,
    batch=1,
    size=1,
    size_means="elements per row",
    wrt=("a", "b"),
    peer=peer,
)
