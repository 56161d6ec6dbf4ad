"""attention: one pre-norm transformer block (layer norm, two-head self-attention with
softmax, residual, layer norm, ReLU MLP, residual), regressed onto a target."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import functional as F
from common import nn
from compare.zoo import Model

HEADS, SEQ = 2, 16


class Block(nn.Module):
    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, generator=gen)
        self.proj = nn.Linear(dim, dim, generator=gen)
        self.fc1 = nn.Linear(dim, 4 * dim, generator=gen)
        self.fc2 = nn.Linear(4 * dim, dim, generator=gen)

    def attend(self, x: Any) -> Any:
        b, t, d = x.shape
        qkv = F.permute(self.qkv(x).reshape(b, t, 3, HEADS, d // HEADS), (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, seq, head_dim) each
        weights = F.softmax((q @ F.transpose(k)) * (1 / math.sqrt(d // HEADS)), axis=-1)
        return self.proj(F.permute(weights @ v, (0, 2, 1, 3)).reshape(b, t, d))

    def forward(self, x: Any, target: Any) -> tuple:
        x = x + self.attend(self.ln1(x))
        x = x + self.fc2(F.relu(self.fc1(self.ln2(x))))
        return F.mse_loss(x, target), x


def make_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal((batch, SEQ, size)).astype(np.float32) for name in ("x", "target")
    }


MODEL = Model(
    name="attention",
    description=f"one transformer block: layer norm, {HEADS}-head attention, MLP, residuals "
    f"(sequence {SEQ})",
    build=Block,
    make_inputs=make_inputs,
    batch=8,
    size=32,
    size_means="model width",
    lr=0.01,
    test_sizes=(2, 4),
)
