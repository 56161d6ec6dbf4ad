"""Exercises for lesson 13 (docs/lessons/13_debugging.py). Fill in each function, then run
`python docs/lessons/13_debugging.py --check` (or `diptych lesson 13 --check`)."""

import warnings

import numpy as np

import symbolic as S
from common import functional as F
from symbolic.lint import CaptureWarning


def exercise_1(f, *inputs):
    """`f` is a compiled function whose result is NaN for these `inputs`. Return a tuple
    (op name, line): the op that first produced NaN or inf while `f` ran, and the user's line
    that made it ("file.py:12: the code")."""
    raise NotImplementedError("your code here")


def exercise_2(f, x, line):
    """`f` is a compiled function of one input, optimized so that the node made at `line`
    ("file.py:12") runs inside a fused kernel. Return that node's value (an array) when `f`
    runs on `x`."""
    raise NotImplementedError("your code here")


def exercise_3(scale):
    """Return a function `layer(x)` that adds `scale` times fresh standard normal noise (a new
    draw at every call) to the float32 array `x` and returns the result as an array. Run the
    addition as a graph made by S.function, one graph for every call, written so that
    tracing it raises no CaptureWarning."""
    raise NotImplementedError("your code here")


# ---- checks ------------------------------------------------------------------------------


def check_1(exercise_1):
    x = S.placeholder((4,), name="x")
    shifted = x * 2.0 - 1.0
    root = F.sqrt(shifted)
    f = S.compile(F.sum(root + x), inputs=[x])
    with np.errstate(invalid="ignore"):  # numpy's warning for the NaN: the point here
        got = exercise_1(f, np.array([1.0, 2.0, 0.25, 3.0], np.float32))
    assert isinstance(got, tuple) and len(got) == 2, "return a tuple: (op name, line)"
    op, line = got
    assert op == "sqrt", f"{op!r} is not the op that made the first NaN: ask anomaly mode"
    assert line == root.node.source, f"{line!r} is not the line that made it"


def check_2(exercise_2):
    xs = S.placeholder((256, 256), name="x")
    scaled = xs * 0.5
    squashed = F.tanh(scaled)
    f = S.compile(F.sum(squashed * 3.0 - xs), inputs=[xs], optimize=2)
    assert any(n.op_name.startswith("fused_") for n in f.graph.ops)
    x = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    line = squashed.node.source.split(": ", 1)[0]
    got = exercise_2(f, x, line)
    assert np.shape(got) == (256, 256), f"got a value of shape {np.shape(got)}, not the node's"
    assert np.allclose(got, np.tanh(x * 0.5), atol=1e-6), "that is not the value made there"


def check_3(exercise_3):
    x = np.linspace(-1, 1, 20_000, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptureWarning)  # a warning fails the check
        layer = exercise_3(0.1)
        first, second = np.asarray(layer(x)), np.asarray(layer(x))
    assert first.shape == x.shape, f"the layer returned shape {first.shape}"
    assert not np.array_equal(first, second), "two calls added the same noise"
    spread = float(np.std((second - x) / 0.1))
    assert 0.95 < spread < 1.05, f"the noise, divided by scale, has spread {spread:.3f}, not 1"
