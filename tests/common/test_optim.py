"""Optimizer rules against their textbook formulas, and against torch when it is installed."""

import numpy as np
import pytest

from common import nn, optim


def quadratic_steps(make_optimizer, steps=5):
    """Minimize sum(p**2 * c) with gradients given by hand; return the trajectory."""
    p = nn.Parameter(np.array([1.0, -2.0, 3.0], np.float64))
    c = np.array([1.0, 0.5, 2.0])
    opt = make_optimizer([p])
    path = []
    for _ in range(steps):
        p.grad = 2 * c * p.data  # a plain array is accepted as a gradient too
        opt.step()
        path.append(p.data.copy())
    return np.array(path)


def reference_sgd(p, c, lr, momentum, weight_decay, steps):
    buf = np.zeros_like(p)
    path = []
    for _ in range(steps):
        g = 2 * c * p + weight_decay * p
        buf = momentum * buf + g
        p = p - lr * (buf if momentum else g)
        path.append(p)
    return np.array(path)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01)])
def test_sgd_matches_the_textbook_update(momentum, weight_decay):
    got = quadratic_steps(
        lambda ps: optim.SGD(ps, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    )
    want = reference_sgd(
        np.array([1.0, -2.0, 3.0]), np.array([1.0, 0.5, 2.0]), 0.1, momentum, weight_decay, 5
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch", reason="torch not installed: the Adam oracle needs it")
    got = quadratic_steps(lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.01), steps=20)
    p = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    opt = torch.optim.Adam([p], lr=0.1, weight_decay=0.01)
    want = []
    for _ in range(20):
        opt.zero_grad()
        (p * p * c).sum().backward()
        opt.step()
        want.append(p.detach().numpy().copy())
    np.testing.assert_allclose(got, np.array(want), rtol=1e-10)


def test_step_skips_parameters_without_gradients_and_zero_grad_clears():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(a.data, [0.5, 0.5])
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    opt.zero_grad()
    assert a.grad is None


def test_bad_optimizer_arguments_are_explained():
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be positive"):
        optim.Adam([nn.Parameter(np.ones(1))], lr=-1)
