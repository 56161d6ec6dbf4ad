"""Common-subexpression elimination: two nodes with the same op, the same inputs and the
same params compute the same value; the later one is replaced by the earlier.

    before: %3 = exp(%1); %4 = exp(%1); %5 = add(%3, %4)
    after:  %3 = exp(%1); %5 = add(%3, %3)

Random ops are never merged (two dropout masks must differ); constants merge by value.
"""

from __future__ import annotations

from symbolic.graph import Graph, Node, format_node, numbered
from symbolic.passes.rewrite import Rewriter

SMALL_CONSTANT = 64  # constants up to this many elements are merged by value


def _key(node: Node) -> tuple | None:
    if node.op == "constant":
        if node.value.size > SMALL_CONSTANT:
            return None
        return ("constant", node.dtype.str, node.shape, node.value.tobytes())
    if node.is_source or node.op.stateful or node.op.kind == "control":
        return None
    inputs = tuple(
        ("node", a.id) if isinstance(a, Node) else ("literal", type(a), a) for a in node.inputs
    )
    return (node.op.name, inputs, repr(sorted(node.params.items())))


@numbered
def eliminate_common_subexpressions(graph: Graph) -> tuple[Graph, list[str]]:
    seen: dict[tuple, Node] = {}
    changes: list[str] = []

    def rule(node: Node, rw: Rewriter) -> Node | None:
        key = _key(node)
        if key is None:
            return None
        first = seen.setdefault(key, node)
        if first is node:
            return None
        changes.append(f"merged {format_node(node, pad=0)} into {first.label}")
        return first

    graph = _rewrite_sources_too(graph, rule)
    return graph, changes


def _rewrite_sources_too(graph: Graph, rule) -> Graph:
    """Like `rewrite`, but constants are candidates as well (they are sources)."""
    rw = Rewriter()
    for node in graph.nodes:
        current = rw.remap(node)
        replacement = (
            rule(current, rw) if current.op == "constant" or not current.is_source else None
        )
        if replacement is None:
            rw.nodes.append(current)
            replacement = current
        rw.mapping[node.id] = replacement
    from symbolic.passes.rewrite import rebuilt

    return rebuilt(graph, rw.nodes, rw.mapping)
