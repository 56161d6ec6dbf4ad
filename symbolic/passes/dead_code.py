"""Dead-code elimination: keep only what the outputs and the updates need.

    before: %3 = exp(%1); %4 = tanh(%1); return %4      after: %4 = tanh(%1); return %4

A traced function's graph holds every node the function built, unused ones included (a
gradient nobody asked for, an auxiliary output); rewrites leave replaced nodes behind too.
"""

from __future__ import annotations

from symbolic.graph import Graph, format_node, live_ids, numbered


@numbered
def eliminate_dead_code(graph: Graph) -> tuple[Graph, list[str]]:
    live = live_ids(graph)
    dead = [n for n in graph.nodes if n.id not in live]
    kept = [n for n in graph.nodes if n.id in live]
    graph = Graph(graph.inputs, graph.outputs, graph.updates, nodes=kept)
    return graph, [f"removed {format_node(n, pad=0)}" for n in dead]
