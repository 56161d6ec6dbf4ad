"""The stages of a compilation run node by node: `run_graph` runs one stage's graph with the
ops' own kernels as its plan would, `correspond` pairs its nodes with the stage before's, and
`parting` says whether two values part (bit for bit, or within RTOL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common.dispatch import run_kernel
from common.fusion import FusedKernel
from common.methods import ArrayMethods
from symbolic.debug import unfuse
from symbolic.graph import Graph, Node, live_ids

RTOL = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-12}  # times the largest magnitude


# ---- comparing arrays ----------------------------------------------------------------------


def parting(got: Any, want: Any, exact: bool) -> float | None:
    """The largest |got - want| when the two part (None when they agree): bit for bit if
    `exact`, else within RTOL of want's dtype, scaled; NaN and inf must sit in the same places."""
    if got is want:  # a value one stage kept from the stage before
        return None
    if isinstance(want, tuple):  # a control-flow node's values
        parts = [parting(g, w, exact) for g, w in zip(got, want, strict=True)]
        return max((p for p in parts if p is not None), default=None)
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if np.array_equal(got, want):
        return None
    if want.dtype.kind != "f" or exact:
        same = np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")
        return None if same else largest_difference(got, want)
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(want64)
    if not np.array_equal(got64[~finite], want64[~finite], equal_nan=True):
        return float("inf")
    diff = largest_difference(got64[finite], want64[finite])
    scale = float(np.max(np.abs(want64[finite]), initial=0.0)) or 1.0
    return diff if diff > RTOL.get(want.dtype.name, 1e-5) * scale else None


def largest_difference(got: np.ndarray, want: np.ndarray) -> float:
    if got.size == 0:
        return 0.0
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(np.nanmax(diff)) if not np.all(np.isnan(diff)) else float("nan")


def as_numpy(value: Any) -> np.ndarray:
    """A tensor's, symbol's result's or array's values as a numpy array."""
    return np.asarray(value.data if isinstance(value, ArrayMethods) else value)


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


# ---- running a graph node by node ----------------------------------------------------------


@dataclass
class Run:
    """One stage's graph run node by node: `steps` in the order they ran (a fused node as its
    member ops), each step's value as it was computed, and what a fused node stands for."""

    graph: Graph
    steps: list[Node]
    values: dict[int, np.ndarray]  # step id -> its value when computed
    stand_in: dict[int, Node]  # fused node id -> its last member step
    notes: dict[int, str] = field(default_factory=dict)  # step id -> an input found clobbered

    def resolve(self, node: Node) -> Node:
        return self.stand_in.get(node.id, node)

    def value(self, node: Node) -> np.ndarray:
        return self.values[self.resolve(node).id]


def _windows(graph: Graph) -> dict[int, np.ndarray]:
    """Each planned value's window of the flat buffers, as the generated plan makes them."""
    plan = graph.memory
    if plan is None:
        return {}
    flat = [np.empty(size, dtype) for size, dtype in plan.buffers]
    nodes = {n.id: n for n in graph.nodes}
    return {
        i: flat[b][: int(np.prod(nodes[i].shape))].reshape(nodes[i].shape)
        for i, b in plan.assignment.items()
    }


def run_graph(graph: Graph, feeds: list[np.ndarray], before: Run | None = None) -> Run:
    """Run `graph` one node at a time with the ops' own kernels, as its plan would: what the
    outputs need only, fused groups member by member, and values the memory plan places in
    shared buffers written there, so a buffer reused too early shows in the values read.
    A node already run in `before` on the very same input values keeps its value from there."""
    windows = _windows(graph)
    run = Run(graph, list(graph.inputs), dict(zip((n.id for n in graph.inputs), feeds)), {})
    live = dict(run.values)  # what later nodes read: a planned value's window, once written
    earlier = before.values if before is not None and not windows else {}
    needed = live_ids(graph)
    for node in graph.nodes:
        if node.id not in needed or node.id in live:
            continue
        if isinstance(getattr(node.op, "kernel", None), FusedKernel):
            members = unfuse(node, None)
            for step in members:
                live[step.id] = _step(run, step, live, windows, earlier)
            run.stand_in[node.id] = members[-1]
            value = live[members[-1].id]
        else:
            value = _step(run, node, live, windows, earlier)
        window = windows.get(node.id)
        if window is not None:
            window[...] = value  # the plan writes it there (out=), and later reuse may too
            value = window
        live[node.id] = value
    return run


def _step(run: Run, node: Node, live: dict, windows: dict, earlier: dict) -> Any:
    inputs = [a for a in node.inputs if isinstance(a, Node)]
    if node.id in earlier and all(live[a.id] is earlier.get(a.id) for a in inputs):
        value = earlier[node.id]
    elif node.op == "variable":
        value = node.value.data
    elif node.op == "constant":
        value = np.asarray(node.value)
    else:
        args = [live[a.id] if isinstance(a, Node) else a for a in node.inputs]
        if windows:
            _note_clobbered(run, node, live)
        value = run_kernel(node.op, args, node.params)
    run.steps.append(node)
    run.values[node.id] = _copy(value) if windows else value
    return value


def _copy(value: Any) -> Any:
    return tuple(map(_copy, value)) if isinstance(value, tuple) else np.array(value, copy=True)


def _note_clobbered(run: Run, node: Node, live: dict) -> None:
    """An input whose memory changed since it was computed: a later value was written there."""
    for a in node.inputs:
        if isinstance(a, Node) and parting(live[a.id], run.value(a), exact=True) is not None:
            run.notes[node.id] = (
                f"The buffer holding its input {a.label} ({a.op_name}) was overwritten "
                "before this node read it."
            )


# ---- which node of one stage stands for which of the stage before ---------------------------


def _key(node: Node, run: Run, pair: dict[int, Node]) -> tuple | None:
    """What a node computes from which values (its inputs as the earlier stage's nodes)."""
    inputs = []
    for a in node.inputs:
        if not isinstance(a, Node):
            inputs.append(("literal", type(a), a))
        elif run.resolve(a).id in pair:
            inputs.append(("node", pair[run.resolve(a).id].id))
        else:
            return None
    return (node.op_name, tuple(inputs), repr(sorted(node.params.items())))


def correspond(before: Run, after: Run) -> list[tuple[Node, Node]]:
    """(after, before) step pairs that must hold equal values. Bottom up: the same node, or the
    same op on corresponding inputs (a node rebuilt, a fused member, a merge). Top down, for
    nodes a pass made anew: the outputs by position, then the inputs, by position, of a pair
    with one op, where an input of the same type has no partner yet (a folded constant, a
    reordered member); then bottom up again, for what those made reachable."""
    itself = {n.id: n for n in before.steps}
    index: dict[tuple, Node] = {}
    for m in before.steps:
        key = None if m.is_source else _key(m, before, itself)
        if key is not None:
            index.setdefault(key, m)
    pair: dict[int, Node] = {}
    found: list[tuple[Node, Node]] = []

    def bottom_up() -> None:
        for node in after.steps:
            if node.id not in pair:
                key = None if node.is_source or node.id in itself else _key(node, after, pair)
                partner = itself.get(node.id) or index.get(key)
                if partner is not None:
                    pair[node.id] = partner
                    found.append((node, partner))

    bottom_up()
    ends = zip(_ends(after.graph), _ends(before.graph), strict=True)
    queue = [(after.resolve(a), before.resolve(b)) for a, b in ends]
    while queue:
        node, partner = queue.pop()
        if node.id in pair:  # one node for two of the stage before: a merge, checked too
            found.append((node, partner))
            continue
        pair[node.id] = partner
        found.append((node, partner))
        if node.op_name == partner.op_name and len(node.inputs) == len(partner.inputs):
            queue += [
                (after.resolve(a), before.resolve(b))
                for a, b in zip(node.inputs, partner.inputs)
                if isinstance(a, Node)
                and isinstance(b, Node)
                and after.resolve(a).id not in pair
                and (a.shape, a.dtype) == (b.shape, b.dtype)
            ]
    bottom_up()
    order = {n.id: i for i, n in enumerate(after.steps)}
    return sorted(dict.fromkeys(found), key=lambda p: order[p[0].id])


def _ends(graph: Graph) -> list[Node]:
    return list(graph.outputs) + [value for _, value in graph.updates]
