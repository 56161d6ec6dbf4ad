"""Helpers for the picture tests: lay DOT out with the real `dot` and read the SVG back."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

from common import style

SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Drawn:
    nodes: list[str]  # the DOT names of the nodes drawn (legend and notes included)
    clusters: list[str]  # the names of the clusters drawn
    texts: list[str]  # every text shown

    @property
    def graph_nodes(self) -> list[str]:
        return [n for n in self.nodes if n not in ("legend", "note")]

    def fused_clusters(self) -> list[str]:
        return [c for c in self.clusters if "fused" in c]


def read_svg(svg: str) -> Drawn:
    root = ET.fromstring(svg)
    nodes, clusters = [], []
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if group.get("class") == "node":
            nodes.append(title.text)
        elif group.get("class") == "cluster":
            clusters.append(title.text)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    return Drawn(nodes, clusters, texts)


@pytest.fixture
def drawn():
    """DOT source -> what `dot` drew (skipped where Graphviz is not installed)."""
    if not style.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    return lambda source: read_svg(style.pipe(source, "svg").decode())
