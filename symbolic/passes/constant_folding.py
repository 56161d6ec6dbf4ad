"""Constant folding: an op whose inputs are all constants is computed now, at compile time,
with the same kernel, and becomes a constant.

    before: %1 = constant(2.0); %2 = exp(%1); %3 = mul(%x, %2)
    after:  %4 = constant(7.389056); %3 = mul(%x, %4)
"""

from __future__ import annotations

import math

import numpy as np

from common.dispatch import run_kernel
from symbolic.graph import Graph, Node, format_node, numbered
from symbolic.passes.rewrite import Rewriter, provenance, rewrite

MAX_GROWTH_BYTES = 1 << 22  # don't bake in a result above 4 MB that is larger than its inputs


def _foldable(node: Node) -> bool:
    if node.op.stateful or node.op.kind == "control":
        return False
    return all(not isinstance(a, Node) or a.op == "constant" for a in node.inputs)


def _declared_bytes(node: Node) -> int:
    """The size the node's shape rule promises (0 when a size is unknown until run time)."""
    if node.shape is None or None in node.shape:
        return 0
    return math.prod(node.shape) * node.dtype.itemsize


@numbered
def fold_constants(graph: Graph) -> tuple[Graph, list[str]]:
    changes: list[str] = []

    def rule(node: Node, rw: Rewriter) -> Node | None:
        if not _foldable(node):
            return None
        arrays = [a.value if isinstance(a, Node) else a for a in node.inputs]
        limit = max(MAX_GROWTH_BYTES, sum(np.asarray(a).nbytes for a in arrays))
        if _declared_bytes(node) > limit:  # refused before the kernel allocates it
            return None
        try:
            value = np.asarray(run_kernel(node.op, arrays, node.params))
        except Exception:  # noqa: BLE001 (left for run time, where the error names the line)
            return None
        if value.nbytes > limit:
            return None
        value = value.copy() if value.base is not None else value  # never a view of an input
        value.flags.writeable = False
        folded = Node(
            "constant",
            (),
            {},
            value.shape,
            value.dtype,
            node.source,
            value=value,
            provenance=provenance(
                node.source, node, *[a for a in node.inputs if isinstance(a, Node)]
            ),
            backward=node.backward,
        )
        rw.nodes.append(folded)
        changes.append(f"folded {format_node(node, pad=0)} into {folded.label}")
        return folded

    return rewrite(graph, rule), changes
