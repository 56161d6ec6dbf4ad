"""Exercises for lesson 7 (docs/lessons/07_fusion.py). Fill in each function, then run
`python docs/lessons/07_fusion.py --check` (or `diptych lesson 7 --check`)."""

import numpy as np

import symbolic as S
from common import functional as F  # noqa: F401  (for your answers)


def exercise_1(fn):
    """`fn` is a compiled function of one 1-D placeholder. Return the bytes per output
    element its ops move: each op reads each operand that has its output's shape (`x * x`
    reads x twice; scalars and 0-d constants are free) and writes its output once."""
    raise NotImplementedError("your code here")


def exercise_2(x):
    """`x` is a float32 placeholder of 131,072 elements. Return a chain of at least eight
    elementwise ops on it that `optimize=2` turns into a single fused kernel (the compiled
    graph then holds one op)."""
    raise NotImplementedError("your code here")


def exercise_3(a, b):
    """`a` and `b` are float32 arrays of one shape, finite and of the same sign elementwise.
    Return, per element, how many float32 values lie between them plus one (0 where they are
    equal, 1 for neighbours): their distance in units in the last place."""
    raise NotImplementedError("your code here")


# ---- checks: they judge what your functions do, they do not show an answer -------------


def _compiled(build, size=1000, **options):
    x = S.placeholder((size,), name="x")
    return S.compile(build(x), inputs=[x], **options)


def check_1(exercise_1):
    cases = [
        (lambda x: x * 2.0 + 1.0, {"disable": ["fusion"]}, 16),
        (lambda x: x * x, {"disable": ["fusion"]}, 12),
        (lambda x: F.tanh(x * 2.0) + x, {"optimize": 0}, 28),
    ]
    for build, options, want in cases:
        got = exercise_1(_compiled(build, **options))
        assert got == want, f"a graph whose ops move {want} bytes per element: you said {got}"
    x = S.placeholder((1000,), "float64", name="x")
    got = exercise_1(S.compile(x * 2.0, inputs=[x], disable=["fusion"]))
    assert got == 16, f"float64 values are 8 bytes each: you said {got} for x * 2.0 in float64"


def check_2(exercise_2):
    fn = _compiled(exercise_2, 131_072)
    kernels = fn.report.fused_kernels
    assert kernels, "fusion built no kernel: use elementwise ops on x (and numbers)"
    steps = len(kernels[0].kernel.program.steps)
    assert steps >= 8, f"the fused kernel holds {steps} ops: chain at least eight"
    assert len(fn.graph.ops) == 1, (
        f"the compiled graph still holds {len(fn.graph.ops)} ops: reductions, matmuls and "
        "values used outside the chain stay out of a fused kernel"
    )


def check_3(exercise_3):
    a = np.array([1.0, 1.0, -2.0, 0.0, 1e-3], np.float32)
    b = np.array(
        [
            1.0,
            np.nextafter(np.float32(1.0), np.float32(2.0)),
            np.nextafter(np.nextafter(np.float32(-2.0), np.float32(0)), np.float32(0)),
            np.float32(1e-45),
            np.float32(1e-3) * np.float32(1.5),
        ],
        np.float32,
    )
    got = np.asarray(exercise_3(a, b))
    assert got.shape == a.shape, f"one distance per element: shape {got.shape}, want {a.shape}"
    assert list(got[:4]) == [0, 1, 2, 1], f"distances {list(got[:4])} for the first four pairs"
    want_last = int(b[4].view(np.int32)) - int(a[4].view(np.int32))
    assert int(got[4]) == want_last, "count the float32 values between 1e-3 and 1.5e-3"
    assert list(np.asarray(exercise_3(b, a))[:4]) == [0, 1, 2, 1], "the distance is symmetric"
