"""lenet_digits: a small LeNet-style convolutional network on the 8x8 digits (NCHW)."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F
from common import nn
from compare.zoo import Model
from compare.zoo.mlp_digits import digits_batch


class LeNet(nn.Module):
    """conv3x3 -> ReLU -> pool2 -> conv3x3 -> ReLU -> pool2 -> linear: 8x8 -> 4x4 -> 2x2."""

    def __init__(self, channels: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, generator=gen),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1, generator=gen),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * channels * 2 * 2, 10, generator=gen)

    def forward(self, x: Any, labels: Any) -> tuple:
        logits = self.classifier(self.features(x))
        return F.cross_entropy(logits, labels), logits


MODEL = Model(
    name="lenet_digits",
    description="LeNet-style CNN (two conv3x3+pool, linear) on the 8x8 digits",
    build=LeNet,
    make_inputs=lambda batch, size, seed: digits_batch(batch, seed, images=True),
    batch=32,
    size=8,
    size_means="channels of the first conv",
    lr=0.05,
    momentum=0.9,
    fresh_batches=True,
    test_sizes=(4, 2),
)
