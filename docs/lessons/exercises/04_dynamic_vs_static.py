"""Exercises for lesson 4 (docs/lessons/04_dynamic_vs_static.py). Fill in each function, then
run `python docs/lessons/04_dynamic_vs_static.py --check` (or `diptych lesson 4 --check`)."""

import numpy as np

import eager as E
import symbolic as S
from common import functional as F  # noqa: F401 (for your answers)


def exercise_1(sequences, max_len):
    """sequences: a list of B float32 arrays of shapes (length_i, features), each length at
    most max_len. Return (xs, mask): xs of shape (max_len, B, features), float32, time-major,
    the sequences zero-padded; mask of shape (max_len, B, 1), bool, True where a step exists."""
    raise NotImplementedError("your code here")


def exercise_2(xs, mask):
    """xs: (T, B) values and mask: (T, B) bools, both eager tensors or both placeholders.
    Return the (B,) sums of each column over the steps where its mask is True, computed
    with F.scan (a carry of shape (B,)), so that the same code runs eagerly and builds a
    graph."""
    raise NotImplementedError("your code here")


def exercise_3():
    """Return (call, traced): traced is an S.function, and call(x) takes a 1-D float32 array
    of any length from 1 to 16 and returns the sum of its squares using traced, so that
    sixteen calls with sixteen different lengths trace only one graph."""
    raise NotImplementedError("your code here")


def check_1(exercise_1):
    rng = np.random.default_rng(4)
    lengths = [3, 1, 5]
    sequences = [rng.standard_normal((n, 2)).astype(np.float32) for n in lengths]
    xs, mask = exercise_1(sequences, 6)
    xs, mask = np.asarray(xs), np.asarray(mask)
    assert xs.shape == (6, 3, 2), f"xs should be (max_len, B, features) = (6, 3, 2), not {xs.shape}"
    assert mask.shape == (6, 3, 1), f"mask should be (max_len, B, 1) = (6, 3, 1), not {mask.shape}"
    assert mask.dtype == bool, f"the mask holds bools, not {mask.dtype}"
    for b, (n, seq) in enumerate(zip(lengths, sequences)):
        assert np.array_equal(xs[:n, b], seq), f"sequence {b} should fill xs[:{n}, {b}]"
        assert not xs[n:, b].any(), f"steps after the end of sequence {b} should be zeros"
        assert mask[:n, b].all() and not mask[n:, b].any(), f"the mask of sequence {b} is wrong"


def check_2(exercise_2):
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    mask = np.arange(4)[:, None] < np.array([4, 1, 2])[None, :]
    want = (values * mask).sum(axis=0)
    eager = exercise_2(E.tensor(values), E.tensor(mask))
    assert isinstance(eager, E.Tensor), "given tensors, the result should be a tensor"
    assert np.allclose(eager.numpy(), want), f"eagerly: expected {want}, got {eager.numpy()}"
    xs, m = S.placeholder((4, 3), name="xs"), S.placeholder((4, 3), "bool", name="mask")
    symbol = exercise_2(xs, m)
    assert isinstance(symbol, S.Symbol), "given placeholders, the result should be a symbol"
    got = S.compile(symbol, inputs=[xs, m])(values, mask)
    assert np.allclose(got, want), f"the graph gave {got}, expected {want}"


def check_3(exercise_3):
    call, traced = exercise_3()
    assert isinstance(traced, S.TracedFunction), "traced should be what S.function returns"
    for length in range(1, 17):
        x = np.linspace(-1, 1, length, dtype=np.float32)
        got = float(call(x))
        assert np.isclose(got, float((x**2).sum()), rtol=1e-5), (
            f"length {length}: expected the sum of squares {(x**2).sum()}, got {got}"
        )
    assert traced.traces == 1, (
        f"sixteen lengths traced {traced.traces} graphs: give every call the same shapes "
        "(pad to 16) and let the padding add nothing"
    )
