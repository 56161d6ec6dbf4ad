"""Graph passes, one module each: `Graph -> (Graph, list of changes)`. The pipeline for each
optimize level is a plain ordered list; any pass can be switched off by name."""

from __future__ import annotations

import time
from typing import Callable

from symbolic.graph import Graph

Pass = Callable[[Graph], "tuple[Graph, list[str]]"]

PIPELINES: dict[int, list[tuple[str, Pass]]] = {0: [], 1: [], 2: []}


def pass_names() -> list[str]:
    return [name for name, _ in PIPELINES[max(PIPELINES)]]


def run_pipeline(graph: Graph, optimize: int, disable, report) -> Graph:
    """Run the passes of level `optimize` (less those in `disable`), recording each."""
    if optimize not in PIPELINES:
        raise ValueError(f"optimize must be one of {sorted(PIPELINES)}, got {optimize!r}.")
    unknown = set(disable or ()) - set(pass_names())
    if unknown:
        raise ValueError(f"disable: no pass is named {sorted(unknown)}. Passes: "
                         f"{', '.join(pass_names()) or '(none)'}.")
    for name, run in PIPELINES[optimize]:
        if name in (disable or ()):
            continue
        start = time.perf_counter()
        after, changes = run(graph)
        report.record_pass(name, graph, after, time.perf_counter() - start, changes)
        graph = after
    return graph
