"""rnn_varlen: an Elman RNN over variable-length sequences, the control-flow contrast.

Eagerly the natural program is a Python loop per example over its true length: the graph is
rebuilt by every run. Deferred, a graph cannot look at lengths that do not exist yet, so the
program is one `F.scan` over the padded batch in which finished sequences keep their state
(masking). `forward` is the scan (it runs both ways); `loop_per_example` is the eager one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F
from common import nn
from common.backend import array_module
from compare.zoo import Model

FEATURES, HIDDEN = 8, 16


def zeros_beside(x: Any, shape: tuple) -> Any:
    """Zeros of `x`'s dtype on its device: an eager tensor's array module; for a symbol,
    numpy (the graph makes it a constant, placed where the plan runs)."""
    return array_module([getattr(x, "data", None)]).zeros(shape, x.dtype)


class VarLenRNN(nn.Module):
    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        gen = np.random.default_rng(seed)
        self.cell = nn.RNNCell(FEATURES, HIDDEN, generator=gen)
        self.head = nn.Linear(HIDDEN, 1, generator=gen)

    def forward(self, xs: Any, mask: Any, y: Any) -> tuple:
        """xs: (T, B, FEATURES) time-major and zero-padded; mask: (T, B, 1), True while a
        sequence lasts; y: (B, 1) targets."""

        def step(h: Any, inputs: tuple) -> tuple:
            x_t, m_t = inputs
            return F.where(m_t, self.cell(x_t, h), h), None

        h, _ = F.scan(step, zeros_beside(xs, (xs.shape[1], HIDDEN)), (xs, mask))
        pred = self.head(h)
        return F.mse_loss(pred, y), pred


def loop_per_example(module: VarLenRNN, xs: Any, mask: Any, y: Any) -> tuple:
    """The define-by-run program: each example's own loop, its length read as a number."""
    lengths = mask.numpy()[:, :, 0].sum(axis=0)
    finals = []
    for b, length in enumerate(lengths):
        h = zeros_beside(xs, (1, HIDDEN))
        for t in range(int(length)):
            h = module.cell(xs[t, b : b + 1], h)
        finals.append(h)
    pred = module.head(F.concat(finals, axis=0))
    return F.mse_loss(pred, y), pred


def make_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Sequences of lengths 1..size, padded to `size` steps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, size + 1, batch)
    lengths[0] = size  # the longest one sets the padded length
    mask = (np.arange(size)[:, None] < lengths[None, :])[..., None]
    xs = rng.standard_normal((size, batch, FEATURES)).astype(np.float32) * mask
    y = rng.standard_normal((batch, 1)).astype(np.float32)
    return {"xs": xs, "mask": mask, "y": y}


MODEL = Model(
    name="rnn_varlen",
    description="Elman RNN over variable-length sequences: eager loops per example, "
    "symbolic scans with masking",
    build=VarLenRNN,
    make_inputs=make_inputs,
    batch=8,
    size=12,
    size_means="longest sequence",
    eager_forward=loop_per_example,
    lr=0.05,
    test_sizes=(3, 4),
)
