"""Exercises for lesson 10 (docs/lessons/10_tracing.py). Fill in each function, then run
`python docs/lessons/10_tracing.py --check` (or `diptych lesson 10 --check`)."""

import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from common import nn


def exercise_1(calls):
    """`calls` is a list of argument tuples, each holding NumPy arrays and plain Python
    values, for one function `f = S.function(fn)` (no modules involved). Predict, without
    calling S.function, how many graphs `f` traces when called with each tuple in turn."""
    raise NotImplementedError("your code here")


def exercise_2(model):
    """`model.forward(x, scale)` takes an array `x` and a Python float `scale`. Return a pair
    `(call, fast)`: `fast` an `S.function` of the model, and `call(x, scale)` a function that
    runs the model through `fast` (scale still given as a Python float) such that any number
    of different scales run on one graph."""
    raise NotImplementedError("your code here")


def exercise_3(energy, n):
    """`energy(x)` maps an `n`-vector to a scalar with `F` ops. Return a compiled function
    (`S.compile`) of two `n`-vectors `(x, v)`, in that order, that returns the
    Hessian-vector product H(x) v, built as a graph with `S.grad` twice."""
    raise NotImplementedError("your code here")


def check_1(exercise_1):
    x4 = np.ones((4, 3), np.float32)
    x5 = np.ones((5, 3), np.float32)
    sequences = [
        [(x4, 1.0), (x4, 1.0)],
        [(x4, 1.0), (x5, 1.0), (x4, 1.0)],
        [(x4, 1.0), (x4.astype(np.float64), 1.0), (x4, 2.0)],
        [(x4, 2.0), (x4, 2)],
        [(x4, np.float32(1.0)), (x4, np.float32(3.0)), (x5, np.float32(3.0))],
    ]
    for calls in sequences:
        fast = S.function(lambda x, k: x * k)
        for args in calls:
            fast(*args)
        got = exercise_1(calls)
        assert got == fast.traces, (
            f"one sequence of {len(calls)} calls traced {fast.traces} graph(s), you predicted "
            f"{got}: what makes up a signature (arrays, Python values and their types)?"
        )


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2, generator=np.random.default_rng(1))

    def forward(self, x, scale):
        return F.tanh(self.layer(x) * scale)


def check_2(exercise_2):
    model = _Scaled()
    call, fast = exercise_2(model)
    assert isinstance(fast, S.TracedFunction), "return the S.function you call through"
    x = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    for scale in (0.5, 1.5, 2.5, -1.0):
        got = np.asarray(call(x, scale))
        want = model(E.tensor(x), scale).data
        assert np.allclose(got, want, atol=1e-6), "call(x, scale) should compute model(x, scale)"
    assert fast.traces == 1, (
        f"four scales made {fast.traces} graphs: a Python float is a constant in the graph"
    )


def check_3(exercise_3):
    n = 6
    gen = np.random.default_rng(3)
    w = gen.standard_normal((n, n)).astype(np.float32)

    def energy(x):
        return F.sum(F.tanh(x @ w) * x)

    hvp = exercise_3(energy, n)
    assert isinstance(hvp, S.CompiledFunction), "return the result of S.compile"
    x, v = (gen.standard_normal(n).astype(np.float32) for _ in range(2))
    point = E.tensor(x, requires_grad=True)
    (g,) = E.grad(energy(point), [point], create_graph=True)
    (want,) = E.grad(F.sum(g * E.tensor(v)), [point])
    got = np.asarray(hvp(x, v))
    assert got.shape == (n,), f"expected one value per input element, got shape {got.shape}"
    assert np.allclose(got, want.data, atol=1e-5), "not the Hessian times v at x"
