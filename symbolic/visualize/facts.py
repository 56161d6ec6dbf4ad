"""What a graph picture shows, read off the graph: the stages of a compiled function, the
regions of a training graph, what each output is, the bodies of control flow and what their
inputs take, and the short titles nodes are drawn with."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import style
from symbolic.gradients import gradient_of
from symbolic.graph import Graph, Node, ancestors_in_order

STAGES = ("traced", "optimized", "both")
BRANCHES = {"cond": ("true", "false")}  # a control op's tuple of bodies, named by its role


def stages_of(obj: Any, stage: str | None) -> list[tuple[str, Graph, Graph]]:
    """(title, graph, traced graph) triples: a Graph or symbols as they are, a compiled
    function's stage (its traced graph says what the outputs are: passes keep their order)."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}.")
    if hasattr(obj, "traced_graph"):  # a CompiledFunction
        stage = stage or "optimized"
        traced = obj.traced_graph
        pairs = [("traced", traced, traced), ("optimized", obj.graph, traced)]
        return pairs if stage == "both" else [p for p in pairs if p[0] == stage]
    if stage == "both":
        raise ValueError(
            "stage='both' needs a compiled function (before and after the "
            "passes). Fix: render S.compile(...) instead of a graph."
        )
    if not isinstance(obj, Graph):
        symbols = obj if isinstance(obj, (list, tuple)) else [obj]
        obj = Graph([], [s.node for s in symbols])
    return [("graph", obj, obj)]


def regions_of(graph: Graph) -> dict[int, str]:
    """'forward', 'backward' (built by S.grad, which tags its nodes) or 'update' (needed
    only by the updates) per node."""
    ops = {n.id for n in graph.nodes if n.op not in ("placeholder", "variable")}
    backward = {n.id for n in graph.nodes if n.id in ops and n.backward}
    for_outputs = {n.id for n in ancestors_in_order(list(graph.outputs))}
    for_updates = {n.id for n in ancestors_in_order([v for _, v in graph.updates])}
    regions = {}
    for n in graph.nodes:
        if n.id in backward:
            regions[n.id] = "backward"
        elif n.id in ops and n.id in for_updates and n.id not in for_outputs:
            regions[n.id] = "update"
        else:
            regions[n.id] = "forward"
    return regions


REGIONS = {
    "backward": ("backward: built by S.grad", style.BACKWARD),
    "update": ("update: new values of the variables", style.UPDATE),
}


def output_names(traced: Graph) -> list[str]:
    """What each output is, where S.grad made it: 'grad of layers.0.weight' ("" else)."""
    return [
        " = ".join(f"grad of {x.name or op_title(x)}" for x in gradient_of(n))
        for n in traced.outputs
    ]


def fused_program(node: Node) -> Any:
    """The Program of a fused node (None for other nodes)."""
    if node.is_source or not node.op.name.startswith("fused_"):
        return None
    return getattr(getattr(node.op, "kernel", None), "program", None)


def bodies_of(node: Node) -> list[tuple[str, Graph]]:
    """The subgraphs a control-flow node runs, named by their role: cond's 'true' and
    'false' branches, a loop's 'test' and 'body'."""
    found = []
    for key, value in node.params.items():
        parts = value if isinstance(value, tuple) else (value,)
        names = BRANCHES.get(node.op_name, ()) if len(parts) > 1 else (key,)
        for i, part in enumerate(parts):
            if isinstance(getattr(part, "graph", None), Graph):
                found.append((names[i] if i < len(names) else f"{key} {i}", part.graph))
    return found


def stands_for(node: Node, body: Graph, outer: dict[int, str]) -> tuple[dict, dict]:
    """What each input of a body takes from its control node: a carry starts as an outer
    value, a scanned sequence gives one slice per step (both drawn in the body, saying so);
    a value passed as it is (a captured weight, a cond operand) is the outer drawing."""
    offset = 1 if node.op_name == "cond" else 0  # cond's first input is its predicate
    n_carry, n_xs = node.params.get("n_carry", 0), node.params.get("n_xs", 0)
    if node.op_name == "cond":
        n_carry = n_xs = 0  # its operands are passed as they are
    found, drawn_outside = {}, {}
    for i, inner in enumerate(body.inputs):
        outer_node = node.inputs[offset + i] if offset + i < len(node.inputs) else None
        if not isinstance(outer_node, Node):
            continue
        if i >= n_carry + n_xs:
            if outer_node.id in outer:
                drawn_outside[inner.id] = outer[outer_node.id]
            elif outer_node is not inner:
                found[inner.id] = f"= {cut(title(outer_node), 20)}"
        elif outer_node is not inner:
            text = cut(title(outer_node), 20)
            found[inner.id] = f"starts as {text}" if i < n_carry else f"= {text}[t]"
    return found, drawn_outside


def title(node: Node) -> str:
    return source_title(node) or op_title(node)


def op_title(node: Node) -> str:
    """The op's name; a fused op's name holds a global counter, so it is not shown."""
    return "fused kernel" if fused_program(node) is not None else node.op_name


def source_title(node: Node) -> str:
    return (node.name or constant_title(node)) if node.is_source else ""


def constant_title(node: Node) -> str:
    value = np.asarray(node.value) if node.value is not None else None
    if value is not None and value.size == 1:
        return style.literal(value.reshape(()).item())
    return "constant"


def count(n: int, what: str) -> str:
    """`1 op`, `3 ops`."""
    return f"{n} {what}" + ("" if n == 1 else "s")


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
