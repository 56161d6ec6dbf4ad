"""Exercises for lesson 8 (docs/lessons/08_memory_reuse.py). Fill in each function, then run
`python docs/lessons/08_memory_reuse.py --check` (or `diptych lesson 8 --check`)."""

import numpy as np

import symbolic as S
from common import functional as F  # noqa: F401  (for your answers)


def exercise_1(fn):
    """`fn` is compiled with `optimize=2`. Return `(values, buffers, in_place)` from its
    memory plan: how many values got a planned buffer, how many buffers they share, and how
    many values were written in place into an input."""
    raise NotImplementedError("your code here")


def exercise_2(x):
    """`x` is a float32 placeholder of 1,000 elements. Return a symbol computed from it whose
    plan (`optimize=2` with fusion switched off, so that every op keeps its own value) writes
    at least three values in place."""
    raise NotImplementedError("your code here")


def exercise_3(fn):
    """Call `fn()` once and return the bytes allocated at the peak of that call, above what
    was allocated when it began (as `diptych compare` measures peak memory)."""
    raise NotImplementedError("your code here")


# ---- checks: they judge what your functions do, they do not show an answer -------------


def check_1(exercise_1):
    x = S.placeholder((500,), name="x")
    fn = S.compile(F.sum(F.exp(F.tanh(x * 2.0)) * F.tanh(x)), inputs=[x], optimize=2)
    plan = fn.graph.memory
    want = (len(plan.assignment), len(plan.buffers), len(plan.in_place))
    got = tuple(exercise_1(fn))
    assert len(got) == 3, "return three numbers: (values, buffers, in_place)"
    names = ("values", "buffers", "in-place writes")
    wrong = [f"{n}: you said {g}" for n, g, w in zip(names, got, want) if g != w]
    assert not wrong, "the plan says otherwise for " + "; ".join(wrong)


def check_2(exercise_2):
    x = S.placeholder((1000,), name="x")
    fn = S.compile(exercise_2(x), inputs=[x], optimize=2, disable=["fusion"])
    written = len(fn.graph.memory.in_place)
    assert written >= 3, (
        f"the plan wrote {written} value(s) in place: an elementwise op can overwrite an input "
        "only when that input is a planned intermediate (not x, not an output) read by no "
        "later op"
    )
    fn(np.linspace(-1, 1, 1000, dtype=np.float32))  # it must run


def check_3(exercise_3):
    def allocate():
        block = np.ones(1_000_000, np.float32)  # 4 MB, freed before the call returns
        return float(block[0])

    got = exercise_3(allocate)
    assert 4_000_000 <= got < 4_400_000, f"a call that allocates 4 MB once: you said {got}"
    assert exercise_3(lambda: None) < 100_000, "a call that allocates nothing peaks near 0"
