"""One graph as a picture (Graphviz): a Graph, symbols, or a compiled function's stages
(traced, optimized, or both side by side), drawn by `drawing.Drawing` on one canvas."""

from __future__ import annotations

import pathlib
from typing import Any, Callable

import graphviz

from common import style
from symbolic.graph import Graph, Node
from symbolic.visualize.canvas import Canvas
from symbolic.visualize.drawing import Drawing
from symbolic.visualize.facts import count, fused_program, output_names, stages_of

# ---- public: DOT text, files, notebooks -------------------------------------------------


def digraph(
    obj: Any,
    stage: str | None = None,
    collapse: Any = "auto",
    max_nodes: int = style.MAX_NODES,
    highlight: Callable[[Node], bool] | None = None,
    title: str | None = None,
) -> graphviz.Digraph:
    """The picture as a graphviz.Digraph (see `to_dot`)."""
    canvas = Canvas(max_nodes)
    triples = stages_of(obj, stage)
    drawings = []
    for title_, graph, traced in triples:
        cluster = canvas.root
        if len(triples) > 1:
            cluster = canvas.root.child(
                f"cluster_stage_{title_}",
                {**style.STAGE, "label": _summary(title_, graph), "fontsize": "14"},
            )
        prefix = f"{title_[0]}_" if len(triples) > 1 else ""
        names = output_names(traced)
        drawings.append(Drawing(canvas, prefix, collapse, highlight, outputs_are=names))
        drawings[-1].draw(graph, cluster)
    if any(d.folding.references for d in drawings[1:]):  # large: one above the other
        last, first = drawings[0].out.values(), drawings[1].out.values()
        canvas.edges.append((list(last)[-1], next(iter(first)), {"style": "invis", "weight": "0"}))
    if title is None and len(triples) == 1:
        title = _summary(*triples[0][:2])
    return canvas.digraph("\n".join([title or ""] + sorted(canvas.notes)))


def _summary(title: str, graph: Graph) -> str:
    fused = sum(fused_program(n) is not None for n in graph.nodes)
    return (
        f"{title}: {count(len(graph.nodes), 'node')}, {count(len(graph.ops), 'op')}"
        + (f", {count(fused, 'fused kernel')}" if fused else "")
        + (f", {count(len(graph.updates), 'update')}" if graph.updates else "")
    )


def to_dot(
    obj: Any,
    stage: str | None = None,
    collapse: Any = "auto",
    max_nodes: int = style.MAX_NODES,
    **options: Any,
) -> str:
    """DOT source of a Graph, a CompiledFunction (stage 'traced', 'optimized' (default) or
    'both', side by side) or symbols. `collapse=True` draws the ops that one source line made,
    run by run, as one box (a layer called on one line becomes one box), "auto" (default)
    does so for graphs too large to read op by op, False never; past `max_nodes` the picture
    is cut with a note."""
    return digraph(obj, stage, collapse, max_nodes, **options).source


def render(
    obj: Any,
    path: Any,
    format: str | None = None,
    stage: str | None = None,
    collapse: Any = "auto",
    max_nodes: int = style.MAX_NODES,
) -> pathlib.Path:
    """Write the picture (svg, png, pdf or dot; from the suffix by default). Without
    Graphviz's `dot` program the DOT source is written instead, with a note."""
    return style.write(to_dot(obj, stage, collapse, max_nodes), path, format)


def svg(obj: Any, stage: str | None = None) -> str | None:
    """The picture as SVG text for notebooks (None where `dot` is missing)."""
    if not style.dot_available():
        return None
    return style.pipe(to_dot(obj, stage), "svg").decode()
