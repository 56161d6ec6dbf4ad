"""Helpers for the picture tests: lay DOT out with the real `dot` and read the SVG (what was
drawn) or the JSON layout (where it went) back."""

import json
import re
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


@dataclass
class Layout:
    width: float  # CSS pixels (96 an inch), as drawn in the SVG
    natural_width: float  # before Graphviz's `size` shrank the picture to fit
    height: float
    upward: list  # (tail, head) of every edge whose head `dot` placed above its tail


def lay_out(source: str) -> Layout:
    """Where `dot` put everything: the picture's size and the edges that point up (loop
    edges, drawn with constraint=false, and invisible ones are not counted)."""
    laid = json.loads(style.pipe(source, "json"))
    x0, y0, x1, y1 = (float(v) for v in laid["bb"].split(","))
    nodes = {o["_gvid"]: o for o in laid.get("objects", []) if "pos" in o}
    upward = []
    for e in laid.get("edges", []):
        if e.get("constraint") == "false" or e.get("style") == "invis":
            continue
        tail, head = nodes[e["tail"]], nodes[e["head"]]
        if float(head["pos"].split(",")[1]) > float(tail["pos"].split(",")[1]):  # y grows up
            upward.append((tail["name"], head["name"]))
    svg = style.pipe(source, "svg").decode()
    found = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    to_px = 96 / 72
    return Layout(float(found[1]) * to_px, (x1 - x0) * to_px, float(found[2]) * to_px, upward)


@pytest.fixture
def laid_out():
    """DOT source -> its Layout (skipped where Graphviz is not installed)."""
    if not style.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    return lay_out
