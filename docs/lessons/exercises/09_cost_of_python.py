"""Exercises for lesson 9 (docs/lessons/09_cost_of_python.py). Fill in each function, then run
`python docs/lessons/09_cost_of_python.py --check` (or `diptych lesson 9 --check`)."""

import numpy as np

import eager as E
from common import functional as F
from common import nn


def exercise_1(compile_s, eager_s, compiled_s):
    """Compiling took `compile_s` seconds; a call takes `eager_s` seconds eagerly and
    `compiled_s` compiled. Return the smallest whole number of calls after which the time
    saved has paid for the compile step, or None when the compiled call is not faster."""
    raise NotImplementedError("your code here")


def exercise_2(fn, n):
    """`fn` takes one array and applies `F` ops to it. Return how many ops eager dispatches
    (each paying its Python price) when it runs `fn` on an `n`-element float32 array. Count
    them from a graph of `fn` (symbolic, optimize=0), not by reading `fn`."""
    raise NotImplementedError("your code here")


def exercise_3(model, x):
    """Run the `common.nn` model on the eager tensor `x` without recording the tape (its
    parameters want gradients) and return the output tensor."""
    raise NotImplementedError("your code here")


def check_1(exercise_1):
    assert exercise_1(0.25, 0.004, 0.001) == 84, (
        "0.25 s of compiling saving 3 ms per call: count the calls until the savings reach the "
        "compile time, rounded up to a whole call"
    )
    assert exercise_1(2.0, 0.07, 0.01) == 34, "rounded up: a partial call does not pay"
    assert exercise_1(0.5, 0.001, 0.002) is None, "a slower compiled call never pays off"
    assert exercise_1(0.1, 0.002, 0.002) is None, "an equally fast compiled call never pays off"


def check_2(exercise_2):
    def gelu(x):
        return 0.5 * x * (1.0 + F.tanh(0.8 * (x + 0.044715 * x**3)))

    cases = [(lambda x: x * 2 + 1, 2), (gelu, 8), (lambda x: F.tanh(gelu(x)), 9)]
    for n in (1, 1000):
        for fn, ops in cases:
            got = exercise_2(fn, n)
            assert isinstance(got, int), "return the count as an int"
            assert got == ops, f"expected one op per F call or operator; got {got}"


def check_3(exercise_3):
    gen = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 3, generator=gen), nn.Tanh())
    x = E.tensor(gen.standard_normal((2, 4)).astype(np.float32))
    out = exercise_3(model, x)
    assert isinstance(out, E.Tensor), "return the model's output tensor"
    assert np.allclose(out.data, model(x).data), "the output should be the model's output"
    assert out.grad_fn is None and not out.requires_grad, "the output still has a tape entry"
    assert E.is_grad_enabled(), "recording should be back on once the forward is done"
    assert all(p.requires_grad for p in model.parameters()), (
        "the parameters should still want gradients: stop the recording, not the parameters"
    )
