"""Drawing one graph onto a canvas: nodes in the shared visual language, fused kernels as
dashed boxes of their steps, control-flow bodies drawn once, the memory plan on the nodes,
and, for large graphs, the boxes, tables and references of `collapse`."""

from __future__ import annotations

from typing import Any, Callable

from common import style
from common.ops import OPS
from symbolic.graph import Graph, Node
from symbolic.visualize import collapse as boxes
from symbolic.visualize.canvas import Canvas, Cluster
from symbolic.visualize.facts import (
    REGIONS,
    bodies_of,
    constant_title,
    count,
    fused_program,
    op_title,
    regions_of,
    source_title,
    stands_for,
    title,
)
from symbolic.visualize.memory import buffer_line, plan_caption, with_buffer

REFERENCE = {  # a forward value drawn again beside its backward reader
    "shape": "box",
    "style": "dashed,rounded",
    "color": "#94a3b8",
    "fontcolor": "#475569",
}
REFERENCE_NOTE = (
    "dashed grey boxes in the backward part: forward values it reads, drawn again beside "
    "their reader"
)
LOOP_EDGE = {
    "style": "dashed",
    "color": "#0369a1",
    "fontcolor": "#0369a1",
    "constraint": "false",
    "label": "next step",
}


def _value_tooltip(node: Node, memory: Any) -> str:
    made = ["made by a pass from:", *node.provenance] if node.provenance else []
    return style.tooltip(
        f"{op_title(node)} : {style.type_label(node.shape, node.dtype)}",
        node.source,
        *made,
        buffer_line(node, memory),
    )


class Drawing:
    """Draws one graph onto a canvas, inside `cluster`, naming nodes `{prefix}n{position}`;
    `collapse` (True, "auto" or a key function) draws runs of ops as boxes."""

    def __init__(
        self,
        canvas: Canvas,
        prefix: str = "",
        collapse: Any = False,
        highlight: Callable[[Node], bool] | None = None,
        added: Any = (),
        outputs_are: list[str] | None = None,
    ) -> None:
        self.canvas, self.prefix, self.collapse = canvas, prefix, collapse
        self.highlight, self.added = highlight, added  # added: ids outlined as new
        self.outputs_are = outputs_are or []  # per output position: "grad of w" or ""
        self.output_word = "output"  # a body's results are what it returns
        self.stands_for: dict[int, str] = {}  # a body's inputs: the outer values they take
        self.out: dict[int, str] = {}  # node id -> the drawn node holding its value
        self.fused = 0
        self.edges_seen: set = set()
        self.boxes: set[str] = set()  # the boxes and tables drawn (not cut)
        self.titles: dict[str, str] = {}  # drawn name -> what a reference to it says
        self.folding = boxes.Folding({}, {}, {}, {})  # what a collapsed picture draws
        self.positions: dict[int, list[int]] = {}  # output node id -> its output positions

    def draw(self, graph: Graph, cluster: Cluster) -> None:
        self.graph, self.memory = graph, graph.memory
        self.regions, self.cluster = regions_of(graph), cluster
        outputs = self.positions
        for i, n in enumerate(graph.outputs):
            outputs.setdefault(n.id, []).append(i)
        mode = boxes.chosen(self.collapse, graph, body=self.output_word != "output")
        if mode:
            self.folding = boxes.fold(graph, self.regions, self.prefix, mode, set(outputs))
        if graph.memory is not None:
            self.canvas.notes.add(plan_caption(graph.memory))
        for pos, node in enumerate(graph.nodes):
            if node.id in self.out:  # a body's input drawn outside, as the value it takes
                continue
            place = self._region(cluster, self.regions[node.id])
            name = f"{self.prefix}n{pos}"
            if node.id in self.folding.groups:
                self._box(node, self.folding.groups[node.id], place)
            elif node.id in self.folding.tables:
                self._table(node, *self.folding.tables[node.id], place)
            elif fused_program(node) is not None and not self.folding.groups:
                self._fused(node, name, place, outputs.get(node.id))
            else:
                self._node(node, name, place, outputs.get(node.id), mode)
        self._backward_below(graph)
        if self.output_word == "output" and not self.folding.groups:  # boxes: left to dot
            cluster.row = [self.out[n.id] for n in graph.inputs if n.id in self.out]
        for k, (var, value) in enumerate(graph.updates):
            self._update(k, var, value, cluster, self.regions)

    def _backward_below(self, graph: Graph) -> None:
        """With forward values drawn again in the backward part, no edge keeps that part
        below the forward one: invisible edges do, from each last forward op (one that no
        forward op reads: the loss, the outputs) to the first backward node (the seed)."""
        if not self.folding.references:
            return
        forward = [n for n in graph.ops if self.regions[n.id] == "forward" and n.id in self.out]
        read = {a.id for n in forward for a in n.inputs if isinstance(a, Node)}
        first = [n for n in graph.nodes if self.regions[n.id] == "backward" and n.id in self.out]
        for last in (n for n in forward if n.id not in read and first):
            self.edge(self.out[last.id], self.out[first[0].id], {"style": "invis", "weight": "0"})

    def _region(self, cluster: Cluster, region: str) -> Cluster:
        if region not in REGIONS:
            return cluster
        label, attrs = REGIONS[region]
        return cluster.child(
            f"cluster_{self.prefix}{region}", {**attrs, "label": label, "fontcolor": "#57534e"}
        )

    def _update(self, k: int, var: Node, value: Node, cluster: Cluster, regions: dict) -> None:
        """An update: the variable drawn again where its new value is written (an edge back
        to the variable's first drawing would cross the whole picture)."""
        if value.id not in self.out or not self.canvas.fits(1):
            return
        region = regions[value.id]
        place = cluster.children.get(f"cluster_{self.prefix}{region}", cluster)
        name = f"{self.prefix}u{k}"
        attrs = {
            **style.source_attrs("variable"),
            **style.ASSIGN,
            "label": style.html_label(var.name, "← updated after the call"),
            "tooltip": style.tooltip(
                f"update of variable {var.name} {style.type_label(var.shape, var.dtype)}",
                value.source,
            ),
        }
        place.nodes.append((name, attrs))
        self.edge(self.out[value.id], name, {**style.UPDATE_EDGE, "label": "update"})

    # -- nodes --
    def _node(self, node: Node, name: str, place: Cluster, outputs: list | None, mode: Any) -> None:
        if not self.canvas.fits(1):
            return
        place.nodes.append((name, self._attrs(node, outputs)))
        self.out[node.id] = name
        self._inputs(node, name)
        for k, (key, body) in enumerate(bodies_of(node)):
            self._body(node, name, key, body, f"{name}b{k}_", place, mode)

    def _attrs(self, node: Node, outputs: list | None) -> dict:
        if node.is_source:
            self.canvas.legend.add(node.op)
            attrs = style.source_attrs(node.op)
            label = [
                node.name or constant_title(node),
                style.type_label(node.shape, node.dtype),
                self.stands_for.get(node.id, ""),
            ]
        else:
            detail = style.op_detail(node.inputs, node.params, lambda a: isinstance(a, Node))
            attrs, label = self._op_look(node.op.kind, op_title(node), detail)
        attrs = self._finish(attrs, label, node, outputs)
        attrs["tooltip"] = _value_tooltip(node, self.memory)
        if node.id in self.added:
            attrs.update(style.ADDED)
        if self.highlight is not None and self.highlight(node):
            attrs.update(style.HIGHLIGHT)
        return attrs

    def _op_look(self, kind: str, name: str, detail: str) -> tuple[dict, list]:
        self.canvas.legend.add(kind)
        return style.op_attrs(kind), [name, detail]

    def _finish(self, attrs: dict, label: list, node: Node, outputs: list | None) -> dict:
        """The label: title and details, what the value is when it is an output, and the
        buffer the memory plan gave it."""
        if outputs is not None:
            self.canvas.legend.add("output")
            text, named = self._output_text(outputs), any(map(self._meaning, outputs))
            label += [text, node.type_str()] if named else [f"{text} : {node.type_str()}"]
            attrs.update(style.OUTPUT)
        attrs["label"] = with_buffer(style.html_label(*label), node, self.memory)
        return attrs

    def _said(self, node: Node) -> str:
        """An output as a line of its box: `grad of w : f32[3]`."""
        return f"{self._output_text(self.positions[node.id])} : {node.type_str()}"

    def _output_text(self, positions: list[int]) -> str:
        """`output 0, 1`, or what S.grad made them: `grad of w`."""
        plain = [str(i) for i in positions if not self._meaning(i)]
        named = list(dict.fromkeys(self._meaning(i) for i in positions if self._meaning(i)))
        return ", ".join(([f"{self.output_word} {', '.join(plain)}"] if plain else []) + named)

    def _meaning(self, position: int) -> str:
        return self.outputs_are[position] if position < len(self.outputs_are) else ""

    def _inputs(self, node: Node, name: str) -> None:
        for position, a in enumerate(node.inputs):
            if isinstance(a, Node) and a.id in self.out:
                self.edge(self._from(a, node), name, self._typed(a), position)

    def _typed(self, a: Node) -> dict:
        """An edge's type: its label, or in a collapsed picture its tooltip (labels on the
        many edges into a box or a loop would widen the picture more than the nodes do)."""
        text = style.type_label(a.shape, a.dtype)
        return {"tooltip": text} if self.folding.groups else {"label": text}

    def _from(self, a: Node, user: Node) -> str:
        """Where an edge from `a` to `user` starts: in a collapsed picture, the forward
        values that the backward part reads are drawn again beside their readers (edges
        from the forward part would run down the whole picture side by side)."""
        name = self.folding.references.get(self.out[a.id])
        if name is None or self.regions.get(user.id) != "backward":
            return self.out[a.id]
        if name not in self.boxes and self.canvas.fits(1):
            values = self.folding.referred[name]
            titles = [
                source_title(v) or self.titles.get(self.out[v.id]) or title(v) for v in values
            ]
            self.canvas.notes.add(REFERENCE_NOTE)
            self.boxes.add(name)
            attrs = {
                **REFERENCE,
                "label": style.html_label(*boxes.rows(titles)),
                "tooltip": style.tooltip(
                    *(f"{t} (forward): {v.source}" for t, v in zip(titles, values))
                ),
            }
            self._region(self.cluster, "backward").nodes.append((name, attrs))
        return name if name in self.boxes else self.out[a.id]

    def edge(self, tail: str, head: str, attrs: dict, position: int | None = None) -> None:
        """An edge, drawn once per (tail, head, label), or per argument `position` (x * x
        has two edges from x)."""
        key = (tail, head, attrs.get("label"), position)
        if tail != head and key not in self.edges_seen:
            self.edges_seen.add(key)
            self.canvas.edges.append((tail, head, attrs))

    def _fused(self, node: Node, name: str, place: Cluster, outputs: list | None) -> None:
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
        for j, step in enumerate(program.steps):
            last = j == len(program.steps) - 1
            box.nodes.append((f"{name}s{j}", self._step(node, step, last, outputs, expression)))
            for position, (kind, index) in enumerate(a[:2] for a in step.args):
                if kind == "t":
                    label = style.type_label(program.shape, program.steps[index].dtype)
                    # heavy: dot keeps a kernel's steps together, not stretched apart
                    self.edge(
                        f"{name}s{index}", f"{name}s{j}", {"label": label, "weight": "8"}, position
                    )
                elif kind == "in" and node.inputs[index].id in self.out:  # x0 as in the text
                    a = node.inputs[index]
                    label = f"x{index}: {style.type_label(a.shape, a.dtype)}"
                    self.edge(self.out[a.id], f"{name}s{j}", {"label": label}, position)
        self.out[node.id] = f"{name}s{len(program.steps) - 1}"

    def _step(self, node: Node, step: Any, last: bool, outputs: list | None, text: str) -> dict:
        """One op of a fused kernel; the last one stands for the kernel's result."""
        args = tuple(a[1] if a[0] == "lit" else node for a in step.args)
        detail = style.op_detail(args, dict(step.params), lambda a: a is node)
        attrs, label = self._op_look(OPS[step.op].kind, step.op, detail)
        if not last:
            attrs["label"] = style.html_label(*label)
            attrs["tooltip"] = style.tooltip(
                f"{step.op} inside fused kernel {self.fused - 1}", text
            )
            return attrs
        attrs = self._finish(attrs, label, node, outputs)
        attrs["tooltip"] = _value_tooltip(node, self.memory)
        if node.id in self.added:
            attrs.update(style.ADDED)
        return attrs

    def _body(
        self, node: Node, name: str, key: str, body: Graph, prefix: str, place: Cluster, mode: Any
    ) -> None:
        """A control-flow body, drawn once: its own graph in a cluster feeding its control
        node, the values it reads from outside drawn where they are, and a loop's carries
        going round to the next step."""
        if self.canvas.drawn + len(body.nodes) > self.canvas.max_nodes:
            self.canvas.skipped += len(body.nodes)
            return
        steps = ""
        if node.op_name == "scan" and node.params.get("n_xs"):
            xs = node.inputs[node.params["n_carry"]]
            steps = f", run {xs.shape[0]} times" if xs.shape else ""
        cluster = place.child(
            f"cluster_{prefix}body",
            {**style.BODY, "label": f"{node.op_name}: {key}{steps}", "fontcolor": "#0369a1"},
        )
        edge = {**style.BODY_EDGE, "ltail": f"cluster_{prefix}body", "label": key}
        if mode and not callable(mode) and boxes.chosen("auto", body, body=True):
            if self.canvas.fits(1):  # too large to read here: one box says what it holds
                text = f"{count(len(body.ops), 'op')} (collapse=False draws them)"
                group = boxes.Group(f"{prefix}box", text, body.ops)
                cluster.nodes.append((group.name, boxes.box_attrs(group, op_title, [])))
                self.edge(group.name, name, edge)
            return
        inner = Drawing(self.canvas, prefix, mode if callable(mode) else False, self.highlight)
        inner.output_word = "returns"
        inner.stands_for, inner.out = stands_for(node, body, self.out)
        inner.draw(body, cluster)
        if body.outputs and body.outputs[0].id in inner.out:
            self.edge(inner.out[body.outputs[0].id], name, edge)
        if key == "body":  # a loop: the new carries are the next step's
            for new, old in zip(body.outputs, body.inputs[: node.params.get("n_carry", 0)]):
                if new.id in inner.out and old.id in inner.out:
                    self.edge(inner.out[new.id], inner.out[old.id], LOOP_EDGE)

    # -- collapsed --
    def _box(self, node: Node, group: boxes.Group, place: Cluster) -> None:
        if node is group.members[0] and self.canvas.fits(1):
            self.canvas.legend.add("collapsed")
            said = [self._said(m) for m in group.members if m.id in self.positions]
            if said:
                self.canvas.legend.add("output")
            place.nodes.append((group.name, boxes.box_attrs(group, op_title, said)))
            self.boxes.add(group.name)
        if group.name not in self.boxes:
            return  # cut: the picture is full
        self.out[node.id] = group.name
        self.titles[group.name] = group.key
        for a in node.inputs:
            if isinstance(a, Node) and a.id in self.out:
                self.edge(self._from(a, node), group.name, self._typed(a))

    def _table(self, node: Node, name: str, sources: list[Node], place: Cluster) -> None:
        if node is sources[0] and self.canvas.fits(1):
            self.canvas.legend.update(n.op for n in sources)
            place.nodes.append((name, boxes.table_attrs(sources, source_title)))
            self.boxes.add(name)
            self.titles[name] = ", ".join(source_title(n) for n in sources)
        if name in self.boxes:
            self.out[node.id] = name
