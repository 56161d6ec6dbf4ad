"""Memory planning: a lifetime analysis over the schedule. Intermediates get buffers from a
pool, allocated once per compiled function and reused by later values once dead; an
elementwise op writes in place into an input that dies at that op.

    %5 = add(%3, %4)  -> buffer 0 (first use 2, last use 5)
    %6 = tanh(%5)     -> in place into %5's buffer: %5 dies here
    %7 = matmul(..)   -> buffer 0 again once %6 is dead

Views (`OpDef.view`) share their source's storage: a buffer lives as long as any view of it.
Every other op's output owns its memory (control-flow kernels copy what a body passes through;
tests/common/test_ops_registry.py checks each op), so no other aliasing is tracked. Outputs,
and values that alias a caller's array (placeholders) or a variable, never get a buffer: what
a call returns is never overwritten by a later call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symbolic.graph import Graph, Node, numbered


@dataclass
class MemoryPlan:
    buffers: list[tuple[int, str]]  # (elements, dtype) of each flat buffer, allocated once
    assignment: dict[int, int]  # node id -> the buffer its kernel writes into (out=)
    lifetimes: dict[int, tuple[int, int]]  # node id -> (defined at, last read at) positions
    in_place: dict[int, int] = field(default_factory=dict)  # node id -> input id it overwrote
    refused: list[tuple] = field(default_factory=list)  # (node, input or None, reason)
    intermediate_bytes: int = 0  # what the plannable values would take without reuse

    @property
    def planned_bytes(self) -> int:
        return sum(size * np.dtype(d).itemsize for size, d in self.buffers)

    def summary(self) -> str:
        return (
            f"{len(self.assignment)} values in {len(self.buffers)} buffers: "
            f"{self.planned_bytes / 1e6:.2f} MB planned for "
            f"{self.intermediate_bytes / 1e6:.2f} MB of intermediates; "
            f"{len(self.in_place)} in place"
        )


def _nbytes(node: Node) -> int:
    return int(np.prod(node.shape)) * node.dtype.itemsize


def storage_roots(graph: Graph) -> dict[int, Node]:
    """The node that owns each value's memory (a view's source, followed to the end)."""
    root: dict[int, Node] = {}
    for node in graph.nodes:
        source = (
            node.inputs[0]
            if (
                not node.is_source
                and node.op.view
                and node.inputs
                and isinstance(node.inputs[0], Node)
            )
            else None
        )
        root[node.id] = root.get(source.id, source) if source is not None else node
    return root


def lifetimes(graph: Graph, root: dict[int, Node]) -> dict[int, tuple[int, int]]:
    """(definition, last read) per storage root, counting reads through views; values
    that must outlive the call (outputs, updates) live to the end."""
    end = len(graph.nodes)
    span = {n.id: (i, i) for i, n in enumerate(graph.nodes)}
    for pos, node in enumerate(graph.nodes):
        for a in node.inputs:
            if isinstance(a, Node):
                owner = root[a.id].id
                span[owner] = (span[owner][0], max(span[owner][1], pos))
    for n in list(graph.outputs) + [v for pair in graph.updates for v in pair]:
        owner = root[n.id].id
        span[owner] = (span[owner][0], end)
    return span


def transposed_layouts(graph: Graph) -> set[int]:
    """Values whose memory order numpy derives from a transposed view: a permute, and what
    views, elementwise ops and reductions make of one (numpy keeps its inputs' order). A C-order
    buffer would change the layout later ops read (a pooling max over a channels-first
    copy ran 4.7x slower than over numpy's channels-last result, on lenet_digits)."""
    found: set[int] = set()
    for node in graph.nodes:
        if node.is_source:
            continue
        fed = any(isinstance(a, Node) and a.id in found for a in node.inputs)
        if node.op.name == "permute" or (
            fed and (node.op.view or node.op.kind in ("elementwise", "reduction"))
        ):
            found.add(node.id)
    return found


def _plannable(node: Node, escaping: set[int]) -> bool:
    return (
        not node.is_source
        and node.op.writes_out
        and node.shape is not None
        and None not in node.shape
        and node.id not in escaping
    )


def _in_place_candidate(
    node: Node, pos: int, plan: MemoryPlan, span: dict, root: dict, schedule: list[Node]
) -> int | None:
    """An input whose buffer this elementwise node may overwrite, recording refusals."""
    if node.op.kind != "elementwise":
        return None
    if not getattr(node.op.kernel, "writes_in_place_well", True):
        plan.refused.append((node.id, None, "a fused kernel runs 7-10x slower in place"))
        return None
    for a in node.inputs:
        if not isinstance(a, Node):
            continue
        owner = root[a.id]
        if owner.id not in plan.assignment:
            reason = (
                f"input is a caller's array ({owner.op_name})"
                if owner.is_source
                else "input has no planned buffer"
            )
        elif owner is not a:
            reason = f"input is a view ({a.op_name}) of {owner.label}"
        elif a.shape != node.shape or a.dtype != node.dtype:
            reason = "input differs in shape or dtype"
        elif span[owner.id][1] != pos:
            last = span[owner.id][1]
            later = schedule[last] if last < len(schedule) else None
            by = f"{later.label} {later.op_name}" if later is not None else "the caller"
            reason = f"input still read at step {last} (by {by})"
        elif any(isinstance(b, Node) and b is not a and root[b.id] is owner for b in node.inputs):
            reason = f"another input is a view of {owner.label}"  # it would read overwritten data
        else:
            return owner.id
        plan.refused.append((node.id, a.id, reason))
    return None


def _take(pool: list[int], plan: MemoryPlan, node: Node) -> int:
    """A dead buffer of the dtype: the smallest that fits, else the largest, grown to fit
    (sizes are only numbers until the plan is built); a new one if none is free."""
    size = int(np.prod(node.shape))
    if not pool:
        plan.buffers.append((size, node.dtype.name))
        return len(plan.buffers) - 1
    fitting = [b for b in pool if plan.buffers[b][0] >= size]
    buffer = (
        min(fitting, key=lambda b: plan.buffers[b][0])
        if fitting
        else max(pool, key=lambda b: plan.buffers[b][0])
    )
    pool.remove(buffer)
    plan.buffers[buffer] = (max(size, plan.buffers[buffer][0]), node.dtype.name)
    return buffer


@numbered
def plan_memory(graph: Graph) -> tuple[Graph, list[str]]:
    root = storage_roots(graph)
    span = lifetimes(graph, root)
    escaping = {root[n.id].id for n in graph.outputs}  # returned arrays stay fresh
    escaping |= transposed_layouts(graph)  # and numpy picks their memory order
    plan = MemoryPlan([], {}, {})
    free: dict[str, list[int]] = {}  # dtype -> flat buffers whose values are dead
    releases: dict[int, list[int]] = {}  # position -> buffers freed after it
    for pos, node in enumerate(graph.nodes):
        for buffer in releases.pop(pos - 1, []):
            free.setdefault(plan.buffers[buffer][1], []).append(buffer)
        if not _plannable(node, escaping):
            continue
        plan.intermediate_bytes += _nbytes(node)
        plan.lifetimes[node.id] = span[node.id]
        victim = _in_place_candidate(node, pos, plan, span, root, graph.nodes)
        if victim is not None:
            buffer = plan.assignment[victim]
            plan.in_place[node.id] = victim
            releases[pos] = [b for b in releases.get(pos, []) if b != buffer]
        else:
            buffer = _take(free.get(node.dtype.name, []), plan, node)
        plan.assignment[node.id] = buffer
        releases.setdefault(span[node.id][1], []).append(buffer)
    graph = Graph(graph.inputs, graph.outputs, graph.updates, nodes=graph.nodes)
    graph.memory = plan
    by_id = {n.id: n for n in graph.nodes}
    changes = [plan.summary()] + [
        f"{by_id[n].label} writes in place into {by_id[v].label}" for n, v in plan.in_place.items()
    ]
    return graph, changes + _refusals(plan, by_id)


def _refusals(plan: MemoryPlan, by_id: dict[int, Node]) -> list[str]:
    """Why each elementwise op kept from writing in place did not (one line per input)."""
    lines = []
    for node_id, input_id, reason in plan.refused:
        node = by_id[node_id]
        over = f" over {by_id[input_id].label}" if input_id is not None else ""
        lines.append(f"{node.label} {node.op_name} not in place{over}: {reason}")
    return list(dict.fromkeys(lines))  # x * x: one line for both reads of x
