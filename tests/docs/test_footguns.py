"""The footgun gallery (docs/footguns.md): each footgun, run as the page shows it, is detected
by the tool the page names (the capture linter, detect_anomaly, equivalence, gradcheck, the
debugger), and prints what the page says it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.docs.test_code_blocks import ROOT, python_blocks

PAGE = ROOT / "docs" / "footguns.md"
HEADING = re.compile(r"^## (.+)$", re.MULTILINE)
OUTPUT = re.compile(r"^```text\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARK = "=== footgun: "
LINE = r"footguns\.md:\d+: "
# Each footgun and what its run must print: the tool's own words, at the page's line.
DETECTED = {
    "1. A global number, frozen": [LINE + r"the global scale = 2\.0 was read once, while tracing"],
    "2. A global array, copied": [LINE + r"the global mean \(float32\[3\]\) was copied"],
    "3. Random numbers drawn while tracing": [
        LINE + r"random numbers were drawn from the generator rng while tracing"
    ],
    "4. print while tracing": [LINE + r"print\(\) ran while tracing", r"h = \[0\.76"],
    "5. A list appended to while tracing": [
        LINE + r"the global losses \(a list\) was changed while tracing"
    ],
    "6. A branch on a Python flag": [LINE + r"this `if` tests the global training"],
    "7. log(0) in the forward pass": [
        r"AnomalyError: log produced -inf in 1 of 3 values from finite inputs, at "
        + LINE
        + r"return -F\.sum\(p \* F\.log\(p\)\)"
    ]
    * 2,  # eager, then compiled
    "8. NaN in the backward pass only": [
        r"AnomalyError: div produced inf in 1 of 1 values from finite inputs, in the backward "
        r"pass of sqrt, whose forward op was made at " + LINE + r"return F\.sqrt\(squares\)"
    ]
    * 2,
    "9. A custom op that returns a view": [
        r"The pass 'memory' changed it",
        r"The buffer holding its input %\d+ \(first_half\) was overwritten",
    ],
    "10. A custom op with a wrong gradient": [r"cubed: gradcheck FAILS"],
}
# Until the eager engine calls anomaly.check itself, the run wraps its kernel runner to do so.
RUNNER = f"""
import importlib, json, sys
from tests.common.test_anomaly import eager_engine_checks
checked = eager_engine_checks()
if checked is not None:
    importlib.import_module("eager.tensor").run_kernel = checked
namespace = {{"__name__": "__main__"}}
for title, blocks in json.load(sys.stdin):
    print({MARK!r} + title, flush=True)
    for path, line, code in blocks:
        exec(compile("\\n" * line + code, path, "exec"), namespace)
"""


def sections() -> list[tuple[str, int]]:
    """Each footgun's title and the line its section starts at (the page's head is first)."""
    text = PAGE.read_text(encoding="utf-8")
    return [("", 0)] + [
        (m.group(1), text.count("\n", 0, m.start())) for m in HEADING.finditer(text)
    ]


def _section_of(line: int) -> str:
    return [title for title, start in sections() if start <= line][-1]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, str]:
    """The page's code run once in order, as test_code_blocks runs it: each footgun's stdout."""
    grouped: dict[str, list] = {title: [] for title, _ in sections()}
    for block in python_blocks(PAGE):
        grouped[_section_of(block[1])].append(block)
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(list(grouped.items())),
        cwd=tmp_path_factory.mktemp("footguns"),
        env=dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parts = done.stdout.split(MARK)[1:]
    return dict(part.split("\n", 1) for part in parts)


def test_every_footgun_on_the_page_is_checked_here():
    assert [title for title, _ in sections()[1:]] == list(DETECTED)


@pytest.mark.parametrize("title", DETECTED)
def test_the_footgun_is_detected_by_its_tool(outputs, title):
    for expected in set(DETECTED[title]):
        found = re.findall(expected, outputs[title])
        assert len(found) == DETECTED[title].count(expected), (expected, outputs[title])


@pytest.mark.parametrize("title", DETECTED)
def test_the_page_shows_what_the_run_prints(outputs, title):
    text = PAGE.read_text(encoding="utf-8")
    start = dict(sections())[title]
    shown = [
        m for m in OUTPUT.finditer(text) if _section_of(text.count("\n", 0, m.start())) == title
    ]
    assert shown, f"{title}: the page shows no output"
    printed = _numbers_hidden(outputs[title]).splitlines()
    for line in _numbers_hidden(shown[0].group(1)).splitlines():
        assert line in printed, f"{title} (from line {start}): the page shows {line!r}"


def _numbers_hidden(text: str) -> str:
    """The page's line numbers and the symbols' process-wide ids as N: moving a section, or
    adding one above, does not make the page's outputs stale."""
    return re.sub(r"(footguns\.md:|Symbol #)\d+", r"\1N", text)
