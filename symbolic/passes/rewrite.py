"""The one way passes change a graph: walk the nodes in order, let a rule replace a node
(by an existing node or new ones), and rebuild each later node whose inputs changed.

Nodes are never mutated; a node made by a rule remembers the source lines of the user
ops it replaced (`provenance`), so errors and pictures can still name them.
"""

from __future__ import annotations

from typing import Any, Callable

from common.ops.core import aval_of
from symbolic.graph import Graph, Node, infer_aval


def lines_of(*nodes: Node) -> tuple:
    """Every user line behind `nodes`: their own and those they were made from."""
    seen: dict[str, None] = {}
    for node in nodes:
        for line in node.provenance + ((node.source,) if node.source else ()):
            seen.setdefault(line, None)
    return tuple(seen)


def provenance(source: str, *replaced: Node) -> tuple:
    """The lines of the replaced nodes that a new node with this `source` does not show."""
    return tuple(line for line in lines_of(*replaced) if line != source)


class Rewriter:
    """Builds the rewritten node list; `make` adds a node a rule creates."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.mapping: dict[int, Any] = {}  # old node id -> its replacement (Node)

    def make(self, op: Any, inputs: tuple, params: dict, replaced: tuple[Node, ...]) -> Node:
        avals = [a.aval if isinstance(a, Node) else aval_of(a) for a in inputs]
        aval = infer_aval(op, avals, params)
        node = Node(
            op,
            tuple(inputs),
            dict(params),
            aval.shape,
            aval.dtype,
            replaced[0].source,
            provenance=provenance(replaced[0].source, *replaced),
            backward=replaced[0].backward,
        )
        self.nodes.append(node)
        return node

    def remap(self, node: Node) -> Node:
        """`node` with its inputs replaced by their rewrites (itself if none changed)."""
        inputs = tuple(self.mapping.get(a.id, a) if isinstance(a, Node) else a for a in node.inputs)
        if all(a is b for a, b in zip(inputs, node.inputs)):
            return node
        return Node(
            node.op,
            inputs,
            node.params,
            node.shape,
            node.dtype,
            node.source,
            node.name,
            node.value,
            provenance=node.provenance,
            backward=node.backward,
        )


def rewrite(graph: Graph, rule: Callable[[Node, Rewriter], Node | None]) -> Graph:
    """Apply `rule` to every op node (inputs already rewritten); None keeps the node."""
    rw = Rewriter()
    for node in graph.nodes:
        current = rw.remap(node)
        replacement = None if current.is_source else rule(current, rw)
        if replacement is None:
            rw.nodes.append(current)
            replacement = current
        rw.mapping[node.id] = replacement
    return rebuilt(graph, rw.nodes, rw.mapping)


def rebuilt(graph: Graph, nodes: list[Node], mapping: dict[int, Node]) -> Graph:
    def get(n: Node) -> Node:
        return mapping.get(n.id, n)

    return Graph(
        [get(n) for n in graph.inputs],
        [get(n) for n in graph.outputs],
        [(get(v), get(x)) for v, x in graph.updates],
        nodes=nodes,
    )
