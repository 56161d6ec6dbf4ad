"""Exercises for lesson 6 (docs/lessons/06_the_compile_step.py). Fill in each function, then
run `python docs/lessons/06_the_compile_step.py --check` (or `diptych lesson 6 --check`)."""

import numpy as np

import symbolic as S
from common import functional as F  # noqa: F401  (for your answers)


def exercise_1(fn):
    """`fn` is a compiled function (`S.compile(...)`). Return a dict from the name of each
    pass that ran (as `f.report` names it: "constant_folding", "simplify", ...) to the
    number of changes that pass reported."""
    raise NotImplementedError("your code here")


def exercise_2(outputs, inputs):
    """Compile `outputs` (symbols of placeholders `inputs`) with `optimize=2`, and again with
    each pass switched off alone; return the set of pass names whose removal leaves more
    ops in the compiled graph than full `optimize=2` has."""
    raise NotImplementedError("your code here")


def exercise_3(x):
    """`x` is a placeholder of shape (256, 256). Return a symbol computed from it in which
    constant folding, simplification and common-subexpression elimination each change at
    least one thing, and fusion builds at least one kernel."""
    raise NotImplementedError("your code here")


# ---- checks: they judge what your functions do, they do not show an answer -------------


def _layer():
    x = S.placeholder((256, 256), name="x")
    three = S.constant(1.5) * S.constant(2.0)
    y = F.tanh(x) * three + F.tanh(x)
    return [F.sum(y * 1.0)], [x]


def check_1(exercise_1):
    outputs, inputs = _layer()
    fn = S.compile(outputs, inputs=inputs, optimize=2)
    got = exercise_1(fn)
    assert isinstance(got, dict), f"return a dict, not a {type(got).__name__}"
    assert "trace" not in got, "the trace is not a pass: leave it out"
    want = {s.stage: len(s.changes) for s in fn.report.stages[1:]}
    assert set(got) == set(want), f"the passes that ran are {sorted(want)}, you gave {sorted(got)}"
    wrong = sorted(name for name in want if got[name] != want[name])
    assert not wrong, f"the counts for {wrong} differ from what the report lists"
    fewer = S.compile(outputs, inputs=inputs, optimize=1)
    assert set(exercise_1(fewer)) == {s.stage for s in fewer.report.stages[1:]}, (
        "at optimize=1 fewer passes run: read them from the report, do not list them by hand"
    )


def check_2(exercise_2):
    outputs, inputs = _layer()
    got = exercise_2(outputs, inputs)
    assert isinstance(got, (set, frozenset, list, tuple)), "return a set of pass names"
    full = len(S.compile(outputs, inputs=inputs, optimize=2).graph.ops)
    want = {
        name
        for name in ("constant_folding", "simplify", "cse", "dce", "fusion", "memory")
        if len(S.compile(outputs, inputs=inputs, optimize=2, disable=[name]).graph.ops) > full
    }
    assert set(got) == want, (
        f"you named {sorted(got)}; count `len(fn.graph.ops)` for each pass switched off "
        "(disable=[name]) and compare with full optimize=2"
    )


def check_3(exercise_3):
    x = S.placeholder((256, 256), name="x")
    fn = S.compile(exercise_3(x), inputs=[x], optimize=2)
    changed = {s.stage: s.changes for s in fn.report.stages[1:]}
    for name in ("constant_folding", "simplify", "cse"):
        assert changed[name], f"{name} found nothing to change in your graph"
    assert fn.report.fused_kernels, "fusion built no kernel: chain elementwise ops on x itself"
    fn(np.ones((256, 256), np.float32))  # it must run
