"""The capture linter: tracing a function (S.function, S.trace, S.compile) warns, at the user's
line, about what Python froze into the graph: global and closure numbers and arrays, random
numbers drawn, print, containers changed, branches on baked values; `f.report.lint` lists the
findings. What is meant to be fixed (literals, arguments, constants in capitals, parameters,
explicit S.constant) is not warned about."""

import pathlib
import random
import threading
import warnings

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import nn
from symbolic.lint import CaptureWarning

THIS_FILE = pathlib.Path(__file__)
X = np.ones(3, np.float32)


def _lineno(marker: str) -> int:
    """The number of the line of this file that ends with `# marker`."""
    lines = THIS_FILE.read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.endswith(f"# {marker}"))


def _traced(fn, *args):
    """S.function(fn) called once on `args`: (the traced function, the CaptureWarnings)."""
    fast = S.function(fn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast(*args)
    return fast, [w for w in caught if w.category is CaptureWarning]


def _kinds_at(fast) -> list[tuple[str, int]]:
    return [(f.kind, f.lineno) for f in fast.report.lint]


# ---- values read from globals and closures --------------------------------------------------

scale = 2.0
offset = np.array([1.0, 2.0, 3.0], np.float32)
bias = E.tensor([0.5, 0.5, 0.5])
EPS = 1e-5  # a constant by convention: not warned about


def shifted(x):
    return x * scale + offset  # globals


def test_global_numbers_and_arrays_are_warned_about_at_the_users_line():
    fast, caught = _traced(shifted, X)
    line = _lineno("globals")
    assert _kinds_at(fast) == [("captured", line), ("captured", line)]
    assert [(w.filename, w.lineno) for w in caught] == [(str(THIS_FILE), line)] * 2
    number, array = (str(f) for f in fast.report.lint)
    assert number.startswith(f"test_lint.py:{line}: the global scale = 2.0 was read once")
    assert array.startswith(f"test_lint.py:{line}: the global offset (float32[3]) was copied")
    assert fast.report.lint[0].line == f"test_lint.py:{line}: return x * scale + offset  # globals"


def test_a_closure_variable_and_an_eager_tensor_are_warned_about():
    factor = 3.0

    def scaled(x):
        return x * factor + bias  # closure

    fast, _ = _traced(scaled, X)
    assert [m.split(" was ")[0] for m in (f.message for f in fast.report.lint)] == [
        "the closure variable factor = 3.0",
        "the global bias (float32[3])",
    ]
    assert {f.lineno for f in fast.report.lint} == {_lineno("closure")}


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.factor = 4.0
        self.weight = nn.Parameter(np.ones(3, np.float32))

    def forward(self, x, k):
        return x * 2.0 * k * self.factor * self.weight + EPS + np.pi + S.constant(offset)


def test_literals_arguments_attributes_parameters_and_constants_are_not_warned_about():
    fast, caught = _traced(Scaled(), X, 5.0)
    assert caught == [] and fast.report.lint == []


def test_a_symbol_graph_compiled_directly_has_an_empty_lint():
    x = S.placeholder((3,))
    assert S.compile(x * scale, inputs=[x]).report.lint == []


# ---- random numbers, print, containers ------------------------------------------------------

generator = np.random.default_rng(0)


def noisy(x):
    return x + generator.normal(size=3).astype(np.float32)  # generator


def legacy_noisy(x):
    return x + np.random.normal(size=3).astype(np.float32)  # np.random


def python_noisy(x):
    return x + random.random()  # random module


@pytest.mark.parametrize(
    "fn, marker, source",
    [
        (noisy, "generator", "the generator generator"),
        (legacy_noisy, "np.random", "NumPy's global generator"),
        (python_noisy, "random module", "Python's random module"),
    ],
)
def test_random_numbers_drawn_while_tracing_are_warned_about(fn, marker, source):
    fast, caught = _traced(fn, X)
    (finding,) = [f for f in fast.report.lint if f.kind == "random"]
    assert finding.lineno == _lineno(marker) and caught[-1].lineno == finding.lineno
    assert f"random numbers were drawn from {source}" in finding.message
    assert np.array_equal(fast(X), fast(X))  # the same numbers at every call: frozen


def chatty(x):
    h = F.tanh(x)
    print("h is", h)  # print
    return h


def test_print_while_tracing_is_warned_about_and_still_prints(capsys):
    fast, caught = _traced(chatty, X)
    assert "h is <Symbol" in capsys.readouterr().out
    assert _kinds_at(fast) == [("print", _lineno("print"))]
    assert "f.debug(*inputs)" in str(caught[0].message)
    fast(X)
    print("outside a trace")
    assert capsys.readouterr().out == "outside a trace\n"


def test_a_print_in_another_thread_during_a_trace_is_not_the_traces():
    started, release = threading.Event(), threading.Event()

    def slow(x):
        started.set()
        release.wait(5)
        return x * 2.0

    result = []
    tracer = threading.Thread(target=lambda: result.append(_traced(slow, X)[0]))
    tracer.start()
    started.wait(5)
    print("from the main thread")
    release.set()
    tracer.join()
    assert result[0].report.lint == []


history = []


def remembering(x):
    y = x * 2.0
    history.append(y)  # append
    return y


def test_a_global_list_changed_while_tracing_is_warned_about():
    fast, _ = _traced(remembering, X)
    (finding,) = fast.report.lint
    assert (finding.kind, finding.lineno) == ("mutated", _lineno("append"))
    assert "the global history (a list) was changed while tracing (0 items before, 1 after)" in (
        finding.message
    )
    history.clear()


def test_a_closure_dict_changed_while_tracing_is_warned_about():
    seen = {}

    def noting(x):
        seen["x"] = x  # setitem
        return x * 2.0

    fast, _ = _traced(noting, X)
    assert _kinds_at(fast) == [("mutated", _lineno("setitem"))]
    assert "the closure variable seen (a dict)" in fast.report.lint[0].message


# ---- branches on baked values ---------------------------------------------------------------

dropping = True


def maybe_halved(x, training):
    if training:  # argument branch
        x = x * 0.5
    return -x if dropping else x  # global branch


def test_a_branch_on_a_baked_argument_or_global_is_warned_about_once_per_value():
    fast = S.function(maybe_halved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast(X, True)
        fast(X, True)  # cached: no trace, no warning
        fast(X, False)
    lines = [(w.lineno, str(w.message).split(",")[0]) for w in caught]
    argument, glob = _lineno("argument branch"), _lineno("global branch")
    assert lines == [
        (argument, "this `if` tests the argument training"),
        (glob, "this `... if ... else ...` tests the global dropping"),
        (argument, "this `if` tests the argument training"),
        (glob, "this `... if ... else ...` tests the global dropping"),
    ]
    assert "which is False in this trace" in str(caught[2].message)


# ---- every way of tracing --------------------------------------------------------------------


def test_s_compile_and_s_trace_of_a_function_lint_it_too():
    traced = []
    for trace in (
        lambda: S.compile(shifted, inputs=[S.placeholder((3,))]),
        lambda: S.trace(shifted, (3,)),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traced.append(trace())
        assert [str(w.message).split(" was ")[0] for w in caught] == [
            "the global scale = 2.0",
            "the global offset (float32[3])",
        ]
    assert len(traced[0].report.lint) == 2


def test_a_warning_shows_once_per_line_but_every_report_lists_it():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        first = S.function(shifted)
        second = S.function(shifted)
        first(X)
        second(X)
    assert len([w for w in caught if w.category is CaptureWarning]) == 2  # scale and offset
    assert len(first.report.lint) == len(second.report.lint) == 2
