"""Shared fixtures: a seeded generator, and a guard that keeps grad mode from leaking."""

import numpy as np
import pytest

from eager import autograd


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test: the same numbers whichever tests run first."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _restore_grad_mode():
    """A test that leaves grad mode off (a failure, or a library bug) must not break the rest."""
    yield
    autograd.grad_enabled = True
