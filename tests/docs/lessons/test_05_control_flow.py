"""Lesson 5 (control flow) at small sizes: the error names the user's `if`, the tape holds one
branch and grows with the trip count while the graph does not, and every gradient through
cond, while_loop and scan equals eager's."""

from compare.lessons import claimed


def test_the_error_points_at_the_users_if(lesson_output):
    out = lesson_output("05_control_flow")
    assert claimed(out, r"raised at line (\d+) of the user's code, `if F\.sum") > 0


def test_the_tape_holds_the_branch_taken_and_the_graph_both(lesson_output):
    out = lesson_output("05_control_flow")
    true_tape = claimed(out, r"tape recorded (\d+) ops when sum\(x\) > 0")
    false_tape = claimed(out, r"when sum\(x\) > 0 and (\d+) when not")
    assert claimed(out, r"both branches whatever the data: (\d+) ops \(true\)") == true_tape
    assert claimed(out, r"ops \(true\) and (\d+) ops \(false\)") == false_tape


def test_loops_grow_the_tape_not_the_graph(lesson_output):
    out = lesson_output("05_control_flow")
    many, few = (
        claimed(out, r"tape grew with the trip count \((\d+) ops"),
        claimed(out, r"iterations, (\d+) for \d+\)"),
    )
    assert many > few > 0
    assert claimed(out, r"counter in the loop body counted \d+ calls .*?, (\d+) call when") == 1
    assert claimed(out, r"when the body was traced, and (\d+) more") == 0
    assert claimed(out, r"eager tape recorded (\d+) ops; the scan") > claimed(
        out, r"the scan's body holds (\d+) ops"
    )


def test_gradients_equal_eagers(lesson_output):
    out = lesson_output("05_control_flow")
    for construct in ("cond agree", "while loop agree", "scan .*? agree"):
        assert claimed(out, rf"{construct}.*max abs difference ([\d.e+-]+)") <= 1e-5
