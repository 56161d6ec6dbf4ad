"""mlp_digits: a ReLU MLP classifying scikit-learn's 8x8 digits (64 pixels -> 10 classes)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from common import data, nn
from common import functional as F
from compare.zoo import Model


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        self.layers = nn.Sequential(
            nn.Linear(64, hidden, generator=gen),
            nn.ReLU(),
            nn.Linear(hidden, hidden // 2, generator=gen),
            nn.ReLU(),
            nn.Linear(hidden // 2, 10, generator=gen),
        )

    def forward(self, x: Any, labels: Any) -> tuple:
        logits = self.layers(x)
        return F.cross_entropy(logits, labels), logits


@functools.cache
def digits(images: bool) -> data.Splits:
    return data.digits(images=images)


def digits_batch(batch: int, seed: int, images: bool = False) -> dict[str, np.ndarray]:
    """`batch` training digits drawn at random (seeded), with their labels."""
    ds = digits(images)
    idx = np.random.default_rng(seed).choice(len(ds.x_train), batch, replace=False)
    return {"x": ds.x_train[idx], "labels": ds.y_train[idx]}


def peer(m: Any, params: list, x: Any, labels: Any) -> Any:
    w1, b1, w2, b2, w3, b3 = params
    h = m.relu(m.relu(x @ w1.T + b1) @ w2.T + b2)
    return m.cross_entropy(h @ w3.T + b3, labels)


MODEL = Model(
    name="mlp_digits",
    description="MLP 64-128-64-10 (ReLU), cross-entropy on scikit-learn's digits",
    build=DigitsMLP,
    make_inputs=lambda batch, size, seed: digits_batch(batch, seed),
    batch=64,
    size=128,
    size_means="hidden units",
    peer=peer,
    lr=0.1,
    momentum=0.9,
    fresh_batches=True,
    test_sizes=(8, 16),
)
