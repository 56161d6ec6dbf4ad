"""cond, while_loop and scan on symbols: the same results as the plain-Python eager versions,
gradients through cond and scan against central differences (float64), and clear errors
where a control-flow node cannot do what was asked. Gradients through while_loop: in
test_while_grad.py."""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common.control import leaves, rebuild
from common.ops import OpError

RTOL, ATOL = 1e-6, 1e-8  # gradients vs central differences in float64 (conftest.EPS)


def _f64(shape, name):
    return S.placeholder(shape, "float64", name=name)


def _assert_all_close(got, want, rtol=1e-12):
    """Compare a (possibly nested) result leaf by leaf: the engines run the same kernels."""
    got, want = leaves(got), leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy() if isinstance(w, E.Tensor) else w, rtol=rtol)


# ---- forward: symbols against eager ------------------------------------------------------

COND_BRANCHES = {
    "one output": (lambda a, b: a * b, lambda a, b: a - b),
    "tuple output": (lambda a, b: (a * b, F.sum(a)), lambda a, b: (a / (1 + b * b), F.max(b))),
    "branch ignores operands": (lambda a, b: F.tanh(a), lambda a, b: b * 0.0 + 7.0),
}


@pytest.mark.parametrize("pred", [True, False])
@pytest.mark.parametrize("name", sorted(COND_BRANCHES))
def test_cond_matches_eager(name, pred, rng):
    true_fn, false_fn = COND_BRANCHES[name]
    a0, b0 = rng.normal(size=3), rng.normal(size=3)
    p, a, b = S.placeholder((), "bool", name="p"), _f64((3,), "a"), _f64((3,), "b")
    out = F.cond(p, true_fn, false_fn, a, b)
    got = S.compile(list(leaves(out)), inputs=[p, a, b])(pred, a0, b0)
    _assert_all_close(got, F.cond(E.tensor(pred), true_fn, false_fn, E.tensor(a0), E.tensor(b0)))


WHILE_LOOPS = {
    "counter and carry": (
        lambda n: lambda c: c[0] < n,
        lambda c: (c[0] + 1, c[1] * 2.0),
        lambda x: (np.array(0), x),
    ),
    "halve until small": (
        lambda n: lambda c: F.max(F.abs(c)) > 0.1,
        lambda c: c * 0.5,
        lambda x: x,
    ),
    "no iteration at all": (
        lambda n: lambda c: c[0] > n,
        lambda c: (c[0] + 1, c[1] + 1.0),
        lambda x: (np.array(0), x),
    ),
}


@pytest.mark.parametrize("name", sorted(WHILE_LOOPS))
def test_while_loop_matches_eager(name, rng):
    """The test reads an outer symbol (n): it becomes an input of the loop node."""
    make_test, body, make_init = WHILE_LOOPS[name]
    x0 = rng.normal(size=3) * 10
    n, x = S.placeholder((), "int64", name="n"), _f64((3,), "x")
    out = F.while_loop(make_test(n), body, _map_carry(make_init(x), _as_symbol))
    got = S.compile(list(leaves(out)), inputs=[n, x])(4, x0)
    want = F.while_loop(make_test(E.tensor(4)), body, _map_carry(make_init(x0), E.tensor))
    _assert_all_close(got, want)


def _as_symbol(value):
    """Arrays in an initial carry become graph constants; symbols stay."""
    return value if isinstance(value, S.Symbol) else S.constant(value)


def _map_carry(carry, convert):
    return rebuild(carry, [convert(v) for v in leaves(carry)])


SCANS = {
    "carry and ys": (lambda c, x: (c + x, c * x), lambda h: h),
    "tuple carry": (
        lambda c, x: ((F.tanh(c[0] + x), c[1] + c[0] * c[0]), None),
        lambda h: (h, h * 0.0),
    ),
    "tuple ys": (lambda c, x: (c * 0.5 + x, (F.sum(c), x * c)), lambda h: h),
}


@pytest.mark.parametrize("name", sorted(SCANS))
def test_scan_matches_eager(name, rng):
    step, make_init = SCANS[name]
    h0, xs0 = rng.normal(size=3), rng.normal(size=(5, 3))
    h, xs = _f64((3,), "h"), _f64((5, 3), "xs")
    carry, ys = F.scan(step, make_init(h), xs)
    outputs = leaves(carry) + ([] if ys is None else leaves(ys))
    got = S.compile(outputs, inputs=[h, xs])(h0, xs0)
    carry_e, ys_e = F.scan(step, make_init(E.tensor(h0)), E.tensor(xs0))
    _assert_all_close(got, leaves(carry_e) + ([] if ys_e is None else leaves(ys_e)))


def test_cond_runs_only_the_branch_taken():
    """An out-of-range label would fail one_hot: harmless while that branch is not taken."""
    p, labels = S.placeholder((), "bool", name="p"), S.placeholder((2,), "int64", name="labels")
    out = F.cond(
        p, lambda lab: F.sum(F.one_hot(lab, 3)), lambda lab: F.sum(F.cast(lab, "float32")), labels
    )
    f = S.compile(out, inputs=[p, labels])
    assert f(False, np.array([7, 8])) == 15.0
    with pytest.raises(S.GraphRuntimeError, match="label 8 is out of range"):
        f(True, np.array([7, 8]))


# ---- gradients against central differences ----------------------------------------------


def _check_gradients(loss, wrt, feeds, numeric_grad):
    """S.grad of `loss` w.r.t. placeholders and variables, against central differences of
    the compiled loss (a variable is perturbed in its storage, then restored)."""
    f = S.compile(loss, optimize=0)
    grads = S.compile(S.grad(loss, wrt), inputs=f.inputs, optimize=0)(**feeds)
    variables = [x.node.value for x in wrt if x.node.op == "variable"]
    saved = [v.data.copy() for v in variables]

    def scalar(*values):
        given = dict(feeds)
        for x, value in zip(wrt, values):
            if x.node.op == "variable":
                x.node.value.data[...] = value
            else:
                given[x.name] = value
        return float(f(**given))

    start = [x.node.value.data.copy() if x.node.op == "variable" else feeds[x.name] for x in wrt]
    try:
        expected = [numeric_grad(scalar, start, i) for i in range(len(wrt))]
    finally:
        for v, s in zip(variables, saved):
            v.data[...] = s
    for x, got, want in zip(wrt, grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=x.name)
    return grads


@pytest.mark.parametrize("pred", [True, False])
def test_cond_gradient(pred, rng, numeric_grad):
    p, x = S.placeholder((), "bool", name="p"), _f64((4,), "x")
    loss = F.cond(p, lambda a: F.sum(F.tanh(a) * a), lambda a: F.sum(a**3), x)
    _check_gradients(loss, [x], {"p": pred, "x": rng.normal(size=4)}, numeric_grad)


@pytest.mark.parametrize("pred", [True, False])
def test_cond_gradient_with_two_operands_and_two_outputs(pred, rng, numeric_grad):
    p, a, b = S.placeholder((), "bool", name="p"), _f64((3,), "a"), _f64((3,), "b")
    u, v = F.cond(p, lambda a, b: (a * b, F.sum(a)), lambda a, b: (a - b, F.sum(b * b)), a, b)
    loss = F.sum(u * u) + 3.0 * v
    feeds = {"p": pred, "a": rng.normal(size=3), "b": rng.normal(size=3)}
    _check_gradients(loss, [a, b], feeds, numeric_grad)


@pytest.mark.parametrize("pred", [True, False])
def test_cond_gradient_reaches_a_variable_only_one_branch_uses(pred, rng, numeric_grad):
    """The untaken branch has no path to w: its gradient is zero, not missing or stale."""
    w = S.variable(rng.normal(size=3), name="w", dtype="float64")
    p, x = S.placeholder((), "bool", name="p"), _f64((3,), "x")
    loss = F.cond(p, lambda a: F.sum(a * w), lambda a: F.sum(a * a), x)
    x0 = rng.normal(size=3)
    _, dw = _check_gradients(loss, [x, w], {"p": pred, "x": x0}, numeric_grad)
    np.testing.assert_array_equal(dw, x0 if pred else np.zeros(3))


def test_scan_gradient_reaches_a_variable_the_body_closes_over(rng, numeric_grad):
    w = S.variable(rng.normal(size=3), name="w", dtype="float64")
    h, xs = _f64((3,), "h"), _f64((5, 3), "xs")
    carry, ys = F.scan(lambda c, x: (F.tanh(c * w + x), F.sum(c * c)), h, xs)
    loss = F.sum(carry * np.array([1.0, -2.0, 0.5])) + F.sum(ys)
    feeds = {"h": rng.normal(size=3), "xs": rng.normal(size=(5, 3))}
    _check_gradients(loss, [h, xs, w], feeds, numeric_grad)


def test_scan_gradient_with_a_tuple_carry(rng, numeric_grad):
    h, acc, xs = _f64((3,), "h"), _f64((3,), "acc"), _f64((4, 3), "xs")

    def step(carry, x):
        h, acc = carry
        return (F.tanh(h + x), acc + h * h), None

    (h_final, acc_final), _ = F.scan(step, (h, acc), xs)
    loss = F.sum(h_final) + F.sum(acc_final * acc_final)
    feeds = {"h": rng.normal(size=3), "acc": rng.normal(size=3), "xs": rng.normal(size=(4, 3))}
    _check_gradients(loss, [h, acc, xs], feeds, numeric_grad)


def test_scan_gradient_with_an_integer_counter_in_the_carry(rng, numeric_grad):
    """A step counter rides along with the float state; only the floats have gradients."""
    h, xs = _f64((3,), "h"), _f64((4, 3), "xs")

    def step(carry, x):
        count, h = carry
        return (count + 1, F.tanh(h + x)), None

    (count, h_final), _ = F.scan(step, (S.constant(np.array(0)), h), xs)
    assert count(h=np.zeros(3), xs=np.zeros((4, 3))) == 4
    feeds = {"h": rng.normal(size=3), "xs": rng.normal(size=(4, 3))}
    _check_gradients(F.sum(h_final), [h, xs], feeds, numeric_grad)


@pytest.mark.parametrize("flip", [True, False])
def test_gradient_through_a_cond_inside_a_scan(flip, rng, numeric_grad):
    """The reverse scan re-traces the body, cond included, and differentiates it."""
    h, xs = _f64((3,), "h"), _f64((4, 3), "xs")
    sign = -1.0 if flip else 1.0

    def step(c, x):
        c = F.cond(F.sum(x) * sign > 0, lambda a, b: a * b, lambda a, b: F.tanh(a + b), c, x)
        return c, None

    carry, _ = F.scan(step, h, xs)
    feeds = {"h": rng.normal(size=3), "xs": rng.normal(size=(4, 3))}
    _check_gradients(F.sum(carry), [h, xs], feeds, numeric_grad)


# ---- what control flow refuses, and says why ----------------------------------------------


MISMATCHED_BRANCHES = {
    "shapes": (lambda a: a, lambda a: F.sum(a)),
    "dtypes": (lambda a: a, lambda a: F.cast(a, "float32")),
    "number of outputs": (lambda a: (a, a), lambda a: a),
}


@pytest.mark.parametrize("name", sorted(MISMATCHED_BRANCHES))
def test_cond_branches_of_different_types_are_refused(name):
    true_fn, false_fn = MISMATCHED_BRANCHES[name]
    p, x = S.placeholder((), "bool", name="p"), _f64((3,), "x")
    with pytest.raises(OpError, match=r"branches return different types.*Fix") as info:
        F.cond(p, true_fn, false_fn, x)
    assert "test_control_flow.py" in str(info.value)  # the user's line, not the library's


MISUSES = {
    "cond on a vector": (lambda x: F.cond(x > 0, lambda a: a, lambda a: a, x), r"F\.where"),
    "scan changes the carry": (
        lambda x: F.scan(lambda c, t: (F.sum(c), None), x, x),
        r"scan: the step changes the carry",
    ),
    "scan step returns one value": (
        lambda x: F.scan(lambda c, t: c, x[0], x),
        r"must return \(new_carry, y\)",
    ),
    "while body changes the carry": (
        lambda x: F.while_loop(lambda c: F.sum(c) < 1, lambda c: F.sum(c), x),
        r"while_loop: the body changes the carry",
    ),
    "scan over an unknown length": (
        lambda x: F.scan(lambda c, t: (c, None), x, S.placeholder((None, 3))),
        r"known leading \(time\) axis",
    ),
}


@pytest.mark.parametrize("name", sorted(MISUSES))
def test_control_flow_misuse_is_refused_at_build_time(name):
    build, message = MISUSES[name]
    with pytest.raises(OpError, match=message):
        build(S.placeholder((3, 3), name="x"))


# A body may read any outer symbol: here one computed outside it (w * 2), not a source.
OUTER_COMPUTED = {
    "cond": lambda x, w2: F.cond(F.sum(x) > 0, lambda a: a * w2, lambda a: a, x),
    "while_loop": lambda x, w2: F.while_loop(lambda c: F.sum(c) < 10.0, lambda c: c + w2, x),
    "scan": lambda x, w2: F.scan(lambda c, t: (c * w2 + t, None), x, F.stack([x, x]))[0],
}


@pytest.mark.parametrize("kind", sorted(OUTER_COMPUTED))
def test_body_reading_an_outer_computed_symbol_runs(kind):
    x, w = _f64((3,), "x"), _f64((3,), "w")
    build = OUTER_COMPUTED[kind]
    got = S.compile(build(x, w * 2.0), inputs=[x, w])(np.ones(3), np.full(3, 1.5))
    want = build(E.tensor(np.ones(3)), E.tensor(np.full(3, 1.5)) * 2.0)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)
