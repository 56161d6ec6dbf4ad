r"""Run each lesson once per test session at its small sizes, and read its claims.

def test_fusion_claims(lesson_output):
    out = lesson_output("07_fusion")        # stdout of `python docs/lessons/07_fusion.py`
    ratio = lessons.claimed(out, r"fused chain ran ([\d.]+)x")
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from compare import lessons

_outputs: dict[str, str] = {}


def run_lesson(name: str, *args: str, figures: str | None = None) -> subprocess.CompletedProcess:
    """`python docs/lessons/NAME.py ARGS` at small sizes, in a fresh process."""
    env = dict(os.environ, MPLBACKEND="Agg", **{lessons.SIZE_VARIABLE: "small"})
    if figures:
        env[lessons.FIGURES_VARIABLE] = figures
    path = lessons.lesson_named(name).path
    return subprocess.run(
        [sys.executable, str(path), *args], env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="session")
def lesson_figures(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lesson_figures"))


@pytest.fixture
def lesson_output(lesson_figures):
    """The stdout of a lesson run at small sizes (run once per session, then cached); the
    lesson must exit 0."""

    def output(name: str) -> str:
        if name not in _outputs:
            done = run_lesson(name, figures=lesson_figures)
            assert done.returncode == 0, f"lesson {name} failed:\n{done.stdout}\n{done.stderr}"
            _outputs[name] = done.stdout
        return _outputs[name]

    return output
