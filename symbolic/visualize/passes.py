"""Pictures of what the compile step did: the graph after each pass with its changes
highlighted (the pass timeline), and the memory plan as a chart (matplotlib).

A pass builds new nodes rather than editing old ones, so what it changed is found by
matching graphs structurally: two nodes match when they apply the same op with the same
params to matching inputs. An unmatched node whose users match once it stands in for an
old node replaced that node (a rewrite, a folded constant, a fused kernel's root).

    before: %3 = pow(%1, 2); %4 = add(%3, %2)      after: %5 = mul(%1, %1); %6 = add(%5, %2)
    -> %5 added, replacing %3; %6 is %4 rebuilt (kept, not highlighted)
"""

from __future__ import annotations

import html
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import style
from common.ops import OPS
from symbolic.graph import Graph, Node
from symbolic.visualize.canvas import Canvas
from symbolic.visualize.drawing import Drawing
from symbolic.visualize.facts import fused_program, op_title, output_names


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return value
    return ("object", id(value))


def _shape_key(op: Any, params: Any, shape: Any, dtype: Any, arity: int) -> tuple:
    items = params.items() if isinstance(params, dict) else params
    return (op, _freeze(tuple(sorted(items))), shape, np.dtype(dtype).str, arity)


def _arg(a: Any, token: dict) -> tuple:
    return token.get(a.id, ("node", a.id)) if isinstance(a, Node) else ("lit", repr(a))


def _key(node: Node, token: dict) -> tuple:
    if node.op == "constant" and np.asarray(node.value).size <= 64:
        return ("constant", node.dtype.str, node.shape, np.asarray(node.value).tobytes())
    if node.is_source or node.op.stateful:
        return ("node", node.id)
    return (
        _shape_key(node.op, node.params, node.shape, node.dtype, len(node.inputs)),
        tuple(_arg(a, token) for a in node.inputs),
    )


@dataclass
class StageDiff:
    added: set  # ids of after-nodes that are new
    kept: dict  # before id -> the after-node computing its value (itself, or rebuilt)
    merged: dict  # before id -> the after-node that now computes it
    how: dict  # before id -> "merged" (CSE), "replaced" (a rewrite) or "fused"
    ghosts: list = field(default_factory=list)  # before-nodes gone, in their order

    @property
    def removed(self) -> list[Node]:
        return [n for n in self.ghosts if n.id not in self.merged]


class _Matcher:
    """Tokens name values: before-nodes get one per distinct computation, after-nodes take
    the token of the before-node they compute."""

    def __init__(self, before: Graph) -> None:
        self.token: dict[int, tuple] = {}
        self.by_key: dict[tuple, tuple] = {}
        self.members: dict[tuple, list[Node]] = {}
        self.candidates: dict[tuple, list[Node]] = {}
        for n in before.nodes:
            key = _key(n, self.token)
            t = self.by_key.setdefault(key, ("b", len(self.by_key)))
            self.token[n.id] = t
            self.members.setdefault(t, []).append(n)
            if len(key) == 2:
                self.candidates.setdefault(key[0], []).append(n)
        self.claimed: dict[tuple, list[Node]] = {}  # before token -> after-nodes with it
        self.alias: dict[tuple, tuple] = {}  # before token -> the token replacing it
        self.fused_into: dict[tuple, Node] = {}

    def match(self, n: Node) -> bool:
        """Give after-node `n` its token; True if `n` is new (not a kept or rebuilt node)."""
        new = False
        t = self.token.get(n.id)  # the same node object as before the pass
        if t is None:
            t = self.by_key.get(_key(n, self.token)) or self._stand_in(n)
        if t is None:
            new = True
            t = self._fused_root(n) or ("a", n.id)
        self.token[n.id] = t
        self.claimed.setdefault(t, []).append(n)
        return new

    def _stand_in(self, n: Node) -> tuple | None:
        """A before-node that `n` computes once some of its old inputs are taken as
        replaced by `n`'s new ones (inputs that no after-node computes any more)."""
        if n.is_source or n.op.stateful:
            return None
        shape_key = _shape_key(n.op, n.params, n.shape, n.dtype, len(n.inputs))
        for old in self.candidates.get(shape_key, []):
            t = self.token[old.id]
            if len(self.claimed.get(t, ())) >= len(self.members[t]):
                continue  # every copy of it is computed already (duplicates: one each)
            pairs = self._pairs(old, n)
            if pairs is not None:
                self.alias.update(pairs)
                return t
        return None

    def _pairs(self, old: Node, n: Node) -> dict | None:
        """The inputs of `old` that `n` reads replaced ({} if replaced already, by a copy
        of `n` matched before), or None if `n` computes something else."""
        swaps = {}
        for b, a in zip(old.inputs, n.inputs):
            bt, at = _arg(b, self.token), _arg(a, self.token)
            if bt == at or self.alias.get(bt) == at:
                continue
            if bt[0] != "b" or not isinstance(a, Node) or bt in self.claimed or bt in swaps:
                return None
            swaps[bt] = at
        return swaps

    def _fused_root(self, n: Node) -> tuple | None:
        """A fused node computes its group's root: its members were merged into it."""
        program = fused_program(n)
        if program is None:
            return None
        found: list = []
        for step in program.steps:
            args = tuple(
                self.token.get(n.inputs[a[1]].id)
                if a[0] == "in"
                else found[a[1]]
                if a[0] == "t"
                else ("lit", repr(a[1]))
                for a in step.args
            )
            key = (
                _shape_key(OPS[step.op], step.params, program.shape, step.dtype, len(step.args)),
                args,
            )
            found.append(self.by_key.get(key, ("step", len(found), n.id)))
        for t in found[:-1]:
            if t[0] == "b":
                self.fused_into.setdefault(t, n)
        return found[-1] if found[-1][0] == "b" else None


def diff_graphs(before: Graph, after: Graph) -> StageDiff:
    """What a pass did: the nodes it added, and what became of each node it took away."""
    m = _Matcher(before)
    diff = StageDiff({n.id for n in after.nodes if m.match(n)}, {}, {}, {})
    first = {t: nodes[0] for t, nodes in m.claimed.items()}
    for t, olds in m.members.items():
        news = m.claimed.get(t, [])
        spare = [a for a in news if not any(a is o for o in olds)]
        for old in olds:
            if any(old is a for a in news):
                diff.kept[old.id] = old
            elif spare and spare[0].id not in diff.added:
                diff.kept[old.id] = spare.pop(0)  # rebuilt: its inputs were rewritten
            elif spare:
                into = spare.pop(0)
                diff.merged[old.id] = into
                diff.how[old.id] = "fused" if fused_program(into) is not None else "replaced"
            elif news or t in m.fused_into:
                diff.merged[old.id] = news[0] if news else m.fused_into[t]
                diff.how[old.id] = "merged" if news else "fused"
            else:
                target = m.alias.get(t)
                while target is not None and target not in first:
                    target = m.alias.get(target)
                if target is not None:
                    diff.merged[old.id], diff.how[old.id] = first[target], "replaced"
    diff.ghosts = [n for n in before.nodes if n.id not in diff.kept]
    _identities(before, after, diff)
    return diff


def _identities(before: Graph, after: Graph, diff: StageDiff) -> None:
    """Gone nodes whose value an input now stands for (`x * 1.0` -> `x`): an output now
    returned as another node, or a node whose every user went to one of its own inputs."""
    for old, new in zip(before.outputs, after.outputs):
        if old.id not in diff.kept and old.id not in diff.merged:
            diff.merged[old.id], diff.how[old.id] = new, "replaced"
    users: dict[int, list[Node]] = {}
    for n in before.nodes:
        for a in n.inputs:
            if isinstance(a, Node):
                users.setdefault(a.id, []).append(n)
    for old in reversed(diff.ghosts):  # users first: a chain of identities resolves
        targets = {id(diff.merged.get(u.id)) for u in users.get(old.id, [])}
        if old.id in diff.merged or len(targets) != 1 or id(None) in targets:
            continue
        into = diff.merged[users[old.id][0].id]
        if any(isinstance(a, Node) and diff.kept.get(a.id) is into for a in old.inputs):
            diff.merged[old.id], diff.how[old.id] = into, "replaced"


def draw_ghosts(drawing: Drawing, diff: StageDiff, cluster: Any) -> None:
    """What a pass took away, beside the graph it left: removed nodes in red; merged,
    replaced or fused ones in orange, pointing at the node that computes their value now."""
    for j, old in enumerate(diff.ghosts):
        if not drawing.canvas.fits(1):
            return
        into = diff.merged.get(old.id)
        what = diff.how.get(old.id, "removed")
        attrs = style.source_attrs(old.op) if old.is_source else style.op_attrs(old.op.kind)
        attrs.update(style.MERGED if into is not None else style.REMOVED)
        title = op_title(old)
        attrs["label"] = style.html_label(title, what)
        attrs["tooltip"] = style.tooltip(f"{what} by this pass: {title}", old.source)
        name = f"{drawing.prefix}g{j}"
        cluster.nodes.append((name, attrs))
        for a in old.inputs:
            if isinstance(a, Node):
                kept = diff.kept.get(a.id)
                tail = drawing.out.get(a.id) or (kept is not None and drawing.out.get(kept.id))
                if tail:
                    drawing.edge(tail, name, {"style": "dashed", "color": "#94a3b8"})
        drawing.out[old.id] = name
        if into is not None and into.id in drawing.out:
            drawing.edge(name, drawing.out[into.id], {**style.MERGED_EDGE, "label": "into"})


def pass_dots(fn: Any, max_nodes: int = style.MAX_NODES) -> list[tuple[str, str, list]]:
    """(stage name, DOT, changes) per stage of `fn.report`, each graph drawn with what its
    pass added (green border), removed (red) or merged (orange, pointing where it went)."""
    stages = fn.report.stages
    names = output_names(stages[0].graph)
    pictures = []
    for i, record in enumerate(stages):
        canvas = Canvas(max_nodes)
        diff = diff_graphs(stages[i - 1].graph, record.graph) if i else None
        drawing = Drawing(canvas, added=diff.added if diff else (), outputs_are=names)
        drawing.draw(record.graph, canvas.root)
        if diff is not None:
            draw_ghosts(drawing, diff, canvas.root)
        title = f"{i}. {record.stage}: {record.nodes_before} → {record.nodes_after} nodes"
        if diff is not None:
            counts = [(len(diff.added), "added"), (len(diff.removed), "removed")] + [
                (list(diff.how.values()).count(how), how) for how in ("replaced", "merged", "fused")
            ]
            title += "; " + (", ".join(f"{c} {how}" for c, how in counts if c) or "no change")
        pictures.append((record.stage, canvas.digraph(title).source, record.changes))
    return pictures


def render_passes(
    fn: Any, target: Any, format: str = "svg", max_nodes: int = style.MAX_NODES
) -> list[pathlib.Path]:
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
    return [
        style.write(source, target / f"{i:02d}_{name}.{format}", format)
        for i, (name, source, _) in enumerate(pictures)
    ]


def _pass_page(pictures: list) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>passes</title><body style="
        "'font-family:sans-serif'><h1>The graph after each pass</h1>"
    ]
    for i, (name, source, changes) in enumerate(pictures):
        parts.append(f"<h2>{i}. {html.escape(name)}</h2><ul>")
        parts += [f"<li><code>{html.escape(c)}</code></li>" for c in changes[:30]]
        parts.append("</ul>")
        parts.append(
            style.pipe(source, "svg").decode()
            if style.dot_available()
            else f"<pre>{html.escape(source)}</pre>"
        )
    if not style.dot_available():
        parts.insert(
            1,
            "<p>Graphviz's <code>dot</code> was not found: DOT sources shown. "
            "Install Graphviz to see the pictures.</p>",
        )
    return "\n".join(parts + ["</body>"])
