"""Random augmentation of small grayscale images, one sample at a time in numpy: the kind of
per-sample work that DataLoader worker processes take off the training loop."""

from __future__ import annotations

import numpy as np

from common import random


class Augmented:
    """(image, label) samples whose image is enlarged to `size` x `size` pixels and, on every
    read, randomly rotated, scaled, shifted, elastically distorted and noised (the classic
    MNIST augmentations). The randomness comes from common.random's default generator, which
    a DataLoader seeds per batch: the same batches at any number of workers.

    Augmented(digits.x_train, digits.y_train)[0] -> (float32 (1, 28, 28), int64 label)
    """

    def __init__(
        self,
        images: np.ndarray,  # (N, 1, H, W) or (N, H, W)
        labels: np.ndarray,
        size: int = 28,
        degrees: float = 15.0,
        scale: float = 0.1,  # up to 10% larger or smaller
        shift: float = 0.1,  # of the image's width
        elastic: float = 0.08,  # displacement strength, in units of the image's width
        noise: float = 0.05,
    ) -> None:
        self.images = images.reshape(len(images), *images.shape[-2:])
        self.labels, self.size = labels, size
        self.degrees, self.scale, self.shift = degrees, scale, shift
        self.elastic, self.noise = elastic, noise
        grid = np.linspace(-1.0, 1.0, size)
        self._ys, self._xs = np.meshgrid(grid, grid, indexing="ij")
        distance = grid[:, None] - grid[None, :]
        smooth = np.exp(-0.5 * (distance / 0.25) ** 2)  # a wide Gaussian: smooth distortions
        self._smooth = smooth / smooth.sum(axis=1, keepdims=True)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        gen = random.default_generator()
        xs, ys = self._source_coordinates(gen)
        image = _bilinear(self.images[index], xs, ys)
        image += gen.normal(0.0, self.noise, image.shape)
        return np.clip(image, 0.0, 1.0).astype(np.float32)[None], self.labels[index]

    def _source_coordinates(self, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Where in the source image (coordinates in [-1, 1]) each output pixel reads from."""
        angle = np.deg2rad(gen.uniform(-self.degrees, self.degrees))
        scale = gen.uniform(1 - self.scale, 1 + self.scale)
        dx, dy = gen.uniform(-2 * self.shift, 2 * self.shift, 2)
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        xs, ys = self._xs - dx, self._ys - dy
        warp = self.elastic * 2 * gen.standard_normal((2, self.size, self.size))
        warp = self._smooth @ warp @ self._smooth.T  # spatially smooth random displacements
        return cos * xs + sin * ys + warp[0], cos * ys - sin * xs + warp[1]


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`image` read at coordinates in [-1, 1] (corner pixel centres), zero outside."""
    height, width = image.shape
    padded = np.pad(image, 1)  # a zero border: reads outside the image land on it
    px = np.clip((xs + 1) * (width - 1) / 2 + 1, 0, width)
    py = np.clip((ys + 1) * (height - 1) / 2 + 1, 0, height)
    x0, y0 = np.floor(px).astype(np.intp), np.floor(py).astype(np.intp)
    fx, fy = px - x0, py - y0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x0 + 1] * fx
    bottom = padded[y0 + 1, x0] * (1 - fx) + padded[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
