"""Lesson 6 (the compile step) at small sizes: each pass reports what the layer gives it to
do, the pictures are written, and every configuration computes the same loss."""

from pathlib import Path

from compare.lessons import claimed


def test_each_pass_did_its_work(lesson_output):
    out = lesson_output("06_the_compile_step")
    assert claimed(out, r"constant folding folded (\d+) op") == 1
    assert claimed(out, r"simplification rewrote (\d+) identities") == 2
    assert claimed(out, r"elimination merged (\d+) duplicate ops") == 4
    assert claimed(out, r"dead-code elimination removed (\d+) nodes") == 2
    assert claimed(out, r"fusion put (\d+) elementwise ops") >= 6
    values = claimed(out, r"memory planning put (\d+) intermediates")
    assert claimed(out, r"intermediates in (\d+) buffers") < values
    assert claimed(out, r"(\d+) written in place") >= 0  # fused kernels get buffers of their own


def test_configurations_agree_and_shrink(lesson_output):
    out = lesson_output("06_the_compile_step")
    assert claimed(out, r"optimize=2 left (\d+) of") < claimed(out, r"of the (\d+) ops optimize=0")
    assert claimed(out, r"the same loss to within ([\d.e+-]+)") <= 1e-5
    assert claimed(out, r"O2 step ran ([\d.]+)x") > 0
    assert claimed(out, r"fusion off made the step ([\d.]+)x") > 0


def test_one_picture_per_stage(lesson_output, lesson_figures):
    lesson_output("06_the_compile_step")
    written = sorted(p.name for p in Path(lesson_figures).glob("06_pass_*.svg"))
    assert len(written) == 7, written
