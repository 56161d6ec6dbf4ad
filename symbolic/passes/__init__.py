"""Graph passes, one module each: `Graph -> (Graph, list of changes)`. The pipeline for each
optimize level is a plain ordered list; any pass can be switched off by name."""

from __future__ import annotations

import time
from typing import Callable

from symbolic.graph import Graph

Pass = Callable[[Graph], "tuple[Graph, list[str]]"]


def _pipelines() -> dict[int, list[tuple[str, Pass]]]:
    from symbolic.passes.common_subexpressions import eliminate_common_subexpressions
    from symbolic.passes.constant_folding import fold_constants
    from symbolic.passes.dead_code import eliminate_dead_code
    from symbolic.passes.fusion import fuse_elementwise
    from symbolic.passes.memory import plan_memory
    from symbolic.passes.simplify import simplify

    level1 = [
        ("constant_folding", fold_constants),
        ("simplify", simplify),
        ("cse", eliminate_common_subexpressions),
        ("dce", eliminate_dead_code),
    ]
    return {0: [], 1: level1, 2: level1 + [("fusion", fuse_elementwise), ("memory", plan_memory)]}


PIPELINES: dict[int, list[tuple[str, Pass]]] = _pipelines()


def pass_names() -> list[str]:
    return [name for name, _ in PIPELINES[max(PIPELINES)]]


def run_pipeline(graph: Graph, optimize: int, disable, report) -> Graph:
    """Run the passes of level `optimize` (less those in `disable`), recording each."""
    disable = (disable,) if isinstance(disable, str) else tuple(disable or ())
    if optimize not in PIPELINES:
        raise ValueError(f"optimize must be one of {sorted(PIPELINES)}, got {optimize!r}.")
    unknown = set(disable or ()) - set(pass_names())
    if unknown:
        raise ValueError(
            f"disable: no pass is named {sorted(unknown)}. Passes: "
            f"{', '.join(pass_names()) or '(none)'}."
        )
    for name, run in PIPELINES[optimize]:
        if name in (disable or ()):
            continue
        start = time.perf_counter()
        after, changes = run(graph)
        report.record_pass(name, graph, after, time.perf_counter() - start, changes)
        graph = after
    return graph
