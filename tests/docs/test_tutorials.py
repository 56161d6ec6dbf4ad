"""Every teaching script under docs/tutorials runs to the end (their asserts included)."""

import pathlib
import runpy

import pytest

TUTORIALS = sorted((pathlib.Path(__file__).parents[2] / "docs" / "tutorials").glob("*.py"))


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip(), "a tutorial explains itself in its output"
