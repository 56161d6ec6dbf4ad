"""Lesson 11 (choosing a mode) at small sizes: every row of the guide links to a lesson that
exists, and the recommendation table is printed from measured numbers."""

import re

from compare import lessons
from compare.lessons import claimed

LESSON = "11_choosing_a_mode"
NUMBER = r"(-?[\d,]+\.?\d*)"
CHOICES = ("eager", "compiled", "either")


def guide_rows() -> list[str]:
    text = lessons.lesson_named(LESSON).path.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if re.match(r"# \| (?!situation|-)", line)]


def test_every_row_of_the_guide_links_to_a_lesson_that_exists():
    existing = {lesson.path.name for lesson in lessons.all_lessons()}
    rows = guide_rows()
    assert len(rows) >= 8
    for row in rows:
        links = re.findall(r"\]\((\d\d_\w+\.py)\)", row)
        assert links, f"no lesson link in {row!r}"
        assert set(links) <= existing, f"{row!r} links to a lesson that does not exist"


def test_the_recommendation_table_is_printed(lesson_output):
    out = lesson_output(LESSON)
    rows = out.split("recommendation\n", 1)[1].splitlines()[:9]  # one per measured situation
    assert all(row.endswith(CHOICES) for row in rows), rows
    assert not rows[-1].startswith("claim")
    assert "never pays off" in out or claimed(out, rf"pythagoras pays off after {NUMBER}") >= 1


def test_the_claims_carry_their_numbers(lesson_output):
    out = lesson_output(LESSON)
    assert claimed(out, rf"step \(\d+ x \d+\) took {NUMBER} ms") > 0
    assert claimed(out, rf"a call with a new shape took {NUMBER} ms") > 0
    assert claimed(out, rf"on 16 elements eager took {NUMBER}x") > 0
    eager_mb = claimed(out, rf"peak memory was {NUMBER} MB eagerly")
    assert eager_mb > 0 and claimed(out, rf"eagerly and {NUMBER} MB compiled") > 0
    assert claimed(out, rf"second-order gradient took {NUMBER}x") > 0
