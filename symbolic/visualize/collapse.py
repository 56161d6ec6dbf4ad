"""Collapsing a large graph into boxes a reader can take in. The ops one source line made
become one box per connected run, and per layer: an op belongs to the module of the last
variables it depends on (`layers.0` for `layers.0.weight`), so a line that applies a whole
`nn.Sequential` still gives one box per layer, and so do their gradients. Lone ops of one
line side by side (a zero gradient per weight) are one box. Variables and constants feeding
the same boxes become one table; the forward values that the backward part reads are drawn
again beside their readers.

    %3 = mul(x, scale0); %4 = add(%3, shift0)        # model.py:32  -> box "model.py:32, 2 ops"
    %5 = pow(%4, 3); ...; %12 = mul(%6, %11)         # model.py:21  -> box "model.py:21, 8 ops"
    %13 = mul(%12, scale1); ...                      # model.py:32  -> a second box, below

A box never closes a cycle (a path out of a box and back in): the node that would is left
out of it, so the flow stays top to bottom. Outputs stay nodes, so what they are shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from common import style
from symbolic.graph import Graph, Node, body_graphs
from symbolic.visualize.facts import cut

# collapse="auto": a graph drawing more nodes than AUTO_NODES is collapsed; one drawing more
# than AUTO_REFERENCES keeps its nodes but draws forward values again beside their backward
# readers; a control-flow body up to AUTO_BODY_NODES is drawn op by op, to show its step.
AUTO_NODES = 60
AUTO_REFERENCES = 30
AUTO_BODY_NODES = 24
REFERENCES = "references"  # the mode between: every node, and no long forward-backward edges
TABLE_ROWS = 6  # a table lists this many values, then a count


def drawn_nodes(graph: Graph) -> int:
    """How many nodes the full picture draws: a fused kernel its steps, a control node its
    bodies, each update the variable it writes."""
    count = len(graph.updates)
    for node in graph.nodes:
        program = None if node.is_source else getattr(node.op.kernel, "program", None)
        steps = len(program.steps) if node.op_name.startswith("fused_") and program else 1
        count += steps + sum(drawn_nodes(body) for body in body_graphs(node))
    return count


def chosen(collapse: Any, graph: Graph, body: bool = False) -> Any:
    """What `collapse` means for this graph: "auto" collapses a graph too large to read
    node by node (a small control-flow body stays whole, to show the step it repeats)."""
    if collapse != "auto":
        return collapse
    count = drawn_nodes(graph)
    if body:
        return count > AUTO_BODY_NODES
    return True if count > AUTO_NODES else REFERENCES if count > AUTO_REFERENCES else False


@dataclass
class Group:
    name: str  # the DOT name of its box
    key: str  # what its members share: `model.py:12`
    members: list  # its nodes, in schedule order


@dataclass
class Folding:
    """What a collapsed picture draws instead of single nodes."""

    groups: dict[int, Group]  # op id -> its box
    tables: dict[int, tuple[str, list]]  # source id -> (table name, the sources it lists)
    references: dict[str, str]  # forward drawing -> its copy beside its backward readers
    referred: dict[str, list]  # copy name -> the forward values it stands for


def fold(graph: Graph, regions: dict[int, str], prefix: str, mode: Any, keep: set) -> Folding:
    """Boxes, tables and references for a collapsed picture (only references in mode
    REFERENCES); nodes in `keep` stay nodes."""
    layers = _layers(graph, regions)

    def by_line_and_layer(node: Node) -> Any:
        line = style.where(node.source)
        return (line, layers[node.id]) if line else None

    key_of = mode if callable(mode) else by_line_and_layer
    groups = {} if mode == REFERENCES else _groups(graph, regions, prefix, key_of, keep)
    names = {n.id: f"{prefix}n{i}" for i, n in enumerate(graph.nodes)}

    def drawn(node: Node) -> str:
        return groups[node.id].name if node.id in groups else names[node.id]

    tables = _tables(graph, regions, f"{prefix}t", drawn) if groups else {}

    def tail(node: Node) -> str:
        return tables[node.id][0] if node.id in tables else drawn(node)

    references, referred = _references(graph, regions, f"{prefix}r", drawn, tail)
    return Folding(groups, tables, references, referred)


def _tables(graph: Graph, regions: dict[int, str], prefix: str, drawn: Callable) -> dict:
    """Variables and constants that feed the same forward drawings, one table each:
    source id -> (table name, its sources). Backward readers get references instead."""
    readers: dict[int, set[str]] = {}
    for node in graph.nodes:
        for a in node.inputs:
            if isinstance(a, Node) and a.op in ("variable", "constant"):
                if regions[node.id] != "backward" or regions[a.id] == "backward":
                    readers.setdefault(a.id, set()).add(drawn(node))
    return {
        n.id: (f"{prefix}{k}", nodes)
        for k, nodes in enumerate(_buckets(graph.nodes, readers))
        for n in nodes
    }


def _references(
    graph: Graph, regions: dict[int, str], prefix: str, drawn: Callable, tail: Callable
) -> tuple[dict, dict]:
    """The forward drawings the backward part reads, bucketed by the backward drawings they
    feed: drawing -> its copy's name, and copy's name -> the values it stands for."""
    readers: dict[str, set[str]] = {}
    values: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for a in node.inputs:
            if isinstance(a, Node) and regions[node.id] == "backward":
                if regions[a.id] != "backward":
                    readers.setdefault(tail(a), set()).add(drawn(node))
                    values.setdefault(tail(a), []).append(a)
    references, referred = {}, {}
    for k, tails in enumerate(_buckets(list(readers), readers, alone=True)):
        referred[f"{prefix}{k}"] = list(dict.fromkeys(v for t in tails for v in values[t]))
        references.update((t, f"{prefix}{k}") for t in tails)
    return references, referred


def _layers(graph: Graph, regions: dict[int, str]) -> dict[int, int]:
    """Per node, the layer it belongs to: the last module whose variables a forward value
    depends on (`layers.0` for `layers.0.weight`, numbered in order of first use; -1: none);
    a backward node takes the layer of the forward values it reads (the saved activations of
    the layer it differentiates), else of its earliest input."""
    layer: dict[int, int] = {}
    modules: dict[str, int] = {}
    for node in graph.nodes:
        inputs = [a for a in node.inputs if isinstance(a, Node)]
        forward = [layer.get(a.id, -1) for a in inputs if regions.get(a.id) != "backward"]
        if node.op == "variable":
            module = node.name.rpartition(".")[0] or node.name
            layer[node.id] = modules.setdefault(module, len(modules))
        elif regions[node.id] != "backward" or forward:
            layer[node.id] = max(forward, default=-1)
        else:
            layer[node.id] = min((layer.get(a.id, -1) for a in inputs), default=-1)
    return layer


def _groups(
    graph: Graph, regions: dict[int, str], prefix: str, key_of: Callable, keep: set
) -> dict[int, Group]:
    """Each op node's group: a run of ops with the same key and region, joined by edges
    between them, that no path leaves and re-enters; groups of one are left out."""
    group_of: dict[int, int] = {}  # node id -> group index
    feeds: list[set[int]] = []  # group index -> the groups it reads from
    keys: list[tuple] = []
    members: list[list[Node]] = []
    for node in graph.nodes:
        key = None if node.is_source or body_graphs(node) else key_of(node)  # bodies: drawn
        if key is not None and node.id in keep:
            key = ("kept", key)  # an output: joins no run, only side-by-side siblings
        read = {group_of[a.id] for a in node.inputs if isinstance(a, Node) and a.id in group_of}
        into = None
        if key is not None:
            into = next(
                (
                    g
                    for g in sorted(read)
                    if keys[g] == (regions[node.id], key)
                    and not any(_reaches(feeds, h, g) for h in read - {g})
                ),
                None,
            )
        if into is None:
            into = len(keys)
            keys.append((regions[node.id], key))
            feeds.append(set())
            members.append([])
        feeds[into] |= read - {into}
        members[into].append(node)
        group_of[node.id] = into
    _merge_siblings(feeds, keys, members)
    found = {}
    for g, nodes in enumerate(members):
        if keys[g][1] is not None and len(nodes) > 1:
            group = Group(f"{prefix}c{g}", _shown(keys[g][1]), nodes)
            found.update((n.id, group) for n in nodes)
    return found


def _shown(key: Any) -> str:
    """A group's key as its box says it: the line (not the layer, nor the mark of outputs)."""
    while isinstance(key, tuple) and key:
        key = key[1] if key[0] == "kept" else key[0]
    return str(key)


def _merge_siblings(feeds: list[set[int]], keys: list[tuple], members: list[list]) -> None:
    """Lone ops of one line doing the same thing side by side join into one group: the same
    op feeding the same groups (a zero gradient for each of four weights), or, for outputs,
    read from the same groups (the gradients a scan returns)."""
    users: list[set[int]] = [set() for _ in keys]
    for g, read in enumerate(feeds):
        for h in read:
            users[h].add(g)
    alike: dict[tuple, list[int]] = {}
    for g, nodes in enumerate(members):
        if len(nodes) == 1 and keys[g][1] is not None:
            node = nodes[0]
            feeds_or_reads = frozenset(users[g]) or frozenset(feeds[g])
            what = (keys[g][0], style.where(node.source), node.op_name, feeds_or_reads)
            alike.setdefault(what, []).append(g)
    for head, *others in (gs for gs in alike.values() if len(gs) > 1):
        for g in others:
            if _reaches(feeds, g, head) or _reaches(feeds, head, g):
                continue
            members[head] += members[g]
            members[g] = []
            feeds[head] |= feeds[g]
            for user in users[g]:
                feeds[user].discard(g)


def _reaches(feeds: list[set[int]], start: int, goal: int) -> bool:
    """Whether group `goal` is upstream of group `start` (joining would close a cycle)."""
    stack, seen = [start], set()
    while stack:
        g = stack.pop()
        if g == goal:
            return True
        if g not in seen:
            seen.add(g)
            stack.extend(feeds[g])
    return False


def _buckets(items: list, users: dict, alone: bool = False) -> list[list]:
    """The items that feed the same drawings, together, in order (items keyed in `users`
    by themselves or by their id); buckets of one are left out unless `alone`."""
    buckets: dict[frozenset, list] = {}
    for item in items:
        key = item if item in users else getattr(item, "id", None)
        if key in users:
            buckets.setdefault(frozenset(users[key]), []).append(item)
    return [b for b in buckets.values() if alone or len(b) > 1]


def rows(titles: list[str]) -> list[str]:
    """The lines of a table: its first rows, then how many more."""
    shown = list(dict.fromkeys(titles))
    extra = [f"… and {len(shown) - TABLE_ROWS} more"] if len(shown) > TABLE_ROWS else []
    return [cut(t, 40) for t in shown[:TABLE_ROWS]] + extra


def table_attrs(sources: list[Node], title: Callable[[Node], str]) -> dict:
    """One node listing several sources, in the look of the first (a variable's, a constant's)."""
    kinds = sorted({n.op for n in sources}, key=("variable", "constant").index)
    what = " and ".join(f"{sum(n.op == k for n in sources)} {k}s" for k in kinds)
    return {
        **style.source_attrs(kinds[0]),
        "shape": "box",
        "label": style.html_label(what, *rows([f"{title(n)} : {n.type_str()}" for n in sources])),
        "tooltip": style.tooltip(*(f"{title(n)} : {n.type_str()}  {n.source}" for n in sources)),
    }


def box_attrs(group: Group, title: Callable[[Node], str], outputs: list[str]) -> dict:
    """A box for a group: its line, the code, how many of which ops, the variables read, and
    what its outputs are (drawn as an output then)."""
    counts: dict[str, int] = {}
    for m in group.members:
        counts[title(m)] = counts.get(title(m), 0) + 1
    summary = ", ".join(f"{op} ×{c}" if c > 1 else op for op, c in counts.items())
    read = [a.name for m in group.members for a in m.inputs if getattr(a, "op", "") == "variable"]
    reads = ", ".join(dict.fromkeys(read))
    first = group.members[0]
    return {
        **style.COLLAPSED,
        "label": style.html_label(
            group.key,
            cut(style.code(first.source), 32),
            cut(f"{len(group.members)} ops: {summary}", 36),
            cut(f"reads {reads}", 36) if reads else "",
            *rows(outputs),
        ),
        "tooltip": style.tooltip(
            first.source, *(f"{title(m)} : {m.type_str()}" for m in group.members)
        ),
        **(style.OUTPUT if outputs else {}),
    }
