"""Lesson 1 runs at its small sizes and says what it measured."""

from pathlib import Path

from compare import lessons


def test_the_symbol_holds_no_number_until_called(lesson_output):
    out = lesson_output("01_immediate_vs_deferred")
    assert "symbolic c is <Symbol" in out
    assert lessons.claimed(out, r"c\(3, 4\) returned ([\d.]+)") == 5.0


def test_the_timeline_claims_state_their_times(lesson_output, lesson_figures):
    out = lesson_output("01_immediate_vs_deferred")
    assert (
        lessons.claimed(out, r"building the symbolic graph of the six lines took ([\d.]+) ms") > 0
    )
    assert lessons.claimed(out, r"computing them eagerly on [\d,]+ elements took ([\d.]+) ms") > 0
    assert lessons.claimed(out, r"compiling the graph took ([\d.]+) ms") > 0
    assert lessons.claimed(out, r"the first call took ([\d.]+) ms") > 0
    assert lessons.claimed(out, r"eagerly \(([\d.]+)x\)") > 0
    assert lessons.claimed(out, r"pay off after ([\d,]+) calls") >= 0
    for name in ("01_timeline.svg", "01_pythagoras_graph.svg"):
        assert (Path(lesson_figures) / name).stat().st_size > 0
