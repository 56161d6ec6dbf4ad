"""Pictures of symbolic graphs (Graphviz): a graph as traced or optimized, the passes one by
one with what each changed, and the memory plan on the graph and as a chart (matplotlib).

    f = S.compile(c, inputs=[a, b])
    render(f, "c.svg", stage="both")            # traced and optimized, side by side
    render(f, "c.svg", collapse=True)           # one box per run of ops from one line
    render_passes(f, "passes/")                 # one picture per pass
    render_memory_plan(f, "memory.png")

Node names in the DOT text are positions in `graph.nodes` (never the global node ids), so
the same graph gives the same text in every run. The backward part of a training graph is
what `S.grad` built (it tags its nodes); ops that only the updates need form the update part.
Large graphs are collapsed by default (`collapse="auto"`), so that a picture stays legible
at a projector's width.
"""

from symbolic.visualize.facts import (
    REGIONS,
    STAGES,
    bodies_of,
    fused_program,
    regions_of,
    stages_of,
)
from symbolic.visualize.graph import digraph, render, svg, to_dot
from symbolic.visualize.memory import render_memory_plan
from symbolic.visualize.passes import StageDiff, diff_graphs, pass_dots, render_passes

__all__ = [
    "REGIONS",
    "STAGES",
    "StageDiff",
    "bodies_of",
    "diff_graphs",
    "digraph",
    "fused_program",
    "pass_dots",
    "regions_of",
    "render",
    "render_memory_plan",
    "render_passes",
    "stages_of",
    "svg",
    "to_dot",
]
