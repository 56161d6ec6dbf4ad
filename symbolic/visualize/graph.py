"""One graph as a picture (Graphviz): clusters, regions, fused kernels, control-flow bodies."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable

import graphviz
import numpy as np

from common import style
from common.ops import OPS
from symbolic.graph import Graph, Node, ancestors_in_order

STAGES = ("traced", "optimized", "both")


# ---- what to draw ------------------------------------------------------------------------


def stages_of(obj: Any, stage: str | None) -> list[tuple[str, Graph]]:
    """(title, graph) pairs: a Graph or symbols as they are, a compiled function's stage."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}.")
    if hasattr(obj, "traced_graph"):  # a CompiledFunction
        stage = stage or "optimized"
        pairs = [("traced", obj.traced_graph), ("optimized", obj.graph)]
        return pairs if stage == "both" else [p for p in pairs if p[0] == stage]
    if stage == "both":
        raise ValueError(
            "stage='both' needs a compiled function (before and after the "
            "passes). Fix: render S.compile(...) instead of a graph."
        )
    if isinstance(obj, Graph):
        return [("graph", obj)]
    symbols = obj if isinstance(obj, (list, tuple)) else [obj]
    return [("graph", Graph([], [s.node for s in symbols]))]


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


def fused_program(node: Node) -> Any:
    """The Program of a fused node (None for other nodes)."""
    if node.is_source or not node.op.name.startswith("fused_"):
        return None
    return getattr(getattr(node.op, "kernel", None), "program", None)


def bodies_of(node: Node) -> list[tuple[str, Graph]]:
    """The subgraphs a control-flow node runs, named by their parameter."""
    found = []
    for key, value in node.params.items():
        parts = value if isinstance(value, tuple) else (value,)
        for i, part in enumerate(parts):
            if isinstance(getattr(part, "graph", None), Graph):
                found.append((key if len(parts) == 1 else f"{key} {i}", part.graph))
    return found


# ---- the canvas: clusters of nodes, then edges --------------------------------------------


@dataclass
class _Cluster:
    name: str
    attrs: dict
    nodes: list = field(default_factory=list)
    children: dict = field(default_factory=dict)
    row: list = field(default_factory=list)  # nodes kept side by side, in this order

    def child(self, name: str, attrs: dict) -> _Cluster:
        if name not in self.children:
            self.children[name] = _Cluster(name, attrs)
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


class _Canvas:
    def __init__(self, max_nodes: int) -> None:
        self.root = _Cluster("", {})
        self.edges: list[tuple[str, str, dict]] = []
        self.max_nodes = max_nodes
        self.drawn = 0
        self.skipped = 0
        self.legend: set[str] = set()

    def fits(self, count: int) -> bool:
        if self.drawn + count > self.max_nodes:
            self.skipped += count
            return False
        self.drawn += count
        return True

    def digraph(self, title: str = "") -> graphviz.Digraph:
        dot = graphviz.Digraph(
            graph_attr={**style.GRAPH_ATTRS, "compound": "true"},
            node_attr=dict(style.NODE_ATTRS),
            edge_attr=style.EDGE_ATTRS,
        )
        if title:
            dot.attr(label=style.html_label(title, bold=False))
        self.root.emit(dot)
        for tail, head, attrs in self.edges:
            dot.edge(tail, head, **attrs)
        if self.legend:
            keys = [k for k in style.LEGEND_TEXT if k in self.legend]
            dot.node("legend", label=style.legend_label(keys), **style.LEGEND_NODE)
        if self.skipped:
            dot.node(
                "note",
                shape="note",
                style="filled",
                fillcolor="#fef9c3",
                color="#a16207",
                label=f"showing {self.drawn} of {self.drawn + self.skipped} nodes "
                f"(max_nodes={self.max_nodes}).\\nPass collapse=True, or a larger "
                "max_nodes, to see them all.",
            )
        return dot


# ---- one graph --------------------------------------------------------------------------


def _value_tooltip(node: Node, memory: Any) -> str:
    made = ["made by a pass from:", *node.provenance] if node.provenance else []
    where = []
    if memory is not None and node.id in memory.assignment:
        into = memory.in_place.get(node.id)
        where.append(f"buffer {memory.assignment[node.id]}" + (" (in place)" if into else ""))
    return style.tooltip(
        f"{_op_title(node)} : {style.type_label(node.shape, node.dtype)}",
        node.source,
        *made,
        *where,
    )


class _Drawing:
    """Draws one graph onto a canvas, inside `cluster`, naming nodes `{prefix}n{position}`."""

    def __init__(
        self,
        canvas: _Canvas,
        prefix: str = "",
        collapse: Any = False,
        highlight: Callable[[Node], bool] | None = None,
        added: Any = (),
    ) -> None:
        self.canvas, self.prefix, self.collapse = canvas, prefix, collapse
        self.highlight, self.added = highlight, added  # added: ids outlined as new
        self.output_word = "output"  # a body's results are what it returns
        self.stands_for: dict[int, str] = {}  # a body's inputs: the outer values they take
        self.out: dict[int, str] = {}  # node id -> the drawn node holding its value
        self.fused = 0
        self.edges_seen: set = set()
        self.groups_drawn: set[str] = set()

    def draw(self, graph: Graph, cluster: _Cluster) -> None:
        self.graph, self.memory = graph, graph.memory
        regions = regions_of(graph)
        outputs: dict[int, list[int]] = {}
        for i, n in enumerate(graph.outputs):
            outputs.setdefault(n.id, []).append(i)
        groups = self._groups(graph, regions) if self.collapse else {}
        for pos, node in enumerate(graph.nodes):
            place = cluster
            if regions[node.id] in REGIONS:
                title, attrs = REGIONS[regions[node.id]]
                place = cluster.child(
                    f"cluster_{self.prefix}{regions[node.id]}",
                    {**attrs, "label": title, "fontcolor": "#57534e"},
                )
            name = f"{self.prefix}n{pos}"
            if node.id in groups:
                self._collapsed(node, groups[node.id], place)
            elif fused_program(node) is not None and not self.collapse:
                self._fused(node, name, place, outputs.get(node.id))
            else:
                self._node(node, name, place, outputs.get(node.id))
        if self.output_word == "output":  # a body's inputs are many: left to dot
            cluster.row = [self.out[n.id] for n in graph.inputs if n.id in self.out]
        for k, (var, value) in enumerate(graph.updates):
            self._update(k, var, value, cluster, regions)

    def _update(self, k: int, var: Node, value: Node, cluster: _Cluster, regions: dict) -> None:
        """An update: the variable drawn again where its new value is written (an edge back
        to the variable's first drawing would cross the whole picture)."""
        if value.id not in self.out or not self.canvas.fits(1):
            return
        region = regions[value.id]
        place = cluster.children.get(f"cluster_{self.prefix}{region}", cluster)
        name = f"{self.prefix}u{k}"
        place.nodes.append(
            (
                name,
                {
                    **style.source_attrs("variable"),
                    **style.ASSIGN,
                    "label": style.html_label(var.name, "← updated after the call"),
                    "tooltip": style.tooltip(
                        f"update of variable {var.name} {style.type_label(var.shape, var.dtype)}",
                        value.source,
                    ),
                },
            )
        )
        self.edge(self.out[value.id], name, {**style.UPDATE_EDGE, "label": "update"})

    # -- nodes --
    def _node(self, node: Node, name: str, place: _Cluster, outputs: list | None) -> None:
        bodies = [] if self.collapse else bodies_of(node)
        if not self.canvas.fits(1):
            return
        attrs = self._attrs(node, outputs)
        place.nodes.append((name, attrs))
        self.out[node.id] = name
        self._inputs(node, name)
        for k, (key, body) in enumerate(bodies):
            self._body(node, name, key, body, f"{name}b{k}_", place)

    def _attrs(self, node: Node, outputs: list | None) -> dict:
        if node.is_source:
            self.canvas.legend.add(node.op)
            attrs = style.source_attrs(node.op)
            label = [
                node.name or _constant_title(node),
                style.type_label(node.shape, node.dtype),
                self.stands_for.get(node.id, ""),
            ]
        else:
            detail = style.op_detail(node.inputs, node.params, lambda a: isinstance(a, Node))
            attrs, label = self._op_look(node.op.kind, _op_title(node), detail)
        attrs = self._finish(attrs, label, node.shape, node.dtype, outputs)
        attrs["tooltip"] = _value_tooltip(node, self.memory)
        if node.id in self.added:
            attrs.update(style.ADDED)
        if self.highlight is not None and self.highlight(node):
            attrs.update(style.HIGHLIGHT)
        return attrs

    def _op_look(self, kind: str, name: str, detail: str) -> tuple[dict, list]:
        self.canvas.legend.add(kind)
        return style.op_attrs(kind), [name, detail]

    def _finish(
        self, attrs: dict, label: list, shape: Any, dtype: Any, outputs: list | None
    ) -> dict:
        if outputs is not None:
            self.canvas.legend.add("output")
            label.append(
                f"{self.output_word} {', '.join(map(str, outputs))} : "
                f"{style.type_label(shape, dtype)}"
            )
            attrs.update(style.OUTPUT)
        attrs["label"] = style.html_label(*label)
        return attrs

    def _inputs(self, node: Node, name: str) -> None:
        for position, a in enumerate(node.inputs):
            if isinstance(a, Node) and a.id in self.out:
                self.edge(
                    self.out[a.id], name, {"label": style.type_label(a.shape, a.dtype)}, position
                )

    def edge(self, tail: str, head: str, attrs: dict, position: int | None = None) -> None:
        """An edge, drawn once per (tail, head, label), or per argument `position` (x * x
        has two edges from x)."""
        key = (tail, head, attrs.get("label"), position)
        if tail != head and key not in self.edges_seen:
            self.edges_seen.add(key)
            self.canvas.edges.append((tail, head, attrs))

    def _fused(self, node: Node, name: str, place: _Cluster, outputs: list | None) -> None:
        """A fused kernel: its member ops (rebuilt from the program) inside a cluster."""
        program = fused_program(node)
        if not self.canvas.fits(len(program.steps)):
            return
        expression = program.expression()
        self.canvas.legend.add("fused")
        box = place.child(
            f"cluster_{self.prefix}fused{self.fused}",
            {
                **style.FUSED,
                "tooltip": style.tooltip("fused kernel", expression, node.source),
                "label": style.html_label(f"fused kernel {self.fused}", *style.wrap(expression)),
            },
        )
        self.fused += 1
        shape = program.shape
        for j, step in enumerate(program.steps):
            args = tuple(a[1] if a[0] == "lit" else node for a in step.args)
            detail = style.op_detail(args, dict(step.params), lambda a: a is node)
            attrs, label = self._op_look(OPS[step.op].kind, step.op, detail)
            last = j == len(program.steps) - 1
            attrs = self._finish(attrs, label, shape, step.dtype, outputs if last else None)
            attrs["tooltip"] = (
                _value_tooltip(node, self.memory)
                if last
                else style.tooltip(f"{step.op} inside fused kernel {self.fused - 1}", expression)
            )
            if last and node.id in self.added:
                attrs.update(style.ADDED)
            box.nodes.append((f"{name}s{j}", attrs))
            for position, (kind, index) in enumerate(a[:2] for a in step.args):
                if kind == "t":
                    label = style.type_label(shape, program.steps[index].dtype)
                    # heavy: dot keeps a kernel's steps together, not stretched apart
                    self.edge(
                        f"{name}s{index}", f"{name}s{j}", {"label": label, "weight": "8"}, position
                    )
                elif kind == "in" and node.inputs[index].id in self.out:  # x0 as in the text
                    a = node.inputs[index]
                    self.edge(
                        self.out[a.id],
                        f"{name}s{j}",
                        {"label": f"x{index}: {style.type_label(a.shape, a.dtype)}"},
                        position,
                    )
        self.out[node.id] = f"{name}s{len(program.steps) - 1}"

    def _body(
        self, node: Node, name: str, key: str, body: Graph, prefix: str, place: _Cluster
    ) -> None:
        """A control-flow body: its own graph in a cluster, feeding its control node."""
        if self.canvas.drawn + len(body.nodes) > self.canvas.max_nodes:
            self.canvas.skipped += len(body.nodes)
            return
        steps = ""
        if node.op_name == "scan" and node.params.get("n_xs"):
            xs = node.inputs[node.params["n_carry"]]
            steps = f", run {xs.shape[0]} times" if xs.shape else ""
        cluster = place.child(
            f"cluster_{prefix}body",
            {**style.BODY, "label": f"{node.op_name} {key}{steps}", "fontcolor": "#0369a1"},
        )
        inner = _Drawing(self.canvas, prefix, highlight=self.highlight)
        inner.output_word = "returns"
        inner.stands_for = _stands_for(node, body)
        inner.draw(body, cluster)
        if body.outputs and body.outputs[0].id in inner.out:
            self.edge(
                inner.out[body.outputs[0].id],
                name,
                {**style.BODY_EDGE, "ltail": f"cluster_{prefix}body", "label": key},
            )

    def _groups(self, graph: Graph, regions: dict[int, str]) -> dict[int, tuple]:
        """collapse: ops grouped by source line (a module called on one line is one box),
        or by `collapse(node)` when it is a function; groups of one are left alone."""
        key_of = (
            self.collapse if callable(self.collapse) else (lambda n: style.where(n.source) or None)
        )
        members: dict[tuple, list[Node]] = {}
        for n in graph.nodes:
            key = None if n.is_source else key_of(n)
            if key is not None:
                members.setdefault((regions[n.id], key), []).append(n)
        groups = {}
        for k, (key, nodes) in enumerate(members.items()):
            if len(nodes) > 1:
                groups.update((n.id, (f"{self.prefix}c{k}", key[1], nodes)) for n in nodes)
        return groups

    def _collapsed(self, node: Node, group: tuple, place: _Cluster) -> None:
        name, key, members = group
        if node is members[0]:
            if not self.canvas.fits(1):
                return
            counts: dict[str, int] = {}
            for m in members:
                counts[_op_title(m)] = counts.get(_op_title(m), 0) + 1
            summary = ", ".join(f"{op} ×{c}" if c > 1 else op for op, c in counts.items())
            code = style.code(node.source)
            self.canvas.legend.add("collapsed")
            place.nodes.append(
                (
                    name,
                    {
                        **style.COLLAPSED,
                        "label": style.html_label(
                            key, _cut(code, 40), _cut(f"{len(members)} ops: {summary}", 64)
                        ),
                        "tooltip": style.tooltip(
                            node.source, *(f"{_op_title(m)} : {m.type_str()}" for m in members)
                        ),
                    },
                )
            )
            self.groups_drawn.add(name)
        if name not in self.groups_drawn:
            return
        self.out[node.id] = name
        for a in node.inputs:
            if isinstance(a, Node) and a.id in self.out and self.out[a.id] != name:
                self.edge(self.out[a.id], name, {"label": style.type_label(a.shape, a.dtype)})


def _stands_for(node: Node, body: Graph) -> dict[int, str]:
    """What each input of a body takes from its control node: a carry starts as an outer
    value, a scanned sequence gives one slice per step, a cond operand is passed as is."""
    offset = 1 if node.op_name == "cond" else 0  # cond's first input is its predicate
    n_carry, n_xs = node.params.get("n_carry", 0), node.params.get("n_xs", 0)
    found = {}
    for i, inner in enumerate(body.inputs):
        outer = node.inputs[offset + i] if offset + i < len(node.inputs) else None
        if not isinstance(outer, Node) or outer is inner:  # a captured value: itself
            continue
        text = _cut(
            outer.name or _constant_title(outer) if outer.is_source else _op_title(outer), 20
        )
        found[inner.id] = (
            f"starts as {text}"
            if i < n_carry
            else f"= {text}[t]"
            if i < n_carry + n_xs
            else f"= {text}"
        )
    return found


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _op_title(node: Node) -> str:
    """The op's name; a fused op's name holds a global counter, so it is not shown."""
    return "fused kernel" if fused_program(node) is not None else node.op_name


def _constant_title(node: Node) -> str:
    value = np.asarray(node.value) if node.value is not None else None
    if value is not None and value.size == 1:
        return style.literal(value.reshape(()).item())
    return "constant"


# ---- public: DOT text, files, notebooks -------------------------------------------------


def digraph(
    obj: Any,
    stage: str | None = None,
    collapse: Any = False,
    max_nodes: int = style.MAX_NODES,
    highlight: Callable[[Node], bool] | None = None,
    title: str | None = None,
) -> graphviz.Digraph:
    """The picture as a graphviz.Digraph (see `to_dot`)."""
    canvas = _Canvas(max_nodes)
    pairs = stages_of(obj, stage)
    for title_, graph in pairs:
        cluster = canvas.root
        if len(pairs) > 1:
            cluster = canvas.root.child(
                f"cluster_stage_{title_}",
                {**style.STAGE, "label": _summary(title_, graph), "fontsize": "14"},
            )
        prefix = f"{title_[0]}_" if len(pairs) > 1 else ""
        _Drawing(canvas, prefix, collapse, highlight).draw(graph, cluster)
    if title is None and len(pairs) == 1:
        title = _summary(*pairs[0])
    return canvas.digraph(title or "")


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _summary(title: str, graph: Graph) -> str:
    fused = sum(fused_program(n) is not None for n in graph.nodes)
    return (
        f"{title}: {_count(len(graph.nodes), 'node')}, {_count(len(graph.ops), 'op')}"
        + (f", {_count(fused, 'fused kernel')}" if fused else "")
        + (f", {_count(len(graph.updates), 'update')}" if graph.updates else "")
    )


def to_dot(
    obj: Any,
    stage: str | None = None,
    collapse: Any = False,
    max_nodes: int = style.MAX_NODES,
    **options: Any,
) -> str:
    """DOT source of a Graph, a CompiledFunction (stage 'traced', 'optimized' (default) or
    'both', side by side) or symbols. `collapse=True` draws the ops of each source line as
    one box (a layer called on one line becomes one box); past `max_nodes` the picture is
    cut with a note."""
    return digraph(obj, stage, collapse, max_nodes, **options).source


def render(
    obj: Any,
    path: Any,
    format: str | None = None,
    stage: str | None = None,
    collapse: Any = False,
    max_nodes: int = style.MAX_NODES,
) -> pathlib.Path:
    """Write the picture (svg, png, pdf or dot; from the suffix by default). Without
    Graphviz's `dot` program the DOT source is written instead, with a note."""
    return style.write(to_dot(obj, stage, collapse, max_nodes), path, format)


def svg(obj: Any, stage: str | None = None) -> str | None:
    """The picture as SVG text for notebooks (None where `dot` is missing)."""
    if not style.dot_available():
        return None
    return style.pipe(to_dot(obj, stage), "svg").decode()
