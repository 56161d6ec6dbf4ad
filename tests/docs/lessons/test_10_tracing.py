"""Lesson 10 (tracing) at small sizes: what S.function captured from an eager model, each
retrace with its reason, the values baked in (and the parameters that are not), and the
second-order gradient both ways."""

import re
from pathlib import Path

from compare.lessons import claimed

LESSON = "10_tracing"
NUMBER = r"(-?[\d,]+\.?\d*(?:e[+-]?\d+)?)"


def test_what_was_captured(lesson_output, lesson_figures):
    out = lesson_output(LESSON)
    assert claimed(out, r"traced the eager model into (\d+) ops") == 11
    assert claimed(out, r"ops with (\d+) parameters as variables") == 4
    assert claimed(out, rf"output matched eager's \(max difference {NUMBER}\)") <= 1e-6
    for name in ("10_traced_eval.svg", "10_traced_train.svg"):
        assert (Path(lesson_figures) / name).stat().st_size > 0


def test_each_retrace_and_its_reason(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"with (\d+) different signatures") == 5
    assert claimed(out, r"signatures made (\d+) traces") == 5
    assert claimed(out, r"traces \((\d+) retraces") == 4
    for reason in (
        r"argument x changed shape \(\d+, 8\) -> \(\d+, 8\)",
        r"argument x changed dtype float32 -> float64",
        r"argument scale changed 1\.0 -> 0\.5: a Python float is baked into the graph",
        r"module mode changed eval -> train",
    ):
        assert re.search(reason, out), reason
    train_ops = claimed(out, r"train-mode graph has (\d+) ops")
    assert train_ops > claimed(out, r"ops against (\d+) in eval mode")


def test_python_values_are_baked_in_and_parameters_are_not(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"lists (\d+) baked-in Python values") == 3  # 1/(1-p), scale, temperature
    assert claimed(out, rf"traced function's output moved by {NUMBER} while") == 0
    assert claimed(out, rf"while eager's moved by {NUMBER}") > 0
    assert claimed(out, rf"followed it: its output moved by {NUMBER}") > 0
    assert claimed(out, rf"differs from eager's by {NUMBER}") <= 1e-6
    assert claimed(out, r"Python floats made (\d+) graphs") == 7
    assert claimed(out, r"NumPy scalars they ran on (\d+) graph") == 1


def test_second_order_gradients_agree_both_ways(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, rf"max difference {NUMBER} between eager \(create_graph=True\)") <= 1e-5
    unoptimized = claimed(out, r"compiled graph \((\d+) ops,")
    assert 0 < claimed(out, r"ops, (\d+) after optimize=2") <= unoptimized
    assert claimed(out, rf"eager took {NUMBER} ms per product") > 0
