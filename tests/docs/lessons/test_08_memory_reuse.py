"""Lesson 8 (memory reuse) at small sizes: the plan reuses buffers and writes in place, the
compiled step peaks below eager's, the chart is drawn, and every refusal has its reason."""

from pathlib import Path

from compare.lessons import claimed


def test_the_plan_reuses_and_writes_in_place(lesson_output):
    out = lesson_output("08_memory_reuse")
    values = claimed(out, r"the step's (\d+) intermediates")
    buffers = claimed(out, r"intermediates in (\d+) buffers")
    assert 0 < buffers < values
    assert claimed(out, r"\((\d+) values reuse") == values - buffers
    assert claimed(out, r"and wrote (\d+) in place") > 0


def test_peaks_are_measured(lesson_output):
    out = lesson_output("08_memory_reuse")
    eager = claimed(out, r"eager step peaked at (\d+) KB")
    compiled = claimed(out, r"compiled O2 step at (\d+) KB")
    assert eager > compiled > 0  # the tape holds what backward needs; the plan frees early
    during = claimed(out, r"O2 step allocated (\d+) KB while it ran")
    assert during < claimed(out, r"O0 allocated (\d+) KB in every step")


def test_refusals_and_the_chart(lesson_output, lesson_figures):
    out = lesson_output("08_memory_reuse")
    assert claimed(out, r"the planner refused (\d+) reuses") >= 4
    for reason in ("still read at step", "is a view (reshape)", "(placeholder)", "(variable)"):
        assert reason in out
    assert "is an output: it gets a fresh array" in out
    assert (Path(lesson_figures) / "08_lifetimes.svg").stat().st_size > 0
