"""`compare.check.gradcheck`: every op's VJP, first and second order, eager and compiled,
against central differences in float64 (driven from the registry's samples, so a new op is
checked with no test edit); and a wrong VJP planted in a test op is found at its order."""

import numpy as np
import pytest

from common import functional as F
from common.dispatch import apply
from common.ops.core import OPS, OpDef, declare
from common.ops.elementwise import unary_float
from compare.check import gradcheck, gradcheck_of_model
from tests.common.test_ops_registry import WITH_VJP

X = np.random.default_rng(1).uniform(0.5, 2.0, size=(3, 4))


@pytest.mark.parametrize("op, args, params", WITH_VJP)
def test_every_op_with_a_vjp_passes_gradcheck_to_second_order(op, args, params):
    report = gradcheck(lambda *primals: apply(op, *primals, **params), *args, order=2)
    assert report.ok, str(report)
    assert report.worst is not None and report.entries > 0


@pytest.fixture
def cube_with_vjp():
    """Declares `x ** 3` with a given VJP for one test, and removes it after."""
    names = []

    def declare_cube(name: str, vjp) -> OpDef:
        names.append(name)
        kernel = lambda xp, x: x**3  # noqa: E731
        return declare(OpDef(name, "elementwise", kernel, unary_float, vjp=(vjp,)))

    yield declare_cube
    for name in names:
        del OPS[name]


def test_a_wrong_first_order_vjp_is_found(cube_with_vjp):
    cube = cube_with_vjp("cube_forgets_a_power", lambda g, out, x: g * 3 * x)  # not 3x²
    report = gradcheck(lambda x: apply(cube, x), X, order=1)
    assert not report.ok
    worst = report.worst
    assert (worst.order, worst.input, worst.engine) == (1, "x (input 0)", "eager")
    assert worst.got == pytest.approx(worst.expected / X[worst.entry], rel=1e-4)  # 3x c, 3x² c
    assert "FAILS" in str(report)
    assert f"the gradient of x (input 0) at entry {worst.entry}, eager, is" in str(report)


def test_a_vjp_right_at_first_order_but_wrong_at_second_is_found(cube_with_vjp):
    """3 * x * stop_gradient(x) has the right value, but its own derivative is 3x, not 6x."""
    cube = cube_with_vjp("cube_stops_a_gradient", lambda g, out, x: g * 3 * x * F.stop_gradient(x))
    assert gradcheck(lambda x: apply(cube, x), X, order=1).ok
    report = gradcheck(lambda x: apply(cube, x), X, order=2)
    assert not report.ok
    assert (report.worst.order, report.worst.input) == (2, "x (input 0)")
    assert report.worst.got == pytest.approx(report.worst.expected / 2, rel=1e-4)
    assert "the Hessian-vector product of x (input 0)" in str(report)


def test_integer_inputs_are_passed_through_not_differentiated():
    def pick(x, index):
        return F.tanh(x)[index]

    report = gradcheck(pick, X, np.array([2, 0]))
    assert report.ok, str(report)
    assert report.entries == 4 * X.size  # two orders, two engines, x only
    assert report.worst.input == "x (input 0)"


def test_a_zoo_model_passes_gradcheck():
    report = gradcheck_of_model("neuron")
    assert report.ok, str(report)
    assert report.name.startswith("neuron") and "gradcheck passes" in str(report)
