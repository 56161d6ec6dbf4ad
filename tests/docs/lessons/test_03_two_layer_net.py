"""Lesson 3 runs at its small sizes: the four ways reach the same weights."""

from pathlib import Path

from compare import lessons


def test_the_four_ways_reach_the_same_weights(lesson_output):
    out = lesson_output("03_two_layer_net")
    scale = lessons.claimed(out, r"weights up to ([\d.]+) in size")
    assert scale > 0
    for way in ("eager autograd", "the custom E.Function", "the compiled step"):
        gap = lessons.claimed(out, rf"([\d.e+-]+) for {way}")
        assert gap <= 1e-5 * scale, f"{way} drifted from numpy by {gap}"


def test_each_step_is_timed(lesson_output, lesson_figures):
    out = lesson_output("03_two_layer_net")
    assert lessons.claimed(out, r"took ([\d.]+) ms in numpy by hand") > 0
    for way in ("with eager autograd", "with the custom E.Function", "compiled"):
        assert lessons.claimed(out, rf"([\d.]+)x (?:that )?{way}") > 0
    assert lessons.claimed(out, r"compiled step ran ([\d.]+)x as fast as eager") > 0
    assert "ReLU.apply(placeholder): ReLU.apply got a symbol" in out
    assert (Path(lesson_figures) / "03_train_step.svg").stat().st_size > 0
