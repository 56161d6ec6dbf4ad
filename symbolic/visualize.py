"""Pictures of symbolic graphs (Graphviz): a graph as traced or optimized, the passes one by
one with what each changed, and the memory plan as a chart (matplotlib).

    f = S.compile(c, inputs=[a, b])
    render(f, "c.svg", stage="both")            # traced and optimized, side by side
    render_passes(f, "passes/")                 # one picture per pass
    render_memory_plan(f, "memory.png")

Node names in the DOT text are positions in `graph.nodes` (never the global node ids), so
the same graph gives the same text in every run. The backward part of a training graph is
told apart by its source line: `S.grad` names the line that called it, so an op whose line
calls `grad(` was built by S.grad; ops that only the updates need form the update part.
"""

from __future__ import annotations

import html
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import graphviz
import numpy as np

from common import style
from common.ops import OPS
from symbolic.graph import Graph, Node, ancestors_in_order

STAGES = ("traced", "optimized", "both")
GRAD_CALL = re.compile(r"\bgrad\s*\(")


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
        raise ValueError("stage='both' needs a compiled function (before and after the "
                         "passes). Fix: render S.compile(...) instead of a graph.")
    if isinstance(obj, Graph):
        return [("graph", obj)]
    symbols = obj if isinstance(obj, (list, tuple)) else [obj]
    return [("graph", Graph([], [s.node for s in symbols]))]


def _from_grad(node: Node) -> bool:
    return bool(GRAD_CALL.search(style.code(node.source)))


def regions_of(graph: Graph) -> dict[int, str]:
    """'forward', 'backward' (built by S.grad: its source line calls `grad(`) or 'update'
    (needed only by the updates) per node. When every op looks backward (the forward and
    S.grad on one line) nothing is set apart."""
    ops = [n for n in graph.nodes if n.op not in ("placeholder", "variable")]
    backward = {n.id for n in ops if _from_grad(n)}
    if len(backward) == len(ops):
        backward = set()
    for_outputs = {n.id for n in ancestors_in_order(list(graph.outputs))}
    for_updates = {n.id for n in ancestors_in_order([v for _, v in graph.updates])}
    regions = {}
    for n in graph.nodes:
        if n.id in backward:
            regions[n.id] = "backward"
        elif n in ops and n.id in for_updates and n.id not in for_outputs:
            regions[n.id] = "update"
        else:
            regions[n.id] = "forward"
    return regions


REGIONS = {"backward": ("backward: built by S.grad", style.BACKWARD),
           "update": ("update: new values of the variables", style.UPDATE)}


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

    def child(self, name: str, attrs: dict) -> _Cluster:
        if name not in self.children:
            self.children[name] = _Cluster(name, attrs)
        return self.children[name]

    def emit(self, dot: Any) -> None:
        for name, attrs in self.nodes:
            dot.node(name, **attrs)
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
        dot = graphviz.Digraph(graph_attr={**style.GRAPH_ATTRS, "compound": "true"},
                               node_attr=dict(style.NODE_ATTRS), edge_attr=style.EDGE_ATTRS)
        if title:
            dot.attr(label=style.html_label(title, bold=False))
        self.root.emit(dot)
        for tail, head, attrs in self.edges:
            dot.edge(tail, head, **attrs)
        if self.legend:
            keys = [k for k in style.LEGEND_TEXT if k in self.legend]
            dot.node("legend", label=style.legend_label(keys), **style.LEGEND_NODE)
        if self.skipped:
            dot.node("note", shape="note", style="filled", fillcolor="#fef9c3", color="#a16207",
                     label=f"showing {self.drawn} of {self.drawn + self.skipped} nodes "
                     f"(max_nodes={self.max_nodes}).\\nPass collapse=True, or a larger "
                     "max_nodes, to see them all.")
        return dot


# ---- one graph --------------------------------------------------------------------------

def _value_tooltip(node: Node, memory: Any) -> str:
    made = ["made by a pass from:", *node.provenance] if node.provenance else []
    where = []
    if memory is not None and node.id in memory.assignment:
        into = memory.in_place.get(node.id)
        where.append(f"buffer {memory.assignment[node.id]}" + (" (in place)" if into else ""))
    return style.tooltip(f"{_op_title(node)} : {style.type_label(node.shape, node.dtype)}",
                         node.source, *made, *where)


class _Drawing:
    """Draws one graph onto a canvas, inside `cluster`, naming nodes `{prefix}n{position}`."""

    def __init__(self, canvas: _Canvas, prefix: str = "", collapse: Any = False,
                 highlight: Callable[[Node], bool] | None = None, diff: Any = None) -> None:
        self.canvas, self.prefix, self.collapse = canvas, prefix, collapse
        self.highlight, self.diff = highlight, diff
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
                place = cluster.child(f"cluster_{self.prefix}{regions[node.id]}",
                                      {**attrs, "label": title, "fontcolor": "#57534e"})
            name = f"{self.prefix}n{pos}"
            if node.id in groups:
                self._collapsed(node, groups[node.id], place)
            elif fused_program(node) is not None and not self.collapse:
                self._fused(node, name, place, outputs.get(node.id))
            else:
                self._node(node, name, place, outputs.get(node.id))
        for k, (var, value) in enumerate(graph.updates):
            self._update(k, var, value, cluster, regions)
        if self.diff is not None:
            self._ghosts(cluster)

    def _update(self, k: int, var: Node, value: Node, cluster: _Cluster,
                regions: dict) -> None:
        """An update: the variable drawn again where its new value is written (an edge back
        to the variable's first drawing would cross the whole picture)."""
        if value.id not in self.out or not self.canvas.fits(1):
            return
        region = regions[value.id]
        place = cluster.children.get(f"cluster_{self.prefix}{region}", cluster)
        name = f"{self.prefix}u{k}"
        place.nodes.append((name, {
            **style.source_attrs("variable"), **style.ASSIGN,
            "label": style.html_label(var.name, "← new value, written after the call"),
            "tooltip": style.tooltip(f"update of variable {var.name} "
                                     f"{style.type_label(var.shape, var.dtype)}", value.source)}))
        self._edge(self.out[value.id], name, {**style.UPDATE_EDGE, "label": "update"})

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
            label = [node.name or _constant_title(node),
                     style.type_label(node.shape, node.dtype)]
        else:
            detail = style.op_detail(node.inputs, node.params, lambda a: isinstance(a, Node))
            attrs, label = self._op_look(node.op.kind, _op_title(node), detail)
        attrs = self._finish(attrs, label, node.shape, node.dtype, outputs)
        attrs["tooltip"] = _value_tooltip(node, self.memory)
        if self.diff is not None and node.id in self.diff.added:
            attrs.update(style.ADDED)
        if self.highlight is not None and self.highlight(node):
            attrs.update(style.HIGHLIGHT)
        return attrs

    def _op_look(self, kind: str, name: str, detail: str) -> tuple[dict, list]:
        self.canvas.legend.add(kind)
        return style.op_attrs(kind), [name, detail]

    def _finish(self, attrs: dict, label: list, shape: Any, dtype: Any,
                outputs: list | None) -> dict:
        if outputs is not None:
            self.canvas.legend.add("output")
            label.append(f"output {', '.join(map(str, outputs))} : "
                         f"{style.type_label(shape, dtype)}")
            attrs.update(style.OUTPUT)
        attrs["label"] = style.html_label(*label)
        return attrs

    def _inputs(self, node: Node, name: str) -> None:
        for a in node.inputs:
            if isinstance(a, Node) and a.id in self.out:
                self._edge(self.out[a.id], name, {"label": style.type_label(a.shape, a.dtype)})

    def _edge(self, tail: str, head: str, attrs: dict) -> None:
        key = (tail, head, attrs.get("label"))
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
        box = place.child(f"cluster_{self.prefix}fused{self.fused}", {
            **style.FUSED, "tooltip": style.tooltip("fused kernel", expression, node.source),
            "label": style.html_label(f"fused kernel {self.fused}", *style.wrap(expression)),
        })
        self.fused += 1
        shape = program.shape
        for j, step in enumerate(program.steps):
            args = tuple(a[1] if a[0] == "lit" else node for a in step.args)
            detail = style.op_detail(args, dict(step.params), lambda a: a is node)
            attrs, label = self._op_look(OPS[step.op].kind, step.op, detail)
            last = j == len(program.steps) - 1
            attrs = self._finish(attrs, label, shape, step.dtype, outputs if last else None)
            attrs["tooltip"] = _value_tooltip(node, self.memory) if last else \
                style.tooltip(f"{step.op} inside fused kernel {self.fused - 1}", expression)
            if last and self.diff is not None and node.id in self.diff.added:
                attrs.update(style.ADDED)
            box.nodes.append((f"{name}s{j}", attrs))
            for kind, index in ((a[0], a[1]) for a in step.args if a[0] != "lit"):
                if kind == "t":
                    label = style.type_label(shape, program.steps[index].dtype)
                    self._edge(f"{name}s{index}", f"{name}s{j}", {"label": label})
                elif node.inputs[index].id in self.out:
                    a = node.inputs[index]
                    self._edge(self.out[a.id], f"{name}s{j}",
                               {"label": style.type_label(a.shape, a.dtype)})
        self.out[node.id] = f"{name}s{len(program.steps) - 1}"

    def _body(self, node: Node, name: str, key: str, body: Graph, prefix: str,
              place: _Cluster) -> None:
        """A control-flow body: its own graph in a cluster, feeding its control node."""
        if self.canvas.drawn + len(body.nodes) > self.canvas.max_nodes:
            self.canvas.skipped += len(body.nodes)
            return
        steps = ""
        if node.op_name == "scan" and node.params.get("n_xs"):
            xs = node.inputs[node.params["n_carry"]]
            steps = f", run {xs.shape[0]} times" if xs.shape else ""
        cluster = place.child(f"cluster_{prefix}body", {
            **style.BODY, "label": f"{node.op_name} {key}{steps}", "fontcolor": "#0369a1"})
        inner = _Drawing(self.canvas, prefix, highlight=self.highlight)
        inner.draw(body, cluster)
        if body.outputs and body.outputs[0].id in inner.out:
            self._edge(inner.out[body.outputs[0].id], name,
                       {**style.BODY_EDGE, "ltail": f"cluster_{prefix}body", "label": key})

    def _groups(self, graph: Graph, regions: dict[int, str]) -> dict[int, tuple]:
        """collapse: ops grouped by source line (a module called on one line is one box),
        or by `collapse(node)` when it is a function; groups of one are left alone."""
        key_of = self.collapse if callable(self.collapse) else (
            lambda n: style.where(n.source) or None)
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
            place.nodes.append((name, {
                **style.NODE_ATTRS, **style.COLLAPSED,
                "label": style.html_label(key, code[:40] + ("…" if len(code) > 40 else ""),
                                          f"{len(members)} ops: " + summary[:60]),
                "tooltip": style.tooltip(node.source, *(f"{_op_title(m)} : {m.type_str()}"
                                                        for m in members))}))
            self.groups_drawn.add(name)
        if name not in self.groups_drawn:
            return
        self.out[node.id] = name
        for a in node.inputs:
            if isinstance(a, Node) and a.id in self.out and self.out[a.id] != name:
                self._edge(self.out[a.id], name, {"label": style.type_label(a.shape, a.dtype)})

    def _ghosts(self, cluster: _Cluster) -> None:
        """What a pass took away: removed nodes in red, merged ones in orange pointing at the
        node that now computes them."""
        diff = self.diff
        for j, old in enumerate(diff.ghosts):
            if not self.canvas.fits(1):
                return
            into = diff.merged.get(old.id)
            attrs = {**(style.op_attrs(old.op.kind) if not old.is_source
                        else style.source_attrs(old.op)), **(style.MERGED if into else
                                                              style.REMOVED)}
            what = "merged" if into is not None else "removed"
            attrs["label"] = style.html_label(_op_title(old), what)
            attrs["tooltip"] = style.tooltip(f"{what} by this pass: {_op_title(old)}", old.source)
            name = f"{self.prefix}g{j}"
            cluster.nodes.append((name, attrs))
            for a in old.inputs:
                if not isinstance(a, Node):
                    continue
                tail = self.out.get(a.id) or self.out.get(getattr(diff.kept.get(a.id), "id", -1))
                if tail is not None:
                    self._edge(tail, name, {"style": "dashed", "color": "#94a3b8"})
            self.out[old.id] = name
            if into is not None and into.id in self.out:
                self._edge(name, self.out[into.id], {**style.MERGED_EDGE, "label": "into"})


def _op_title(node: Node) -> str:
    """The op's name; a fused op's name holds a global counter, so it is not shown."""
    return "fused kernel" if fused_program(node) is not None else node.op_name


def _constant_title(node: Node) -> str:
    value = np.asarray(node.value) if node.value is not None else None
    if value is not None and value.size == 1:
        return style.literal(value.reshape(()).item())
    return "constant"


# ---- public: DOT text, files, notebooks -------------------------------------------------

def digraph(obj: Any, stage: str | None = None, collapse: Any = False,
            max_nodes: int = style.MAX_NODES, highlight: Callable[[Node], bool] | None = None,
            title: str | None = None) -> graphviz.Digraph:
    """The picture as a graphviz.Digraph (see `to_dot`)."""
    canvas = _Canvas(max_nodes)
    pairs = stages_of(obj, stage)
    for title_, graph in pairs:
        cluster = canvas.root
        if len(pairs) > 1:
            cluster = canvas.root.child(f"cluster_stage_{title_}", {
                **style.STAGE, "label": _summary(title_, graph), "fontsize": "14"})
        prefix = f"{title_[0]}_" if len(pairs) > 1 else ""
        _Drawing(canvas, prefix, collapse, highlight).draw(graph, cluster)
    if title is None and len(pairs) == 1:
        title = _summary(*pairs[0])
    return canvas.digraph(title or "")


def _summary(title: str, graph: Graph) -> str:
    fused = sum(fused_program(n) is not None for n in graph.nodes)
    return (f"{title}: {len(graph.nodes)} nodes, {len(graph.ops)} ops"
            + (f", {fused} fused kernels" if fused else "")
            + (f", {len(graph.updates)} updates" if graph.updates else ""))


def to_dot(obj: Any, stage: str | None = None, collapse: Any = False,
           max_nodes: int = style.MAX_NODES, **options: Any) -> str:
    """DOT source of a Graph, a CompiledFunction (stage 'traced', 'optimized' (default) or
    'both', side by side) or symbols. `collapse=True` draws the ops of each source line as
    one box (a layer called on one line becomes one box); past `max_nodes` the picture is
    cut with a note."""
    return digraph(obj, stage, collapse, max_nodes, **options).source


def render(obj: Any, path: Any, format: str | None = None, stage: str | None = None,
           collapse: Any = False, max_nodes: int = style.MAX_NODES) -> pathlib.Path:
    """Write the picture (svg, png, pdf or dot; from the suffix by default). Without
    Graphviz's `dot` program the DOT source is written instead, with a note."""
    return style.write(to_dot(obj, stage, collapse, max_nodes), path, format)


def svg(obj: Any, stage: str | None = None) -> str | None:
    """The picture as SVG text for notebooks (None where `dot` is missing)."""
    if not style.dot_available():
        return None
    return style.pipe(to_dot(obj, stage), "svg").decode()


# ---- the pass timeline ------------------------------------------------------------------

def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return value
    return ("object", id(value))


def _key(op: Any, inputs: tuple, params: Any, shape: Any, dtype: Any, tokens: Callable) -> tuple:
    items = params.items() if isinstance(params, dict) else params
    args = tuple(tokens(a) if isinstance(a, Node) else ("lit", repr(a)) for a in inputs)
    return (op, _freeze(tuple(sorted(items))), shape, np.dtype(dtype).str, args)


def _node_key(node: Node, tokens: Callable) -> tuple:
    if node.op == "constant" and np.asarray(node.value).size <= 64:
        return ("constant", node.dtype.str, node.shape, np.asarray(node.value).tobytes())
    if node.is_source or node.op.stateful:
        return ("node", node.id)
    return _key(node.op, node.inputs, node.params, node.shape, node.dtype, tokens)


@dataclass
class StageDiff:
    added: set  # ids of after-nodes that are new
    kept: dict  # before id -> the after-node computing the same value
    merged: dict  # before id -> the after-node it was merged into (CSE, fusion)
    ghosts: list  # before-nodes gone (removed or merged), in their order

    @property
    def removed(self) -> list[Node]:
        return [n for n in self.ghosts if n.id not in self.merged]


def diff_graphs(before: Graph, after: Graph) -> StageDiff:
    """What a pass did, found structurally: nodes match when they apply the same op with the
    same params to matching inputs (so rebuilt copies count as kept)."""
    by_key: dict[tuple, tuple] = {}
    token: dict[int, tuple] = {}
    members: dict[tuple, list[Node]] = {}
    for n in before.nodes:
        t = by_key.setdefault(_node_key(n, lambda a: token.get(a.id, ("node", a.id))),
                              ("b", len(by_key)))
        token[n.id] = t
        members.setdefault(t, []).append(n)
    matched: dict[tuple, list[Node]] = {}
    fused_into: dict[tuple, Node] = {}
    added = set()
    for n in after.nodes:
        t = token.get(n.id) or by_key.get(_node_key(n, lambda a: token.get(a.id, ("node", a.id))))
        if t is None:
            t = ("a", n.id)
            added.add(n.id)
            for step_token in _step_tokens(n, token, by_key):
                fused_into.setdefault(step_token, n)
        token[n.id] = t
        matched.setdefault(t, []).append(n)
    diff = StageDiff(added, {}, {}, [])
    for t, olds in members.items():
        news = matched.get(t, [])
        spare = [a for a in news if not any(a is o for o in olds)]
        for old in olds:
            if any(old is a for a in news):
                diff.kept[old.id] = old
            elif spare:
                diff.kept[old.id] = spare.pop(0)
            elif news or t in fused_into:
                diff.merged[old.id] = news[0] if news else fused_into[t]
    diff.ghosts = [n for n in before.nodes if n.id not in diff.kept]
    return diff


def _step_tokens(node: Node, token: dict, by_key: dict) -> list[tuple]:
    """The before-nodes a fused node's steps stand for (by the same matching)."""
    program = fused_program(node)
    if program is None:
        return []
    found: list = []
    for step in program.steps:
        args = tuple(token.get(node.inputs[a[1]].id) if a[0] == "in" else found[a[1]]
                     if a[0] == "t" else ("lit", repr(a[1])) for a in step.args)
        key = (OPS[step.op], _freeze(tuple(sorted(step.params))), program.shape,
               np.dtype(step.dtype).str, args)
        found.append(by_key.get(key, ("step", id(step), len(found))))
    return [t for t in found if t[0] == "b"]


def pass_dots(fn: Any, max_nodes: int = style.MAX_NODES) -> list[tuple[str, str, list]]:
    """(stage name, DOT, changes) per stage of `fn.report`, each graph drawn with what its
    pass added (green border), removed (red) or merged (orange, pointing where it went)."""
    stages = fn.report.stages
    pictures = []
    for i, record in enumerate(stages):
        canvas = _Canvas(max_nodes)
        diff = diff_graphs(stages[i - 1].graph, record.graph) if i else None
        _Drawing(canvas, diff=diff).draw(record.graph, canvas.root)
        title = f"{i}. {record.stage}: {record.nodes_before} → {record.nodes_after} nodes"
        if diff is not None:
            title += (f"; {len(diff.added)} added, {len(diff.removed)} removed, "
                      f"{len(diff.merged)} merged")
        pictures.append((record.stage, canvas.digraph(title).source, record.changes))
    return pictures


def render_passes(fn: Any, target: Any, format: str = "svg",
                  max_nodes: int = style.MAX_NODES) -> list[pathlib.Path]:
    """The graph after each pass: one file per stage in the folder `target`
    (`00_trace.svg`, `01_constant_folding.svg`, ...), or one page with all of them when
    `target` ends in `.html`."""
    target = pathlib.Path(target)
    pictures = pass_dots(fn, max_nodes)
    if target.suffix.lower() == ".html":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_pass_page(pictures))
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    return [style.write(source, target / f"{i:02d}_{name}.{format}", format)
            for i, (name, source, _) in enumerate(pictures)]


def _pass_page(pictures: list) -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>passes</title><body style="
             "'font-family:sans-serif'><h1>The graph after each pass</h1>"]
    for i, (name, source, changes) in enumerate(pictures):
        parts.append(f"<h2>{i}. {html.escape(name)}</h2><ul>")
        parts += [f"<li><code>{html.escape(c)}</code></li>" for c in changes[:30]]
        parts.append("</ul>")
        parts.append(style.pipe(source, "svg").decode() if style.dot_available()
                     else f"<pre>{html.escape(source)}</pre>")
    if not style.dot_available():
        parts.insert(1, "<p>Graphviz's <code>dot</code> was not found: DOT sources shown. "
                     "Install Graphviz to see the pictures.</p>")
    return "\n".join(parts + ["</body>"])


# ---- the memory plan --------------------------------------------------------------------

def render_memory_plan(fn: Any, path: Any, eager_peak: int | None = None) -> pathlib.Path:
    """Buffer lifetimes over the schedule (one bar per planned value, coloured by buffer;
    hatched: written in place), and bytes live without reuse against the planned pool and,
    if given, the eager peak."""
    plan = fn.graph.memory
    if plan is None:
        raise ValueError("this function has no memory plan: the memory pass runs at "
                         "optimize=2. Fix: S.compile(..., optimize=2).")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    nodes = fn.graph.nodes
    by_id = {n.id: n for n in nodes}
    values = sorted(plan.assignment, key=lambda i: plan.lifetimes[i])
    fig, (bars, live) = plt.subplots(2, 1, figsize=(10, 2.2 + 0.28 * max(len(values), 4)),
                                     height_ratios=[max(len(values), 4), 5], sharex=True)
    colors = plt.get_cmap("tab20")
    for row, vid in enumerate(values):
        start, end = plan.lifetimes[vid]
        buffer = plan.assignment[vid]
        bars.barh(row, max(end - start, 0.4), left=start, color=colors(buffer % 20),
                  hatch="//" if vid in plan.in_place else None, edgecolor="#334155")
        bars.text(start + max(end - start, 0.4) / 2, row, f"buf {buffer}", ha="center",
                  va="center", fontsize=7)
    names = [by_id[v].op.name for v in values]
    bars.set_yticks(range(len(values)), [
        f"{'fused' if name.startswith('fused_') else name} {by_id[v].type_str()}"
        for name, v in zip(names, values)], fontsize=7)
    bars.set_ylim(max(len(values), 1) - 0.5, -0.5)
    bars.set_title(f"memory plan: {plan.summary()}", fontsize=9)
    if not values:
        bars.text(0.5, 0.5, "no value got a planned buffer", transform=bars.transAxes,
                  ha="center")
    _live_bytes(live, plan, nodes, eager_peak)
    refused = _refusal_counts(plan)
    if refused:
        fig.text(0.01, 0.005, "in place refused: " + "; ".join(refused), fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _live_bytes(ax: Any, plan: Any, nodes: list[Node], eager_peak: int | None) -> None:
    by_id = {n.id: n for n in nodes}
    steps = np.arange(len(nodes) + 1)
    live = np.zeros(len(steps))
    for vid, (start, end) in plan.lifetimes.items():
        node = by_id[vid]
        live[start:end + 1] += int(np.prod(node.shape)) * node.dtype.itemsize
    ax.step(steps, live, where="post", label="live intermediates without reuse")
    ax.axhline(plan.planned_bytes, color="#16a34a", linestyle="--",
               label=f"planned pool: {plan.planned_bytes:,} B")
    if eager_peak is not None:
        ax.axhline(eager_peak, color="#dc2626", linestyle=":",
                   label=f"eager peak: {eager_peak:,} B")
    ax.set_xlabel("schedule position (node)")
    ax.set_ylabel("bytes")
    ax.legend(fontsize=7, loc="upper left")


def _refusal_counts(plan: Any) -> list[str]:
    counts: dict[str, int] = {}
    for _, _, reason in plan.refused:
        reason = re.sub(r"%\d+", "%n", reason)
        counts[reason] = counts.get(reason, 0) + 1
    return [f"{c} × {r}" for r, c in sorted(counts.items(), key=lambda rc: -rc[1])][:4]
