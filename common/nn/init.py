"""Weight initializers, as in torch.nn.init, drawing from the seedable generator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import random


def uniform(shape: tuple, bound: float, generator: Any = None) -> np.ndarray:
    """U(-bound, bound) samples in float32."""
    rng = random.generator(generator)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def normal(shape: tuple, std: float = 1.0, generator: Any = None) -> np.ndarray:
    return (random.generator(generator).standard_normal(shape) * std).astype(np.float32)


def fan_in(shape: tuple) -> int:
    """Inputs feeding one output unit: in_features, or in_channels * kh * kw."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def kaiming_uniform(shape: tuple, generator: Any = None) -> np.ndarray:
    """torch's default for Linear and Conv2d weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in(shape)), generator)


def xavier_uniform(shape: tuple, generator: Any = None) -> np.ndarray:
    fan_out = shape[0] * (int(np.prod(shape[2:])) if len(shape) > 2 else 1)
    return uniform(shape, math.sqrt(6.0 / (fan_in(shape) + fan_out)), generator)
