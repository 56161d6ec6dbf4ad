"""The graph IR: small, flat, single-assignment and printable.

    graph   := inputs (placeholders, in feed order), nodes (topological), outputs, updates
    node    := %k = op(arg, ...; params) : dtype[shape]   # file.py:line
    arg     := %k | a Python number (a weak literal)
    sources := placeholder (fed per call) | variable (persistent storage) | constant (baked in)

A node is made once and never changed (passes build new nodes); `Graph` is a view of the
nodes that some outputs and updates need, in an order that respects every edge.

`%k` numbers are local to a graph, or to one compile (its traced graph, then the nodes its
passes make, in the order they are first named), never a process-wide id: the same program
prints the same text in every process, so docs can quote it and caches hit.
"""

from __future__ import annotations

import collections
import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from common.dispatch import ContextStack
from common.ops.core import Aval, OpDef, OpError, result_dtype

SOURCES = ("placeholder", "variable", "constant")
_ids = itertools.count(1)


_recorders = ContextStack("recorders")  # this thread's innermost open recording collects
_backward = ContextStack("backward")  # open while S.grad builds: its nodes are tagged


class BackwardScope:
    """What S.grad is building: `line` is the source of the forward node whose VJP it applies
    now (PyTorch's anomaly mode points at the forward op too), so a gradient node names the
    user's line that made the value it differentiates, not the line that called S.grad."""

    def __init__(self) -> None:
        self.line = ""  # "": no VJP applied yet (the seed): the caller's line stays


def building_backward():
    """Tag every node made inside, in this thread, as part of a backward graph (S.grad's),
    so pictures and reports can set it apart without guessing from source text; the scope
    it opens (a `BackwardScope`) gives the nodes their forward node's line."""
    return _backward.pushed(BackwardScope())


def recording(active: bool = True):
    """Collect every node made inside, in this thread (a traced function's whole graph, used
    or not); `recording(False)` pauses an outer recording (a control-flow body's own nodes)."""
    return _recorders.pushed([] if active else None)


class Numbering:
    """Local numbers `%0, %1, ...` for nodes: those of the graphs it is made from first, in
    their order (bodies after their graph), then any other node when it is first named."""

    def __init__(self, *graphs: Graph) -> None:
        self._numbers: dict[int, int] = {}
        for graph in graphs:
            self.include(graph)

    def include(self, graph: Graph) -> None:
        """Number the graph's nodes not numbered yet, in its order (bodies after it)."""
        for node in nested_nodes(graph):
            self.number(node)

    def number(self, node: Node) -> int:
        return self._numbers.setdefault(node.id, len(self._numbers))

    def label(self, node: Node) -> str:
        return f"%{self.number(node)}"

    def active(self):
        """Name nodes with these numbers inside (pass messages, reports, generated code)."""
        return _numberings.pushed(self)


_numberings = ContextStack("numberings")


def numbering() -> Numbering | None:
    """The numbering in force in this thread (inside a compile, or a graph's printing)."""
    return _numberings.top()


def numbered(graph_pass):
    """A pass (`Graph -> (Graph, changes)`) whose messages name nodes by the compile's
    numbering, or, run on its own, by its graph's; the graph it returns keeps the numbering,
    so printing it agrees with the messages."""

    @functools.wraps(graph_pass)
    def run(graph: Graph, *args: Any, **kwargs: Any):
        numbers = numbering() or graph.numbering or Numbering(graph)
        with numbers.active():
            after, changes = graph_pass(graph, *args, **kwargs)
        numbers.include(after)  # the nodes it made, numbered in schedule order
        after.numbering = after.numbering or numbers
        return after, changes

    return run


def next_id() -> int:
    """Take the next node id: nodes made later have larger ids (subgraph tracing uses it)."""
    return next(_ids)


@dataclass(eq=False)
class Node:
    op: OpDef | str  # an OpDef, or one of SOURCES
    inputs: tuple  # Nodes and Python-number literals, in the op's argument order
    params: dict  # static arguments of the op (axis=..., shape=...)
    shape: tuple | None  # None entries: sizes known only when fed; None: rank unknown too
    dtype: np.dtype
    source: str = ""  # the user's line that created the node: "model.py:12: y = x @ w"
    name: str = ""  # a user-given name (placeholders, variables) or ""
    value: Any = None  # constant: its array; variable: an object whose .data is the storage
    id: int = field(default_factory=lambda: next(_ids))  # creation order (feeds follow it)
    provenance: tuple = ()  # source lines of user ops a pass folded into this node
    backward: bool = field(default_factory=lambda: _backward.top() is not None)  # by S.grad

    def __post_init__(self) -> None:
        if self.backward:
            scope = _backward.top()
            if scope is not None and scope.line:
                self.source = scope.line
        recorder = _recorders.top()
        if recorder is not None:
            recorder.append(self)

    @property
    def op_name(self) -> str:
        return self.op if isinstance(self.op, str) else self.op.name

    @property
    def is_source(self) -> bool:
        return isinstance(self.op, str)

    @property
    def aval(self) -> Aval:
        return Aval(self.shape, self.dtype)

    @property
    def label(self) -> str:
        """`%k`, numbered by the graph being printed or compiled; outside one, `#id` (the
        process-wide creation number, for debugging only)."""
        local = numbering()
        return local.label(self) if local is not None else f"#{self.id}"

    def type_str(self) -> str:
        if self.shape is None:
            return f"{_short_dtype(self.dtype)}[?]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{_short_dtype(self.dtype)}[{dims}]"

    def __repr__(self) -> str:
        return f"<Node {self.label} {self.op_name} : {self.type_str()}>"


def _short_dtype(dtype: Any) -> str:
    dtype = np.dtype(dtype)
    return {"b": "bool", "f": "f", "i": "i", "u": "u"}.get(dtype.kind, dtype.kind) + (
        "" if dtype.kind == "b" else str(8 * dtype.itemsize)
    )


def format_arg(arg: Any) -> str:
    return arg.label if isinstance(arg, Node) else repr(arg)


def format_params(params: dict) -> str:
    return ", ".join(f"{k}={_format_param(v)}" for k, v in params.items())


def _format_param(value: Any) -> str:
    if isinstance(value, Graph):
        return f"<graph of {len(value.nodes)} nodes>"
    return repr(value)


def format_node(node: Node, pad: int = 60) -> str:
    """One line of the dump: `%5 = add(%3, %4) : f32[3, 4]  # model.py:12`."""
    if node.op == "placeholder":
        rhs = f"placeholder({node.name!r})"
    elif node.op == "variable":
        rhs = f"variable({node.name!r})"
    elif node.op == "constant":
        rhs = f"constant({_format_constant(node.value)})"
    else:
        args = ", ".join(format_arg(a) for a in node.inputs)
        params = format_params(node.params)
        rhs = f"{node.op_name}({args}{'; ' + params if params else ''})"
    line = f"{node.label} = {rhs} : {node.type_str()}"
    where = node.source.split(": ", 1)[0] if node.source else ""
    return f"{line:<{pad}}  # {where}" if where else line


def _format_constant(value: Any) -> str:
    array = np.asarray(value)
    if array.size <= 4:
        return np.array2string(array, separator=", ")
    return f"<{array.size} values>"


def ancestors_in_order(roots: list[Node], stop: set[int] = frozenset()) -> list[Node]:
    """Every node the roots depend on, each after its inputs (ties by creation order);
    the walk does not go above nodes whose id is in `stop` (a subgraph's inputs)."""
    order, seen = [], set()
    stack = [(n, False) for n in sorted(roots, key=lambda n: -n.id)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.append((node, True))
        if node.id in stop:
            continue
        parents = [a for a in node.inputs if isinstance(a, Node) and a.id not in seen]
        stack.extend((p, False) for p in sorted(parents, key=lambda n: -n.id))
    return order


def live_ids(graph: Graph) -> set[int]:
    """Ids of the nodes the outputs and updates depend on (inputs always stay)."""
    roots = list(graph.outputs) + [n for pair in graph.updates for n in pair]
    return {n.id for n in ancestors_in_order(roots)} | {n.id for n in graph.inputs}


def body_graphs(node: Node) -> list[Graph]:
    """The subgraphs of a control-flow node (cond's branches, a loop's test and body)."""
    values = [v for p in node.params.values() for v in (p if isinstance(p, tuple) else (p,))]
    return [v.graph for v in values if isinstance(getattr(v, "graph", None), Graph)]


def nested_nodes(graph: Graph) -> list[Node]:
    """The graph's nodes, then its bodies' nodes at any depth, breadth first (a queue, not
    recursion: control flow may nest deeper than Python's recursion limit)."""
    found, queue = [], collections.deque([graph])
    while queue:
        for node in queue.popleft().nodes:
            found.append(node)
            queue.extend(body_graphs(node))
    return found


@dataclass
class Graph:
    """The nodes that `outputs` and `updates` need, topologically ordered."""

    inputs: list[Node]  # placeholders, in the order a call feeds them
    outputs: list[Node]
    updates: list[tuple[Node, Node]] = field(default_factory=list)  # (variable, new value)
    nodes: list[Node] = field(default_factory=list)
    memory: Any = None  # a MemoryPlan, once the memory planner has run
    numbering: Numbering | None = None  # a compile's numbering, shared by all its stages

    def __post_init__(self) -> None:
        if not self.nodes:
            roots = list(self.outputs) + [v for pair in self.updates for v in pair]
            self.nodes = ancestors_in_order(roots + list(self.inputs), {n.id for n in self.inputs})

    @staticmethod
    def traced(inputs: list[Node], outputs: list[Node], updates: list, recorded: list) -> Graph:
        """What a traced function built: the nodes its outputs need, plus everything else it
        made (dead code, for the passes to find), in creation order, a topological one."""
        needed = Graph(inputs, outputs, updates).nodes
        extra = [n for n in recorded if n.op != "placeholder" or n in inputs]
        unique = {n.id: n for n in needed + extra}
        return Graph(inputs, outputs, updates, nodes=[unique[i] for i in sorted(unique)])

    @property
    def variables(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "variable"]

    @property
    def constants(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "constant"]

    @property
    def ops(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_source]

    def __str__(self) -> str:
        with (self.numbering or numbering() or Numbering(self)).active():
            return self._text()

    def _text(self) -> str:
        lines = [f"graph({', '.join(format_arg(n) for n in self.inputs)}) {{"]
        lines += [f"  {format_node(n)}" for n in self.nodes]
        lines.append(f"  return {', '.join(format_arg(n) for n in self.outputs)}")
        for var, value in self.updates:
            lines.append(f"  update {var.label} ({var.name}) <- {value.label}")
        return "\n".join(lines + ["}"])

    def to_networkx(self) -> nx.MultiDiGraph:
        """The graph for analysis: nodes keyed by id with op, shape, dtype and source;
        an edge per use, keyed by the argument position."""
        g = nx.MultiDiGraph()
        for n in self.nodes:
            g.add_node(
                n.id, op=n.op_name, shape=n.shape, dtype=str(n.dtype), source=n.source, name=n.name
            )
            for pos, a in enumerate(n.inputs):
                if isinstance(a, Node):
                    g.add_edge(a.id, n.id, key=pos)
        for var, value in self.updates:
            g.add_edge(value.id, var.id, key="update")
        return g


def infer_aval(op: Any, avals: list[Aval], params: dict) -> Aval:
    """The op's shape rule, or, with an input of unknown rank, only its dtype."""
    if all(a.weak or a.shape is not None or a.dtype == object for a in avals):  # tuples
        return op.abstract(*avals, **params)
    scalars = [Aval((), a.dtype, a.weak) for a in avals]
    try:
        dtype = op.abstract(*scalars, **params).dtype
    except OpError:
        dtype = result_dtype(*avals)
    return Aval(None, dtype)
