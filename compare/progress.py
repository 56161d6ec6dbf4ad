"""Progress feedback on stderr, so that stdout keeps only the results: a rich progress bar on
a terminal where rich is installed, otherwise one line per stage."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """`stage(text)` names what runs now; `tick()` advances the bar by one unit of `total`."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total, self.quiet = total, quiet
        self._bar: Any = None
        self._task: Any = None
        self._start = time.perf_counter()

    def __enter__(self) -> Progress:
        if not self.quiet and sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as Bar
            except ImportError:
                return self
            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("diptych", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def stage(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)
        elif not self.quiet:
            print(
                f"[{time.perf_counter() - self._start:5.1f} s] {text}", file=sys.stderr, flush=True
            )

    def tick(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
