"""Exercises for lesson 3 (docs/lessons/03_two_layer_net.py). Fill in each function, then run
`python docs/lessons/03_two_layer_net.py --check` (or `diptych lesson 3 --check`)."""

import numpy as np

import eager as E
import symbolic as S
from common import functional as F  # noqa: F401 (for your answers)


def exercise_1(h, grad_output):
    """ReLU's backward in numpy: h is the input of relu(h) = max(h, 0) and grad_output the
    gradient of the loss with respect to relu(h); return the gradient with respect to h."""
    raise NotImplementedError("your code here")


def exercise_2():
    """Return a subclass of E.Function computing x**3 elementwise, whose backward is your own
    formula (save what it needs in forward with ctx.save_for_backward)."""
    raise NotImplementedError("your code here")


def exercise_3(w, x, t):
    """w is a variable of shape (3,), x a placeholder of shape (8, 3), t one of shape (8,).
    Return S.compile(...) of the loss F.mse_loss(x @ w, t) with inputs=[x, t] and one SGD
    update (learning rate 0.1) of w inside the graph, so that each call trains w."""
    raise NotImplementedError("your code here")


def check_1(exercise_1):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 5))
    got = np.asarray(exercise_1(h, g))
    assert got.shape == h.shape, f"the gradient has h's shape {h.shape}, not {got.shape}"
    assert np.allclose(got, np.where(h > 0, g, 0.0)), (
        "where h > 0, relu passes the gradient through; elsewhere the output does not depend on h"
    )


def check_2(exercise_2):
    cube = exercise_2()
    assert isinstance(cube, type) and issubclass(cube, E.Function), "return the class itself"
    x = E.tensor([-1.5, 0.5, 2.0], requires_grad=True)
    out = cube.apply(x)
    assert np.allclose(out.numpy(), x.numpy() ** 3), "forward should compute x**3"
    out.sum().backward()
    assert x.grad is not None, "backward should return the gradient for x"
    assert np.allclose(x.grad.numpy(), 3 * x.numpy() ** 2), "the derivative of x**3 is not that"
    x2 = E.tensor([1.0, -2.0], requires_grad=True)
    (cube.apply(x2) * E.tensor([2.0, 3.0])).sum().backward()
    assert np.allclose(x2.grad.numpy(), [6.0, 36.0]), (
        "backward should multiply by the gradient it receives (the chain rule)"
    )


def check_3(exercise_3):
    w = S.variable(np.zeros(3, np.float32), name="w")
    x = S.placeholder((8, 3), name="x")
    t = S.placeholder((8,), name="t")
    step = exercise_3(w, x, t)
    assert isinstance(step, S.CompiledFunction), "return the compiled step (S.compile)"
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((8, 3)).astype(np.float32)
    ts = xs @ np.array([1.0, -2.0, 0.5], np.float32)
    before = float(step(xs, ts))
    assert np.any(w.value != 0), "a call should update w: pass updates={w: ...} to S.compile"
    for _ in range(300):
        last = float(step(xs, ts))
    assert last < before, "the loss should fall from call to call"
    assert last < 1e-3 and np.allclose(w.value, [1.0, -2.0, 0.5], atol=1e-2), (
        f"after 300 calls w should be near the least-squares answer, it is {w.value}"
    )
