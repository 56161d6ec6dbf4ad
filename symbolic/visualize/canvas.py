"""The canvas the graph pictures are drawn on: nested clusters of nodes, then edges, a legend
and a note when the picture was cut. Ranked with dot's `newrank`, so every edge points down
even when it enters or leaves a cluster (the classic ranking lays a cluster out on its own,
and edges into it can then run upward)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import graphviz

from common import style

# A projector's width, in CSS pixels (96 an inch): a wider layout is drawn smaller to fit
# (Graphviz's `size`); the collapsing in `collapse` keeps that scale near 1 for the zoo.
PROJECTOR_WIDTH = 1600
CUT_NOTE = {"shape": "note", "style": "filled", "fillcolor": "#fef9c3", "color": "#a16207"}


@dataclass
class Cluster:
    name: str
    attrs: dict
    nodes: list = field(default_factory=list)
    children: dict = field(default_factory=dict)
    row: list = field(default_factory=list)  # nodes kept side by side, in this order

    def child(self, name: str, attrs: dict) -> Cluster:
        if name not in self.children:
            self.children[name] = Cluster(name, attrs)
        return self.children[name]

    def emit(self, dot: Any) -> None:
        for name, attrs in self.nodes:
            dot.node(name, **attrs)
        if len(self.row) > 1:
            with dot.subgraph() as row:
                row.attr(rank="same")
                for left, right in zip(self.row, self.row[1:]):
                    row.edge(left, right, style="invis")
        for child in self.children.values():
            with dot.subgraph(name=child.name) as sub:
                sub.attr(**child.attrs)
                child.emit(sub)


class Canvas:
    def __init__(self, max_nodes: int) -> None:
        self.root = Cluster("", {})
        self.edges: list[tuple[str, str, dict]] = []
        self.max_nodes = max_nodes
        self.drawn = 0
        self.skipped = 0
        self.legend: set[str] = set()
        self.notes: set[str] = set()  # caption lines saying what a drawing's marks mean

    def fits(self, count: int) -> bool:
        if self.drawn + count > self.max_nodes:
            self.skipped += count
            return False
        self.drawn += count
        return True

    def digraph(self, title: str = "") -> graphviz.Digraph:
        dot = graphviz.Digraph(
            graph_attr={
                **style.GRAPH_ATTRS,
                "compound": "true",
                "newrank": "true",
                "size": f"{PROJECTOR_WIDTH / 96:.2f},1000",  # inches: only ever shrinks
            },
            node_attr=dict(style.NODE_ATTRS),
            edge_attr=style.EDGE_ATTRS,
        )
        keys = [k for k in style.LEGEND_TEXT if k in self.legend]
        if title or keys:
            dot.attr(label=heading(title, keys))
        self.root.emit(dot)
        for tail, head, attrs in self.edges:
            dot.edge(tail, head, **attrs)
        if self.skipped:
            dot.node(
                "note",
                label=f"showing {self.drawn} of {self.drawn + self.skipped} nodes "
                f"(max_nodes={self.max_nodes}).\\nPass collapse=True, or a larger "
                "max_nodes, to see them all.",
                **CUT_NOTE,
            )
        return dot


def heading(title: str, legend: list[str]) -> str:
    """The picture's label: the title with its caption lines, and the legend beside them (in
    the label, not a node: a node in the top rank would widen the picture)."""
    parts = title.split("\n") if title else []
    lines = [
        line for part in parts for line in (style.wrap(part, 64) if len(part) > 64 else [part])
    ]
    cells = [style.html_label(*lines, bold=False)[1:-1]] if lines else []
    cells += [style.legend_label(legend)[1:-1]] if legend else []
    row = "".join(f'<TD ALIGN="LEFT" VALIGN="TOP" BALIGN="LEFT">{cell}</TD>' for cell in cells)
    return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="4"><TR>{row}</TR></TABLE>>'
