"""Exercises for lesson 1 (docs/lessons/01_immediate_vs_deferred.py). Fill in each function,
then run `python docs/lessons/01_immediate_vs_deferred.py --check` (or
`diptych lesson 1 --check`)."""

import numpy as np

import eager as E
import symbolic as S


def exercise_1():
    """Build the hypotenuse of a 3-D box, sqrt(a**2 + b**2 + c**2), on three placeholders
    a, b, c (deferred: nothing computed), and return it compiled with inputs=[a, b, c], so
    that the result called as f(1, 2, 2) gives 3.0."""
    raise NotImplementedError("your code here")


def exercise_2(a, b):
    """The hypotenuse of a and b, written once: given eager tensors it returns a tensor that
    holds the number; given placeholders it returns a symbol (a graph, no number)."""
    raise NotImplementedError("your code here")


def exercise_3(shape_a, shape_b):
    """The shape (a tuple) of (a**2 + b**2) ** 0.5 for placeholders a and b of these
    shapes, read from the graph before anything runs (no arrays, no call)."""
    raise NotImplementedError("your code here")


def check_1(exercise_1):
    f = exercise_1()
    assert isinstance(f, S.CompiledFunction), (
        "return the compiled graph: S.compile(expression, inputs=[a, b, c])"
    )
    assert len(f.inputs) == 3, f"the graph should have three placeholders, it has {len(f.inputs)}"
    assert np.isclose(f(1.0, 2.0, 2.0), 3.0), f"f(1, 2, 2) should be 3.0, got {f(1.0, 2.0, 2.0)}"
    sides = np.random.default_rng(1).uniform(0.5, 2.0, (3, 5)).astype(np.float32)
    got = f(*sides)
    want = np.sqrt((sides**2).sum(axis=0))
    assert np.allclose(got, want, rtol=1e-5), "the compiled function gives the wrong lengths"


def check_2(exercise_2):
    eager = exercise_2(E.tensor(3.0), E.tensor(4.0))
    assert isinstance(eager, E.Tensor), "given tensors, the result should be a tensor"
    assert np.isclose(eager.item(), 5.0), f"hypotenuse of 3 and 4: expected 5.0, got {eager}"
    a, b = S.placeholder(name="a"), S.placeholder(name="b")
    symbol = exercise_2(a, b)
    assert isinstance(symbol, S.Symbol), "given placeholders, the result should be a symbol"
    assert np.isclose(symbol(5.0, 12.0), 13.0), "the graph should give 13.0 for (5, 12)"


def check_3(exercise_3):
    for shape_a, shape_b in [((3, 1), (1, 4)), ((2, 5), (5,)), ((), (7,))]:
        got = exercise_3(shape_a, shape_b)
        want = np.broadcast_shapes(shape_a, shape_b)
        assert tuple(got) == want, (
            f"placeholders of shapes {shape_a} and {shape_b}: the graph's output has the "
            f"broadcast shape, not {got}"
        )
