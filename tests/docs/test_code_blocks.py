"""Every ```python block in README.md and docs/**/*.md runs as written, so the docs cannot drift
from the code. The blocks of one file run in order in one namespace (a later block may use
an earlier one's names), in a fresh Python process (a block may declare an op, which must
not leak into other tests' registry), in an empty folder (a block may write files)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
# Each block is compiled with its file's name and padded to its line there, so a traceback
# points at the Markdown line that failed.
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for path, line, code in json.load(sys.stdin):
    exec(compile("\\n" * line + code, path, "exec"), namespace)
"""


def python_blocks(path: Path) -> list[tuple[str, int, str]]:
    """(file, line of the block's first code line minus one, dedented code) for each block."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for found in FENCE.finditer(text):
        indent = len(found.group("indent"))
        code = "".join(line[indent:] for line in found.group("code").splitlines(keepends=True))
        blocks.append((str(path), text.count("\n", 0, found.start("code")), code))
    return blocks


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
WITH_CODE = [p for p in DOCUMENTS if python_blocks(p)]


def test_the_readme_has_code_to_run():
    assert ROOT / "README.md" in WITH_CODE


@pytest.mark.parametrize("path", WITH_CODE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run(path, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(python_blocks(path)),
        cwd=tmp_path,
        env=dict(os.environ, MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"a code block in {path.name} failed:\n{done.stderr[-4000:]}")
