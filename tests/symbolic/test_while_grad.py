"""Gradients through `F.while_loop` (issue 11, item 1), both ways: the loop that saves the
carry of each iteration it runs (TF1's), and the bounded `max_iterations=` form (JAX's: a
scan of that many steps). Each is checked against central differences in float64, against
the eager loop (plain Python, taped), and at optimize 0 and 2."""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import optim
from common.nn.parameter import Parameter
from common.ops import OpError

RTOL, ATOL = 1e-6, 1e-8  # gradients vs central differences in float64 (conftest.EPS)


def _counter(x, w, n, const, max_iterations=None):
    """n iterations of h <- tanh(h * w + x): reads a weight and an outer value."""
    _, h = F.while_loop(
        lambda c: c[0] < n,
        lambda c: (c[0] + 1, F.tanh(c[1] * w + x)),
        (const(np.array(0)), x * 0.5),
        max_iterations=max_iterations,
    )
    return F.sum(h * np.array([1.0, -2.0, 0.5]))


def _grow_until_large(x, w, n, const, max_iterations=None):
    """A trip count that depends on the data: grow h until its norm passes 20."""
    h = F.while_loop(
        lambda h: F.sum(h * h) < 400.0,
        lambda h: h * 1.5 + w * 0.1,
        x,
        max_iterations=max_iterations,
    )
    return F.sum(F.tanh(h * 0.1))


def _tuple_carry(x, w, n, const, max_iterations=None):
    def body(c):
        i, h, acc = c
        return i + 1, F.tanh(h + w), acc + h * h

    _, h, acc = F.while_loop(
        lambda c: c[0] < n, body, (const(np.array(0)), x, x * 0.0), max_iterations=max_iterations
    )
    return F.sum(h) + F.sum(acc * w)


def _in_a_cond(x, w, n, const, max_iterations=None):
    """The loop inside a branch: the cond's gradient differentiates the loop."""

    def loop(a):
        return F.while_loop(
            lambda c: c[0] < n,
            lambda c: (c[0] + 1, c[1] * w + 0.1),
            (const(np.array(0)), a),
            max_iterations=max_iterations,
        )[1]

    return F.sum(F.cond(F.sum(x) > 0, loop, lambda a: a * a, x) * x)


def _in_a_scan(x, w, n, const, max_iterations=None):
    """A loop in each step of a scan: the reverse scan differentiates the loop."""

    def step(h, t):
        _, h = F.while_loop(
            lambda c: c[0] < n,
            lambda c: (c[0] + 1, F.tanh(c[1] * w + t)),
            (const(np.array(0)), h),
            max_iterations=max_iterations,
        )
        return h, None

    h, _ = F.scan(step, x, F.stack([x, x * w]))
    return F.sum(h)


def _in_a_while(x, w, n, const, max_iterations=None):
    """A loop in a loop's body: n outer iterations of i inner ones (i the outer count)."""

    def outer(c):
        inner = F.while_loop(
            lambda d: d[0] < c[0],
            lambda d: (d[0] + 1, F.tanh(d[1] * w)),
            (const(np.array(0)), c[1] + x),
            max_iterations=max_iterations,
        )
        return c[0] + 1, inner[1]

    _, h = F.while_loop(
        lambda c: c[0] < n, outer, (const(np.array(0)), x), max_iterations=max_iterations
    )
    return F.sum(h * h)


LOOPS = {
    "counter": _counter,
    "grow until large": _grow_until_large,
    "tuple carry": _tuple_carry,
    "in a cond": _in_a_cond,
    "in a scan": _in_a_scan,
    "in a while": _in_a_while,
}
TRIPS = [0, 1, 4]  # iterations the counting loops run


def _inputs(name, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=3), rng.normal(size=3) * 0.5 + 1.0
    if name == "in a cond" and seed % 2:
        x = -x  # the other branch
    return x, w


def _eager(name, x0, w0, n, max_iterations):
    """Eager's loss and gradients w.r.t. x and w (zeros where the loss ignores one)."""
    x, w = E.tensor(x0, requires_grad=True), E.tensor(w0, requires_grad=True)
    loss = LOOPS[name](x, w, E.tensor(np.array(n)), E.tensor, max_iterations)
    grads = E.grad(loss, [x, w], allow_unused=True)
    return float(loss.numpy()), [np.zeros(3) if g is None else g.numpy() for g in grads]


def _symbolic(name, x0, w0, max_iterations):
    """The loss and its gradients w.r.t. a placeholder x and a variable w: compiled at
    optimize 0 and 2, and the loss alone (optimize 0) for central differences."""
    x, n = S.placeholder((3,), "float64", name="x"), S.placeholder((), "int64", name="n")
    w = S.variable(w0.copy(), name="w", dtype="float64")
    loss = LOOPS[name](x, w, n, S.constant, max_iterations)
    grads = S.grad(loss, [x, w])
    runs = [S.compile([loss, *grads], inputs=[x, n], optimize=level) for level in (0, 2)]
    return runs, S.compile(loss, inputs=[x, n], optimize=0), w


def _central_differences(f, w, x0, n, numeric_grad):
    def scalar(x, w_value):
        w.node.value.data[...] = w_value
        return float(f(x, n))

    saved = w.node.value.data.copy()
    try:
        return [numeric_grad(scalar, [x0, saved.copy()], i) for i in range(2)]
    finally:
        w.node.value.data[...] = saved


def _check(name, n, max_iterations, seed, numeric_grad):
    x0, w0 = _inputs(name, seed)
    runs, f, w = _symbolic(name, x0, w0, max_iterations)
    want_loss, want_grads = _eager(name, x0, w0, n, max_iterations)
    expected = _central_differences(f, w, x0, n, numeric_grad)
    for level, run in zip((0, 2), runs):
        loss, *grads = run(x0, n)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-12, err_msg=f"optimize={level}")
        for label, got, eager, numeric in zip("xw", grads, want_grads, expected):
            where = f"d loss / d {label}, optimize={level}"
            np.testing.assert_allclose(got, numeric, rtol=RTOL, atol=ATOL, err_msg=where)
            np.testing.assert_allclose(got, eager, rtol=1e-10, atol=1e-12, err_msg=where)


# ---- TF1's way: the carries of the iterations that ran --------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "name, n",
    [(name, n) for name in sorted(LOOPS) for n in ([0] if name == "grow until large" else TRIPS)],
)
def test_while_loop_gradient(name, n, seed, numeric_grad):
    _check(name, n, None, seed, numeric_grad)


def test_the_data_dependent_trip_count_varies():
    """The case above runs a different number of iterations for different inputs."""
    x = S.placeholder((3,), "float64", name="x")
    count = F.while_loop(
        lambda c: F.sum(c[1] * c[1]) < 400.0,
        lambda c: (c[0] + 1, c[1] * 1.5 + 0.1),
        (S.constant(np.array(0)), x),
    )[0]
    trips = {int(count(np.full(3, v))) for v in (0.1, 1.0, 5.0, 30.0)}
    assert len(trips) == 4 and 0 in trips


def test_a_loop_with_no_float_carry_saves_nothing():
    """The tape (trip count and saved carries) is kept only when a gradient can flow."""
    n = S.placeholder((), "int64", name="n")
    ints = F.while_loop(lambda c: c < n, lambda c: c + 1, S.constant(np.array(0)))
    floats = F.while_loop(lambda c: c < 3.0, lambda c: c + 1.0, S.constant(np.array(0.0)))
    assert len(ints.node.inputs[0].params["out_avals"]) == 1
    assert len(floats.node.inputs[0].params["out_avals"]) == 3  # carry, count, saved carries


# ---- JAX's way: at most max_iterations, a scan of that many steps -------------------------


@pytest.mark.parametrize("max_iterations", [0, 2, 6])
@pytest.mark.parametrize("n", TRIPS)
@pytest.mark.parametrize("name", ["counter", "tuple carry", "in a cond", "in a while"])
def test_bounded_while_loop_gradient(name, n, max_iterations, numeric_grad):
    _check(name, n, max_iterations, 0, numeric_grad)


def test_bounded_data_dependent_loop_gradient(numeric_grad):
    _check("grow until large", 0, 3, 0, numeric_grad)  # stops at 3 before it is large


@pytest.mark.parametrize("max_iterations", [0, 1, 3, 10])
def test_max_iterations_stops_the_loop_in_both_engines(max_iterations):
    """As TF's maximum_iterations: the loop stops there even if the test still holds."""

    def count(init):
        return F.while_loop(
            lambda c: c < 5.0, lambda c: c + 1.0, init, max_iterations=max_iterations
        )

    x = S.placeholder((), "float64", name="x")
    assert float(count(E.tensor(np.array(0.0))).numpy()) == min(max_iterations, 5)
    assert float(count(x)(0.0)) == min(max_iterations, 5)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_max_iterations_must_be_a_count(bad):
    for x in (E.tensor(np.array(0.0)), S.placeholder((), "float64")):
        with pytest.raises(OpError, match=r"max_iterations must be an int >= 0.*Fix"):
            F.while_loop(lambda c: c < 5.0, lambda c: c + 1.0, x, max_iterations=bad)


# ---- a training step through a while_loop ---------------------------------------------------


def _loss(x, t, w, max_iterations):
    """Three refinement steps of h, then a squared error: the weight is read in the body."""
    _, h = F.while_loop(
        lambda c: c[0] < 3,
        lambda c: (c[0] + 1, F.tanh(c[1] @ w) + x),
        (np.array(0), x),
        max_iterations=max_iterations,
    )
    return F.mean((h - t) ** 2)


@pytest.mark.parametrize("max_iterations", [None, 5])
def test_training_step_through_a_while_loop_matches_eager(max_iterations):
    rng = np.random.default_rng(3)
    start = rng.normal(size=(3, 3)) * 0.5
    batches = [(rng.normal(size=(4, 3)), rng.normal(size=(4, 3))) for _ in range(4)]
    eager_w, symbolic_w = Parameter(start.copy(), name="w"), Parameter(start.copy(), name="w")

    opt = optim.SGD([eager_w], lr=0.1, momentum=0.9)
    for xb, tb in batches:
        loss = _loss(E.tensor(xb), E.tensor(tb), eager_w, max_iterations)
        opt.zero_grad()
        loss.backward()
        opt.step()

    x, t = S.placeholder((4, 3), "float64", name="x"), S.placeholder((4, 3), "float64", name="t")
    loss = _loss(x, t, symbolic_w, max_iterations)
    sopt = optim.SGD([symbolic_w], lr=0.1, momentum=0.9)
    step = S.compile(
        loss, inputs=[x, t], updates=S.optimizer_updates(sopt, S.grad(loss, sopt.params))
    )
    for xb, tb in batches:
        step(xb, tb)

    assert not np.allclose(eager_w.data, start)  # it trained
    np.testing.assert_allclose(symbolic_w.data, eager_w.data, rtol=1e-10, atol=1e-12)


# ---- second order: the gradient graph reads the saved carries ---------------------------


def _loop_loss(kind, x, w, n):
    def body(c):
        return c[0] + 1, F.tanh(c[1] * w + 0.1)

    init = (S.constant(np.array(0)), x)
    if kind == "scan":
        h, _ = F.scan(lambda c, t: (F.tanh(c * w + t), None), x, S.constant(np.full((4, 3), 0.1)))
    else:
        bound = 6 if kind == "bounded" else None
        _, h = F.while_loop(lambda c: c[0] < n, body, init, max_iterations=bound)
    return F.sum(h * h)


@pytest.mark.parametrize("n", TRIPS)
@pytest.mark.parametrize("kind", ["while_loop", "bounded", "scan"])
def test_gradient_of_a_gradient_through_a_loop(kind, n, numeric_grad):
    """A Hessian-vector product: the first gradient's reverse scan reads the carries the
    forward loop saved, so the second sends them cotangents, which must reach x and w."""
    rng = np.random.default_rng(n)
    x, n_ = S.placeholder((3,), "float64", name="x"), S.placeholder((), "int64", name="n")
    w = S.placeholder((3,), "float64", name="w")
    (gx,) = S.grad(_loop_loss(kind, x, w, n_), [x])
    v = rng.normal(size=3)
    hv = F.sum(gx * v)
    x0, w0 = rng.normal(size=3), rng.normal(size=3) * 0.5 + 1.0
    f = S.compile(hv, inputs=[x, w, n_], optimize=0)
    for level in (0, 2):
        got = S.compile(S.grad(hv, [x, w]), inputs=[x, w, n_], optimize=level)(x0, w0, n)
        for i, g in enumerate(got):
            want = numeric_grad(lambda a, b: float(f(a, b, n)), [x0, w0], i)
            np.testing.assert_allclose(g, want, rtol=RTOL, atol=ATOL, err_msg=f"input {i}")
