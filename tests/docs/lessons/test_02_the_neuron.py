"""Lesson 2 runs at its small sizes: the three gradients agree, and both pictures exist."""

from pathlib import Path

from compare import lessons


def test_hand_tape_and_graph_gradients_agree(lesson_output):
    out = lesson_output("02_the_neuron")
    tape = lessons.claimed(out, r"chain rule by at most ([\d.e+-]+)")
    graph = lessons.claimed(out, r"gradient graph by at most ([\d.e+-]+)")
    assert tape < 1e-12 and graph < 1e-12


def test_the_tape_keeps_the_forward_the_graph_holds_the_backward(lesson_output):
    out = lesson_output("02_the_neuron")
    assert "the tape, last op first: tanh <- add <- mul" in out
    assert lessons.claimed(out, r"the tape recorded (\d+) ops") == 3
    assert lessons.claimed(out, r"(\d+) of them backward") > 0


def test_the_pictures_are_written(lesson_output, lesson_figures):
    lesson_output("02_the_neuron")
    for name in ("02_tape.svg", "02_gradient_graph.svg", "02_tape_and_graph.png"):
        assert (Path(lesson_figures) / name).stat().st_size > 0
