"""Lesson 12 (a graph without its Python) at small sizes: the file holds the model's weights,
a fresh process runs it without the model's module and goes on training a saved step bit
for bit, the loaded copy runs the compiled graph's ops, and a damaged copy is refused."""

from pathlib import Path

from compare import zoo
from compare.lessons import claimed

LESSON = "12_a_graph_without_its_python"
NUMBER = r"(-?[\d,]+\.?\d*(?:e[+-]?\d+)?)"


def test_the_file_holds_the_weights_and_the_graph(lesson_output):
    out = lesson_output(LESSON)
    model = zoo.get("rnn_varlen")
    weights = sum(p.data.size for p in model.build(model.size, 0).parameters())
    assert claimed(out, r"holds the model's ([\d,]+) weights") == weights
    assert claimed(out, r"weights in (\d+) tensors") == 6  # two layers' weights and biases each
    assert 0 < claimed(out, r"bytes of arrays are (\d+)% of the file") < 100
    assert "scan" in out and "rnn_varlen.py:" in out  # the op table and a saved source line


def test_a_fresh_process_runs_it_and_trains_on(lesson_output):
    out = lesson_output(LESSON)
    assert "(imported: False)" in out
    assert claimed(out, rf"predictions differ from eager's by {NUMBER}") <= 1e-6
    assert claimed(out, r"fresh process: (\d+) of its") == claimed(out, r"of its (\d+) losses")


def test_timings_and_the_refused_copy(lesson_output, lesson_figures):
    out = lesson_output(LESSON)
    assert claimed(out, rf"loaded copy ran at {NUMBER} ms") > 0
    assert claimed(out, rf"compiled original at {NUMBER} ms") > 0
    assert claimed(out, r"the same (\d+) ops") > 0
    assert claimed(out, rf"loading took {NUMBER} ms") > 0
    assert "one bit flipped was refused, naming the field: tensors[" in out
    assert (Path(lesson_figures) / "12_loaded_graph.svg").stat().st_size > 0


def test_onnxruntime_agrees_and_both_runtimes_are_timed(lesson_output):
    out = lesson_output("12_a_graph_without_its_python")
    assert claimed(out, r"to within ([\d.e+-]+) \(float32\)") < 1e-4
    assert claimed(out, r"onnxruntime ([\d.]+) ms") > 0
