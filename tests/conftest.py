"""Shared fixtures: a seeded generator, central differences, and a grad-mode guard; and the
hypothesis profiles (HYPOTHESIS_PROFILE=long for a longer local search)."""

import os

import numpy as np
import pytest
from hypothesis import settings

from eager import autograd

# default: what `make test` runs, the same examples on every machine (derandomize), a failure
# printed with the blob that replays it; long: a fresh, much longer search, run by hand.
settings.register_profile(
    "default", max_examples=400, deadline=None, derandomize=True, database=None, print_blob=True
)
settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

EPS = 1e-6  # central differences in float64: truncation ~EPS**2, rounding ~1e-16 / EPS


def _numeric_grad(f, args, i: int = 0) -> np.ndarray:
    """d f(*args) / d args[i] by central differences; `f` returns a scalar, args are arrays."""
    primals = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    x = primals[i]
    grad = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        saved = x[idx]
        x[idx] = saved + EPS
        hi = f(*primals)
        x[idx] = saved - EPS
        lo = f(*primals)
        x[idx] = saved
        grad[idx] = (hi - lo) / (2 * EPS)
    return grad


@pytest.fixture(autouse=True, scope="session")
def _private_kernel_cache(tmp_path_factory):
    """Numba kernels the tests build go to this run's own folder, never the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIPTYCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test: the same numbers whichever tests run first."""
    return np.random.default_rng(0)


@pytest.fixture
def numeric_grad():
    """The reference every hand-written gradient is checked against."""
    return _numeric_grad


@pytest.fixture(autouse=True)
def _restore_grad_mode():
    """A test that leaves grad mode off (a failure, or a library bug) must not break the rest."""
    yield
    autograd.grad_mode.set(True)


@pytest.fixture(autouse=True)
def fuse_small_groups(monkeypatch):
    """Tests use small arrays; fuse them anyway so fusion's logic is exercised everywhere
    (the size threshold itself has its own test in tests/symbolic/passes/test_fusion.py)."""
    from symbolic.passes import fusion

    monkeypatch.setattr(fusion, "MIN_ELEMENTS", 1)


def pytest_terminal_summary(terminalreporter) -> None:
    """What was skipped and why, one line per reason: only absent hardware or an absent
    optional peer may skip, and the run says which."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped, and why")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.line(f"{count:5d}  {reason}")
