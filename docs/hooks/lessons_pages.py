"""mkdocs hook: the lessons (docs/lessons/NN_*.py, executed by mkdocs-jupyter) in the nav, an
overview page for them, and their links made to work on the site.

Whatever lessons exist at build time appear, by number, with no edit to mkdocs.yml. A lesson
links to another page relative to its own file (`../concepts/fusion.md`, `07_fusion.py`), which
works in Jupyter and on GitHub; this hook turns such links into the site's URLs, and a link to
a page that does not exist fails the strict build.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

from compare import lessons

log = logging.getLogger("mkdocs.hooks.lessons_pages")

OVERVIEW = "lessons/index.md"
NAV_SECTION = "Lessons"
HREF = re.compile(r'href="([^"#:]+)(#[^"]*)?"')  # relative links only (no scheme)


def _lessons(config) -> list[lessons.Lesson]:
    return lessons.all_lessons(Path(config.docs_dir) / "lessons")


def on_config(config):
    """Lessons draw as they do in a terminal (Agg: no second, inline copy of each figure) and
    write their figure files outside docs/ (the page shows them inline; files written into
    docs/ would make `mkdocs serve` rebuild forever)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    figures = Path(config.site_dir).parent / "lesson-figures"
    os.environ.setdefault(lessons.FIGURES_VARIABLE, str(figures))
    pages = [OVERVIEW] + [
        {lesson.title: f"lessons/{lesson.path.name}"} for lesson in _lessons(config)
    ]
    for entry in config.nav:
        if isinstance(entry, dict) and NAV_SECTION in entry:
            entry[NAV_SECTION] = pages
    return config


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, OVERVIEW, content=overview(_lessons(config))))
    return files


def overview(found: list[lessons.Lesson]) -> str:
    """The lessons' index page: how to run them, and one line for each."""
    rows = "\n".join(
        f"| [{lesson.title}]({lesson.path.name}) | {_summary(lesson)} |" for lesson in found
    )
    table = f"| lesson | what it shows |\n|---|---|\n{rows}" if found else "No lessons yet."
    return f"""# Lessons

Each lesson runs the same program eagerly and as a compiled graph and says what it measured,
one sentence per claim, with the numbers from the machine that ran it. The pages here were
executed when this site was built; run a lesson yourself to get your machine's numbers:

```bash
diptych lesson             # the list
diptych lesson 7           # run lesson 7 in the terminal (figures go to a folder it prints)
diptych lesson 7 --check   # check your answers to its exercises
```

A lesson is also a notebook: `jupytext --to notebook docs/lessons/07_*.py` (or open the `.py`
file in Jupyter with jupytext installed). Its exercises are stubs in `docs/lessons/exercises/`.

{table}
"""


def _summary(lesson: lessons.Lesson) -> str:
    """The first sentence of the lesson's opening paragraph."""
    text = lesson.path.read_text(encoding="utf-8")
    found = re.search(r"^# #+ .+\n#\s*\n((?:# .+\n)+)", text, re.MULTILINE)
    if not found:
        return ""
    paragraph = " ".join(line[2:].strip() for line in found.group(1).splitlines())
    return re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0].replace("|", "\\|")


def on_page_content(html: str, page, config, files: Files) -> str:
    """Links in a lesson (its HTML comes from the notebook, not from Markdown that mkdocs
    would rewrite) point at the site's pages."""
    if page.file.src_uri.startswith("lessons/") and page.file.src_uri.endswith(".py"):
        return HREF.sub(lambda m: _site_link(m, page, files), html)
    return html


def _site_link(match: re.Match, page, files: Files) -> str:
    target, fragment = match.group(1), match.group(2) or ""
    if target.startswith("/"):
        return match.group(0)
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), target))
    linked = files.get_file_from_path(path)
    if linked is not None and linked.is_documentation_page():
        return f'href="{get_relative_url(linked.url, page.file.url)}{fragment}"'
    if target.endswith((".md", ".py")):
        log.warning(f"{page.file.src_uri} links to {target}, which is not a page of the site")
    return match.group(0)
