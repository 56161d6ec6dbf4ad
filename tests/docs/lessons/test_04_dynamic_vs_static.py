"""Lesson 4 runs at its small sizes: the tape grows with the length, S.function retraces once
per length, the masked scan traces once, and all three agree."""

from pathlib import Path

from compare import lessons

LENGTHS = 4  # 2, 4, 8 and 16 at the small size


def test_the_eager_tape_follows_the_data(lesson_output):
    out = lesson_output("04_dynamic_vs_static")
    short = lessons.claimed(out, r"recorded (\d+) ops for a sequence of length 2")
    long = lessons.claimed(out, r"and (\d+) for length 16")
    per_step = lessons.claimed(out, r"([\d.]+) more per step")
    assert per_step >= 1 and per_step == int(per_step)
    assert long == short + per_step * 14


def test_retraces_are_counted(lesson_output):
    out = lesson_output("04_dynamic_vs_static")
    assert lessons.claimed(out, r"S.function traced (\d+) graphs") == LENGTHS
    assert lessons.claimed(out, r"\((\d+) retraces\)") == LENGTHS - 1
    assert lessons.claimed(out, r"the masked scan traced (\d+) for all") == 1
    assert "retraced because argument xs changed shape" in out


def test_the_three_agree_and_their_costs_are_measured(lesson_output, lesson_figures):
    out = lesson_output("04_dynamic_vs_static")
    assert (
        lessons.claimed(out, r"same loss at every length \(largest difference ([\d.e+-]+)\)") < 1e-5
    )
    assert lessons.claimed(out, r"one graph per length cost ([\d.]+) ms") > 0
    assert lessons.claimed(out, r"compiled once, in ([\d.]+) ms") > 0
    unrolled = lessons.claimed(out, r"whose unrolled graph has (\d+) ops")
    assert 0 < lessons.claimed(out, r"the masked scan's graph of (\d+) ops") < unrolled
    assert lessons.claimed(out, r"\(([\d.]+) ms\)$") > 0
    assert lessons.claimed(out, r"eager took ([\d.]+) ms per call") > 0
    assert (Path(lesson_figures) / "04_cost_by_length.svg").stat().st_size > 0
