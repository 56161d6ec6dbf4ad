"""Every lesson in docs/lessons, whatever its number (lessons added later are picked up with no
edit here): its shape as a jupytext notebook, its exercises (the worked answers pass, the stubs
do not, and the checker never prints a solution), and the commands that list, run and check
lessons."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys

import pytest

from compare import lessons
from compare.cli import main

LESSONS = lessons.all_lessons()
each_lesson = pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.name for lesson in LESSONS])
CELL = re.compile(r"^# %%(?: \[markdown\])?$")
SHORTEST_TELLING_LINE = 12  # solution lines shorter than this (`return x`) give nothing away


def solution_lines(lesson: lessons.Lesson) -> list[str]:
    """The lines of the worked answers' function bodies, long enough to give an answer away."""
    source = lesson.solutions.read_text(encoding="utf-8")
    lines = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            body = ast.get_source_segment(source, node) or ""
            lines += [line.strip() for line in body.splitlines()[1:]]
    return [line for line in lines if len(line) >= SHORTEST_TELLING_LINE]


def checker_output(lesson: lessons.Lesson, capsys, answers=None) -> tuple[int, str]:
    code = lessons.check(lesson, answers=answers)
    out = capsys.readouterr().out
    for line in solution_lines(lesson):
        assert line not in out, f"the checker printed a line of the solution: {line!r}"
    return code, out


def verdicts(out: str) -> list[str]:
    return re.findall(r"^exercise \d+: (.*)$", out, re.MULTILINE)


def test_there_are_lessons():
    assert len(LESSONS) >= 3
    assert len({lesson.number for lesson in LESSONS}) == len(LESSONS), "two lessons, one number"


@each_lesson
def test_the_worked_answers_pass(lesson, capsys):
    code, out = checker_output(lesson, capsys, answers=lesson.solutions)
    assert code == 0, out
    assert 2 <= len(verdicts(out)) and set(verdicts(out)) == {"passes"}, out


@each_lesson
def test_the_unmodified_stubs_fail(lesson, capsys):
    code, out = checker_output(lesson, capsys)
    assert code == 1, out
    assert "passes" not in verdicts(out), out


@each_lesson
def test_the_lesson_has_a_title_exercises_and_solutions(lesson):
    assert re.fullmatch(rf"{lesson.number}\. \S.*", lesson.title), (
        f"{lesson.name}: the first Markdown heading should be '# # {lesson.number}. Title'"
    )
    assert lesson.exercises.is_file() and lesson.solutions.is_file()
    stubs = {n for n in dir(_load(lesson.exercises)) if re.fullmatch(r"exercise_\d+", n)}
    answers = {n for n in dir(_load(lesson.solutions)) if re.fullmatch(r"exercise_\d+", n)}
    assert stubs == answers, f"{lesson.name}: the solutions answer {answers}, not {stubs}"


@each_lesson
def test_the_lesson_starts_with_begin(lesson):
    """`lessons.begin()` is the first thing run after the imports, so that `--check` checks
    the exercises before any of the lesson's work."""
    tree = ast.parse(lesson.path.read_text(encoding="utf-8"))
    first = next(s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom)))
    assert ast.unparse(first) == "lessons.begin()"


@each_lesson
def test_the_lesson_is_a_percent_format_notebook(lesson):
    text = lesson.path.read_text(encoding="utf-8")
    markers = [line for line in text.splitlines() if line.startswith("# %%")]
    assert all(CELL.match(m) for m in markers), f"unknown cell markers: {set(markers)}"
    cells = _cells(text)
    assert cells[0][0] == "markdown" and cells[0][1][0].startswith("# # ")
    assert any(kind == "code" for kind, _ in cells)
    for kind, lines in cells:
        if kind == "markdown":
            bad = [line for line in lines if line and line != "#" and not line.startswith("# ")]
            assert not bad, f"a Markdown cell holds a line that is not a comment: {bad[0]!r}"
    if importlib.util.find_spec("jupytext"):
        import jupytext

        notebook = jupytext.reads(text, fmt="py:percent")
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds == [kind for kind, _ in cells]
        assert notebook.cells[0].source.startswith(f"# {lesson.number}. ")


def _cells(text: str) -> list[tuple[str, list[str]]]:
    """(kind, lines) per cell, the marker lines left out and trailing blank lines trimmed."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if CELL.match(line):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            cells[-1][1].append(line)
        else:
            assert not line.strip(), "text before the first cell marker"
    for _, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
    return cells


def _load(path):
    spec = importlib.util.spec_from_file_location(f"lesson_file_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the commands -----------------------------------------------------------------------


def test_diptych_lesson_lists_every_lesson(capsys):
    assert main(["lesson"]) == 0
    out = capsys.readouterr().out
    for lesson in LESSONS:
        assert re.search(rf"^\s*{lesson.number}\s+{re.escape(lesson.title)}$", out, re.M), out


@each_lesson
def test_diptych_lesson_check_fails_on_the_stubs(lesson, capsys):
    assert main(["lesson", str(lesson.number), "--check"]) == 1
    assert "passes" not in verdicts(capsys.readouterr().out)


def test_an_unknown_lesson_is_one_line_and_status_2(capsys):
    unused = max(lesson.number for lesson in LESSONS) + 1
    assert main(["lesson", str(unused)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("diptych: error: no lesson") and captured.err.count("\n") == 1


@each_lesson
def test_the_lesson_file_checks_its_exercises_as_a_command(lesson):
    """`python docs/lessons/NN_name.py --check`: the checker runs instead of the lesson."""
    done = subprocess.run(
        [sys.executable, str(lesson.path), "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert verdicts(done.stdout) and "passes" not in verdicts(done.stdout)
    assert "claim" not in done.stdout, "the lesson ran instead of the checker"
