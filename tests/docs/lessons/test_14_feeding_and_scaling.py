"""Lesson 14 (feeding and scaling) at small sizes: data-parallel training on a LocalCluster
trains one process's weights with compiled and eager replicas, the compiled workers never
import the model, the lowered gradient step of `neuron` equals the local call with a tree per
reduction over the batch, and every timing is stated."""

from pathlib import Path

from compare.lessons import claimed

LESSON = "14_feeding_and_scaling"
NUMBER = r"([\d.]+(?:e[+-]?\d+)?)"


def test_data_parallel_training_equals_one_process(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, rf"one process's by at most {NUMBER}") < 1e-5
    assert claimed(out, rf"the same weights \(to {NUMBER}\)") < 1e-5


def test_compiled_workers_run_a_file_without_the_models_code(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"from a ([\d,]+)-byte file") > 1000  # the weights travel with it
    assert "(imported: False)" in out


def test_the_lowered_step_and_its_picture(lesson_output, lesson_figures):
    out = lesson_output(LESSON)
    assert claimed(out, r"holds (\d+) Dask tasks for 2 blocks") > 10
    assert claimed(out, r"(\d+) of its nodes reduced over the batch") == 3  # loss, dw, db
    assert claimed(out, rf"equals the local call to {NUMBER}") < 1e-5
    assert (Path(lesson_figures) / "14_dask_step.svg").stat().st_size > 0


def test_every_timing_is_stated(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"([\d,]+) samples per second against") > 0
    assert claimed(out, rf"{NUMBER} batches per second against") > 0  # the loader's workers
    assert claimed(out, rf"{NUMBER} ms a step on their workers") > 0
    assert claimed(out, rf"starting the cluster took {NUMBER} s") > 0
    assert claimed(out, rf"orchestrating than computing: {NUMBER} ms") > 0
