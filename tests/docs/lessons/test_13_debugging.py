"""Lesson 13 (debugging in both modes) at small sizes: equivalence names the planted pass and
node, gradcheck finds the planted VJP that both engines agree on, anomaly mode names the same
op and line in both engines forward and backward, the debugger steps through a fused group,
and the linter finds one thing of each kind it knows."""

from compare.lessons import claimed

LESSON = "13_debugging"
NUMBER = r"(-?[\d,]+\.?\d*(?:e[+-]?\d+)?)"


def test_equivalence_names_the_planted_pass_and_node(lesson_output):
    out = lesson_output(LESSON)
    assert "to the pass 'fusion' and the node `sub` made at 13_debugging.py:" in out
    assert claimed(out, rf"whose values were {NUMBER} off") > 0
    assert "without the bug: every level agrees with eager" in out


def test_gradcheck_finds_the_vjp_both_engines_agree_on(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, rf"planted op agreed to {NUMBER}") == 0
    got = claimed(out, rf"found them wrong: {NUMBER} where")
    expected = claimed(out, rf"central differences give {NUMBER}")
    assert abs(got / expected - 2) < 1e-3  # 3x where 3x**2 is right, at x = 0.5


def test_anomaly_mode_names_one_op_and_line_in_both_engines(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"stopped (\d) of 2 engines at the first op") == 2
    assert claimed(out, r"made -inf, naming (\d) op and line") == 1
    assert "log at 13_debugging.py:" in out and "return -F.sum(p * F.log(p))" in out
    assert claimed(out, r"in the backward pass, anomaly mode stopped (\d) of 2") == 2
    assert "div in the gradient of sqrt made at 13_debugging.py:" in out


def test_the_debugger_steps_through_the_fused_group(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"ran fused_\d+ as (\d+) steps") == 4
    assert claimed(out, rf"tanh value inside it is {NUMBER} from numpy's") <= 1e-6
    assert claimed(out, rf"stepped result is {NUMBER} from the fused call's") < 1e-2


def test_the_linter_finds_each_kind(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, r"froze, of (\d) kinds \(branch, captured, mutated, print, random\)") == 5
