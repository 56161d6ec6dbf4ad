"""The seedable random generator shared by initializers, dropout and the data iterator."""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the default generator, so initialization and dropout repeat exactly."""
    global _generator
    _generator = np.random.default_rng(seed)


def default_generator() -> np.random.Generator:
    return _generator


def generator(seed_or_generator: int | np.random.Generator | None = None) -> np.random.Generator:
    """A generator from a seed, an existing generator, or the default one (None)."""
    if seed_or_generator is None:
        return _generator
    if isinstance(seed_or_generator, np.random.Generator):
        return seed_or_generator
    return np.random.default_rng(seed_or_generator)
