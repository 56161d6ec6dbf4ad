"""Exercises for lesson 5 (docs/lessons/05_control_flow.py). Fill in each function, then run
`python docs/lessons/05_control_flow.py --check` (or `diptych lesson 5 --check`)."""

import numpy as np

import eager as E
import symbolic as S
from common import functional as F  # noqa: F401  (for your answers)


def exercise_1(x):
    """`x * 2` where `sum(x) > 0`, else `-x`: one function that runs on an eager tensor and
    on a symbol (the check compiles it for both branches)."""
    raise NotImplementedError("your code here")


def exercise_2(x):
    """Halve `x` until every element has `|x| < 1`; return `(count, halved x)`, where `count`
    is the number of halvings. On a symbol, the count must be computed by the graph (the
    check feeds several inputs to one compiled function)."""
    raise NotImplementedError("your code here")


def exercise_3(xs):
    """The running sums along the first axis, `ys[t] = xs[0] + ... + xs[t]`, as an array of
    the same shape as `xs`. On a symbol the graph must not grow with the sequence's length."""
    raise NotImplementedError("your code here")


# ---- checks: they judge what your functions do, they do not show an answer -------------


def _compiled(fn, shape, dtype="float32"):
    """`fn` applied to a placeholder, compiled (its outputs as a list)."""
    x = S.placeholder(shape, dtype, name="x")
    out = fn(x)
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    return S.compile(outputs, inputs=[x], optimize=0)


def _trace(fn, shape):
    """Compile `fn` on a symbol, turning Python control flow's error into a hint."""
    try:
        return _compiled(fn, shape)
    except TypeError as error:
        if "symbol" in str(error):
            raise AssertionError(
                "on a symbol your function asked Python for a value that does not exist yet "
                "(an `if`, a `while`, bool() or float()): see the lesson's first section"
            ) from error
        raise


def check_1(exercise_1):
    compiled = _trace(exercise_1, (3,))
    for values in ([1.0, 2.0, -0.5], [-1.0, 0.25, -3.0]):
        x = np.array(values, np.float32)
        want = x * 2 if x.sum() > 0 else -x
        got = np.asarray(compiled(x)[0])
        assert np.allclose(got, want), f"compiled, for x = {values}: got {got}, want {want}"
        eager = np.asarray(exercise_1(E.tensor(x)))
        assert np.allclose(eager, want), f"eagerly, for x = {values}: got {eager}, want {want}"


def check_2(exercise_2):
    compiled = _trace(exercise_2, (3,))
    for values in ([0.5, -0.25, 0.1], [10.0, -3.0, 0.5], [300.0, 1.0, -2.0]):
        x = np.array(values, np.float32)
        count = 0
        while np.max(np.abs(x)) >= 1:
            x, count = x * 0.5, count + 1
        outputs = compiled(np.array(values, np.float32))
        assert len(outputs) == 2, "return two values: (count, halved x)"
        got_count, got_x = outputs
        assert int(got_count) == count, f"for x = {values}: count {got_count}, want {count}"
        assert np.allclose(got_x, x), f"for x = {values}: halved x {got_x}, want {x}"
        eager_count, _ = exercise_2(E.tensor(np.array(values, np.float32)))
        assert int(np.asarray(eager_count)) == count, f"eagerly, for x = {values}: wrong count"


def check_3(exercise_3):
    sizes = {}
    for length in (3, 30):
        compiled = _trace(exercise_3, (length, 2))
        xs = np.arange(2 * length, dtype=np.float32).reshape(length, 2)
        got = np.asarray(compiled(xs)[0])
        assert got.shape == xs.shape, f"shape {got.shape}, want {xs.shape} (one row per step)"
        assert np.allclose(got, np.cumsum(xs, axis=0)), "the running sums are wrong"
        sizes[length] = len(compiled.graph.ops)
    assert sizes[3] == sizes[30], (
        f"the graph has {sizes[3]} ops for 3 steps and {sizes[30]} for 30: a Python loop "
        "unrolls into the graph; F.scan keeps one body whatever the length"
    )
    eager = np.asarray(exercise_3(E.tensor(np.ones((4, 2), np.float32))))
    assert np.allclose(eager, np.cumsum(np.ones((4, 2)), axis=0)), "eagerly the sums are wrong"
