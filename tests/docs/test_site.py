"""The documentation site builds with `mkdocs build --strict` (every lesson executed at its small
sizes), and every page opens in headless Chromium: it renders, every image loads, nothing is
fetched from outside this machine, and the JavaScript console stays free of errors."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from compare import cli, lessons

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (.ci/run installs it)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BROKEN_IMAGES = """() => Array.from(document.images)
    .filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => img.currentSrc || img.src)"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built the way `make docs` builds it but at small lesson sizes."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", **{lessons.SIZE_VARIABLE: "small"})
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    return out


def test_every_lesson_and_command_has_its_page(site):
    for lesson in lessons.all_lessons():
        page = site / "lessons" / lesson.name / "index.html"
        assert page.exists(), f"lesson {lesson.name} has no page"
        assert "jp-OutputArea" in page.read_text(encoding="utf-8"), f"{lesson.name}: no output"
    overview = (site / "lessons" / "index.html").read_text(encoding="utf-8")
    assert all(lesson.title in overview for lesson in lessons.all_lessons())
    cli_page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in cli.COMMANDS:  # every command the parser has, from the parser
        assert f"diptych {command}" in cli_page, f"the CLI reference lacks `diptych {command}`"


def test_home_page_shows_a_measured_table(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "compiled O2" in home and "machine:" in home


@pytest.fixture(scope="module")
def server(site):
    """The built site on a free localhost port, served from a thread."""
    handler = partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def test_every_page_opens_cleanly_in_chromium(site, server):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian's `chromium` package; .ci/run installs it)")
    from playwright.sync_api import sync_playwright  # the dev extra; drives the browser only

    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert len(pages) > 10, f"only {len(pages)} pages were built"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            problems = [p for path in pages for p in _open(browser, f"{server}/{path}")]
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def _open(browser, url: str) -> list[str]:
    """What is wrong with one page, as lines that name the page."""
    page = browser.new_page()
    problems: list[str] = []
    here = urlsplit(url).netloc

    def on_console(message):
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def on_request(request):
        target = urlsplit(request.url)
        if target.scheme in ("http", "https") and target.netloc != here:
            problems.append(f"fetched from outside: {request.url}")

    def on_response(response):
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    page.on("console", on_console)
    page.on("request", on_request)
    page.on("response", on_response)
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    response = page.goto(url, wait_until="load")
    if response is None or not response.ok:
        problems.append("did not load")
    elif not page.inner_text("article").strip():
        problems.append("renders no content")
    problems += [f"broken image: {src}" for src in page.evaluate(BROKEN_IMAGES)]
    page.close()
    return [f"{urlsplit(url).path}: {problem}" for problem in problems]
