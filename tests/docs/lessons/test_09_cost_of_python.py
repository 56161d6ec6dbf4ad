"""Lesson 9 (the cost of Python) at small sizes: it counts the ops each call dispatches, finds
where the kernels outgrow Python, explains eager against optimize=0 on gelu_chain, and prints
a break-even claim for every zoo model."""

from pathlib import Path

from compare import zoo
from compare.lessons import NOT_BORNE_OUT, claimed

LESSON = "09_cost_of_python"
NUMBER = r"(-?[\d,]+\.?\d*)"


def test_the_chain_and_its_per_op_price(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"per call for (\d+) ops") == 32  # four GELUs of 8 ops each
    assert claimed(out, rf"\({NUMBER} µs per op\)") > 0
    assert claimed(out, rf"optimize=0 {NUMBER} µs: ") > 0


def test_the_crossover_and_the_fused_chain(lesson_output, lesson_figures):
    out = lesson_output(LESSON)
    assert "the kernels' time never reached" in out or claimed(out, rf"from about {NUMBER}") > 1
    assert claimed(out, r"optimize=2 \((\d+) fused kernel") == 1  # the whole chain: one kernel
    assert (Path(lesson_figures) / "09_overhead_vs_size.svg").stat().st_size > 0


def test_gelu_chain_eager_against_optimize_0(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, rf"training step took {NUMBER} ms eagerly") > 0
    assert claimed(out, rf"eagerly and {NUMBER} ms at optimize=0") > 0
    assert claimed(out, r"keeps the (\d+) ops' results alive") == 62  # gelu_chain's forward
    assert claimed(out, rf"{NUMBER} page faults per call instead of") >= 0
    assert claimed(out, rf"cost {NUMBER} µs per op without the tape") > 0
    assert claimed(out, rf"against {NUMBER} µs for optimize=0's generated code") > 0


def test_a_break_even_claim_for_every_zoo_model(lesson_output):
    out = lesson_output(LESSON)
    for name in zoo.MODELS:
        (line,) = [line for line in out.splitlines() if f"{name}: compile took" in line]
        assert claimed(line, rf"compile took {NUMBER} s") >= 0
        if line.startswith(NOT_BORNE_OUT):
            assert line.endswith("so it never pays off")
        else:
            assert claimed(line, rf"pays off after {NUMBER} calls?$") >= 1
