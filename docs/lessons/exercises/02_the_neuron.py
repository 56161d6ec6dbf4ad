"""Exercises for lesson 2 (docs/lessons/02_the_neuron.py). Fill in each function, then run
`python docs/lessons/02_the_neuron.py --check` (or `diptych lesson 2 --check`)."""

import numpy as np

import eager as E
import symbolic as S
from common import functional as F


def exercise_1(w, x, b):
    """The derivative of tanh(w*x + b) with respect to w, written by hand with numpy (the
    chain rule, no autograd); w, x and b are floats or numpy arrays of one shape."""
    raise NotImplementedError("your code here")


def exercise_2(w, x, b):
    """w, x, b are placeholders. Return the symbol for the derivative of tanh(w*x + b) with
    respect to b: a node of the gradient graph, which computes nothing until it is run."""
    raise NotImplementedError("your code here")


def exercise_3(y):
    """y is an eager tensor made by ops on tensors that require grad. Return the names of
    the ops its tape recorded (a list of str, e.g. "mul"), last op first, following from
    each op the first of its inputs that was itself recorded (has a grad_fn)."""
    raise NotImplementedError("your code here")


def _neuron(w, x, b):
    return np.tanh(w * x + b)


def check_1(exercise_1):
    rng = np.random.default_rng(2)
    w, x, b = rng.uniform(-2, 2, (3, 20))
    h = 1e-6
    finite_difference = (_neuron(w + h, x, b) - _neuron(w - h, x, b)) / (2 * h)
    got = np.asarray(exercise_1(w, x, b), dtype=np.float64)
    assert got.shape == w.shape, (
        f"one derivative per (w, x, b): expected {w.shape}, got {got.shape}"
    )
    worst = np.max(np.abs(got - finite_difference))
    assert worst < 1e-6, (
        f"differs from finite differences by up to {worst:.2g}: which factor does dz/dw give?"
    )


def check_2(exercise_2):
    w, x, b = (S.placeholder((), "float64", name=n) for n in "wxb")
    grad_b = exercise_2(w, x, b)
    assert isinstance(grad_b, S.Symbol), "return a symbol (S.grad gives one per input)"
    f = S.compile(grad_b, inputs=[w, x, b])
    for values in [(-1.2, 0.5, 0.3), (0.7, -2.0, 1.5)]:
        want = 1 - np.tanh(values[0] * values[1] + values[2]) ** 2
        got = float(f(*values))
        assert np.isclose(got, want), f"at (w, x, b) = {values} the graph gave {got}, not dy/db"


def check_3(exercise_3):
    w, x, b = (E.tensor(v, requires_grad=True) for v in (-1.2, 0.5, 0.3))
    got = list(exercise_3(F.tanh(w * x + b)))
    assert got == ["tanh", "add", "mul"], f"tanh(w*x + b) recorded three ops; you gave {got}"
    v = E.tensor([1.0, 2.0], requires_grad=True)
    got = list(exercise_3(F.exp(v * 2).sum()))
    assert got == ["sum", "exp", "mul"], f"exp(v*2).sum() recorded three ops; you gave {got}"
