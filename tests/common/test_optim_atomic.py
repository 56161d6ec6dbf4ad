"""A failed optimizer step changes nothing: every parameter and every piece of optimizer state
(momentum buffers, Adam's moments and step count) is as it was, and the error names the
parameter, the shapes or dtypes, and the fix."""

import copy

import numpy as np
import pytest

from common import nn, optim
from common.ops import DTypeError, ShapeError

OPTIMIZERS = [
    pytest.param(lambda ps: optim.SGD(ps, lr=0.1), id="sgd"),
    pytest.param(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01), id="momentum"),
    pytest.param(lambda ps: optim.Adam(ps, lr=0.1), id="adam"),
]


def trained_once(make_optimizer):
    """Parameters 'first' (3,) and 'second' (2,) and their optimizer, after one good step
    (so that the state exists and a failed step could corrupt it)."""
    first = nn.Parameter(np.array([1.0, -2.0, 3.0], np.float32), name="first")
    second = nn.Parameter(np.array([0.5, 4.0], np.float32), name="second")
    opt = make_optimizer([first, second])
    first.grad, second.grad = np.ones(3), np.ones(2)
    opt.step()
    return first, second, opt


def snapshot(opt) -> tuple:
    return [p.data.copy() for p in opt.params], copy.deepcopy(opt.state)


def assert_unchanged(before: tuple, opt) -> None:
    values, states = before
    for value, p in zip(values, opt.params, strict=True):
        np.testing.assert_array_equal(p.data, value, strict=True)
    for state, now in zip(states, opt.state, strict=True):
        assert state.keys() == now.keys()
        for key in state:
            np.testing.assert_array_equal(now[key], state[key], strict=True)


def failed_step(opt, error) -> str:
    before = snapshot(opt)
    with pytest.raises(error) as info:
        opt.step()
    assert_unchanged(before, opt)
    return str(info.value)


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_a_wrongly_shaped_gradient_updates_no_parameter(make_optimizer):
    first, second, opt = trained_once(make_optimizer)
    first.grad, second.grad = np.ones(3), np.ones(3)
    message = failed_step(opt, ShapeError)
    for fragment in ["parameter 1 ('second')", "(3,)", "(2,)", "Fix:"]:
        assert fragment in message
    second.grad = np.ones(2)  # once fixed, the same step goes through
    opt.step()
    assert not np.array_equal(second.data, np.array([0.5, 4.0], np.float32))


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_a_gradient_of_a_dtype_the_parameter_cannot_hold_updates_nothing(make_optimizer):
    first, second, opt = trained_once(make_optimizer)
    first.grad, second.grad = np.ones(3), np.ones(2, np.complex64)
    message = failed_step(opt, DTypeError)
    for fragment in ["parameter 1 ('second')", "complex64", "float32", "Fix:"]:
        assert fragment in message


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS[1:])
def test_state_of_another_shape_than_its_parameter_updates_nothing(make_optimizer):
    """A parameter replaced by one of another shape after the optimizer saw it."""
    first, second, opt = trained_once(make_optimizer)
    second.data = np.zeros(4, np.float32)
    first.grad, second.grad = np.ones(3), np.ones(4)
    message = failed_step(opt, ShapeError)
    for fragment in ["parameter 1 ('second')", "(2,)", "(4,)", "Fix:"]:
        assert fragment in message
