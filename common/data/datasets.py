"""Ready datasets and the simplest mini-batch iterator. The digits ship inside scikit-learn:
no download, so every example and test runs offline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from common import random


class ArrayDataset:
    """Samples (a[i], b[i], ...) of equally long arrays: PyTorch's TensorDataset.

    ArrayDataset(x, y)[3] == (x[3], y[3])
    """

    def __init__(self, *arrays: np.ndarray) -> None:
        lengths = sorted({len(a) for a in arrays})
        if len(lengths) != 1:
            raise ValueError(
                f"ArrayDataset: the arrays have different lengths {lengths}. Fix: pass one "
                "row per sample in every array."
            )
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)


@dataclass(frozen=True)
class Splits:
    """A classification data set split once into training and test arrays."""

    x_train: np.ndarray  # float32, scaled to [0, 1]
    y_train: np.ndarray  # int64 class indices
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def train(self) -> ArrayDataset:
        """The training split as (x, y) samples, for a DataLoader."""
        return ArrayDataset(self.x_train, self.y_train)

    @property
    def test(self) -> ArrayDataset:
        return ArrayDataset(self.x_test, self.y_test)


def digits(images: bool = False, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """scikit-learn's 8x8 handwritten digits (1797 samples, 10 classes), split once with a
    fixed seed. `images=True` gives NCHW arrays (N, 1, 8, 8) for convolutional models."""
    from sklearn.datasets import load_digits  # heavy import, only when asked for

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    if images:
        x = x.reshape(-1, 1, 8, 8)
    n_test = int(round(len(x) * test_fraction))
    return Splits(x[n_test:], y[n_test:], x[:n_test], y[:n_test], num_classes=10)


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    generator: Any = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Mini-batches (x[i], y[i]) covering the data once, in a fresh random order if shuffled.
    A DataLoader does the same for any Dataset, in worker processes if asked."""
    if len(x) != len(y):
        raise ValueError(
            f"batches: x has {len(x)} rows but y has {len(y)}. Fix: pass "
            "matching inputs and labels."
        )
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be at least 1, got {batch_size}.")
    order = random.generator(generator).permutation(len(x)) if shuffle else np.arange(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]
