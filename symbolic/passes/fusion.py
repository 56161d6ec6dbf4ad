"""Elementwise fusion: a group of elementwise ops becomes one node running one generated
kernel (`common.fusion`), so intermediates never travel through memory.

    before: %3 = mul(%1, %1); %4 = mul(%2, %2); %5 = add(%3, %4); %6 = sqrt(%5)
    after:  %7 = fused_1(%1, %2) : f32[n]    # sqrt(((x0 * x0) + (x1 * x1)))

A group grows from a root through its inputs. A node joins only if every use of it is
inside the group and it has the group's shape: the group then has one output, and no path
can leave the group and come back (the group stays convex, so no cycle can form). An op
joins only if its declaration spells it for some target (`OpDef.expr`, `OpDef.scalar`); one
that spells it for none stays out. The report says what did not happen too: each op left
outside a kernel beside it and why, and the arrays too small to fuse (MIN_ELEMENTS).
"""

from __future__ import annotations

import math
from collections import Counter

from common.fusion import SCALAR_TARGETS, FusedKernel, Program, Step, is_number
from common.ops.core import Aval, OpDef
from symbolic.graph import Graph, Node, numbered
from symbolic.passes.rewrite import Rewriter, provenance, rebuilt

# Fusion saves trips through memory; arrays below this size sit in the cache anyway, and a
# fused kernel's call then costs more than it saves (measured on the zoo's small models:
# fusing their 6,400-element groups made a training step 10-20% slower).
MIN_ELEMENTS = 1 << 16


def _fusable(node: Node) -> bool:
    return _candidate(node) and _spelled(node.op)


def _candidate(node: Node, min_elements: int | None = None) -> bool:
    """An elementwise node that a fused kernel could hold, if its op says how to spell it
    (and its array has `min_elements`, by default MIN_ELEMENTS, read when called)."""
    return (
        not node.is_source
        and node.op.kind == "elementwise"
        and node.op.writes_out
        and not node.op.stateful
        and node.shape is not None
        and None not in node.shape
        and node.dtype.kind in "fb"
        and math.prod(node.shape) >= (MIN_ELEMENTS if min_elements is None else min_elements)
        and _numbers_only(node)
    )


def _spelled(op: OpDef) -> bool:
    """Whether some target spells the op (see `OpDef.scalar`); the numpy target runs its
    kernel, and a target that cannot spell one of a group's ops runs it unfused."""
    return any(op.spelling(target) is not None for target in SCALAR_TARGETS)


def _numbers_only(node: Node) -> bool:
    """Kernels hold numbers as literals and params, nothing else (see `Step`)."""
    values = [a for a in node.inputs if not isinstance(a, Node)] + list(node.params.values())
    return all(v is None or is_number(v) for v in values)


def _uses(graph: Graph) -> Counter:
    """How often each node is used: as an input, an output, or an update."""
    uses: Counter = Counter()
    for node in graph.nodes:
        uses.update(a.id for a in node.inputs if isinstance(a, Node))
    uses.update(n.id for n in graph.outputs)
    uses.update(n.id for pair in graph.updates for n in pair)
    return uses


def _left_out(a: Node, members: dict, root: Node, uses: Counter) -> str | None:
    """Why input `a` of a group's member does not join it (None: it joins)."""
    if not _fusable(a):
        return "not fusable"
    if a.shape != root.shape:
        return f"its shape {a.type_str()} differs from the kernel's {root.type_str()}"
    inner = sum(1 for m in members.values() for b in m.inputs if b is a)
    if inner != uses[a.id]:
        return "its value is also needed outside the kernel (a kernel has one output)"
    return None


def find_groups(graph: Graph) -> list[list[Node]]:
    """Groups of fusable nodes, each in schedule order with its root (the output) last."""
    uses = _uses(graph)
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    taken: set[int] = set()
    groups = []
    for root in reversed(graph.nodes):
        if root.id in taken or not _fusable(root):
            continue
        members = {root.id: root}
        grown = True
        while grown:  # a node joins once all its users are members: repeat until stable
            grown = False
            for m in list(members.values()):
                for a in m.inputs:
                    if (
                        isinstance(a, Node)
                        and a.id not in members
                        and a.id not in taken
                        and _left_out(a, members, root, uses) is None
                    ):
                        members[a.id] = a
                        grown = True
        if len(members) > 1:
            taken.update(members)
            groups.append(sorted(members.values(), key=lambda n: position[n.id]))
    return groups


def _outside(group: list[Node], uses: Counter, taken: set[int]) -> list[tuple[Node, str]]:
    """The elementwise ops feeding a group that stayed out of it, each with the reason."""
    members = {m.id: m for m in group}
    found: dict[int, tuple[Node, str]] = {}
    for m in group:
        for a in m.inputs:
            if isinstance(a, Node) and _candidate(a) and a.id not in members | found.keys():
                if a.id not in taken:  # one in another kernel is fused, just not here
                    found[a.id] = (a, _left_out(a, members, group[-1], uses) or "")
    return [(a, why) for a, why in found.values() if why and why != "not fusable"]


def _too_small(graph: Graph) -> list[str]:
    """One line per array size whose elementwise ops were not fused for being small."""
    sizes: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if _spelled_candidate_but_small(node):
            sizes.setdefault(math.prod(node.shape), []).append(node)
    return [
        f"fusion skipped: {size:,} elements < {MIN_ELEMENTS:,} for {len(nodes)} elementwise "
        f"op{'s' if len(nodes) > 1 else ''} ({', '.join(n.label for n in nodes[:6])}"
        f"{', ...' if len(nodes) > 6 else ''}): below symbolic.passes.fusion.MIN_ELEMENTS a "
        "fused call costs more than the memory trips it saves; set it lower to fuse small arrays"
        for size, nodes in sorted(sizes.items())
    ]


def _spelled_candidate_but_small(node: Node) -> bool:
    if node.is_source or node.shape is None or None in node.shape:
        return False
    small = math.prod(node.shape) < MIN_ELEMENTS
    return small and _spelled(node.op) and _candidate(node, min_elements=0)


def build_program(members: list[Node]) -> tuple[Program, list[Node]]:
    """The group as a Program over its outside inputs (returned in argument order)."""
    index = {m.id: i for i, m in enumerate(members)}
    inputs: list[Node] = []
    steps = []
    for m in members:
        args = []
        for a in m.inputs:
            if not isinstance(a, Node):
                args.append(("lit", a))
            elif a.id in index:
                args.append(("t", index[a.id]))
            else:
                if a not in inputs:
                    inputs.append(a)
                args.append(("in", inputs.index(a)))
        steps.append(Step(m.op.name, tuple(args), tuple(sorted(m.params.items())), m.dtype.name))
    root = members[-1]
    program = Program(
        tuple(a.dtype.name for a in inputs), tuple(steps), root.shape, root.dtype.name
    )
    return program, inputs


def fused_op(program: Program, name: str) -> OpDef:
    aval = Aval(program.shape, program.dtype)
    return OpDef(
        name,
        "elementwise",
        FusedKernel(program, name),
        lambda *avals: aval,
        writes_out=True,
        doc=program.expression(),
    )


@numbered
def fuse_elementwise(graph: Graph) -> tuple[Graph, list[str]]:
    groups = find_groups(graph)
    root_of = {g[-1].id: g for g in groups}
    inside = {m.id for g in groups for m in g[:-1]}
    uses, taken = _uses(graph), {m.id for g in groups for m in g}
    rw = Rewriter()
    fused_names: list[str] = []  # numbered per graph: the same program names them alike
    changes = _too_small(graph) + [
        f"left {n.label} {n.op_name} unfused: its op declares no fused expression for "
        f"any target ({', '.join(SCALAR_TARGETS)})"
        for n in graph.nodes
        if _candidate(n) and not _spelled(n.op)
    ]
    for node in graph.nodes:
        if node.id in inside:
            continue  # computed inside its group's kernel
        current = rw.remap(node)
        if node.id in root_of:
            members = root_of[node.id]
            program, inputs = build_program(members)
            fused = Node(
                fused_op(program, f"fused_{len(fused_names) + 1}"),
                tuple(rw.mapping.get(a.id, a) for a in inputs),
                {},
                node.shape,
                node.dtype,
                node.source,
                provenance=provenance(node.source, *members),
                backward=node.backward,
            )
            changes.append(
                f"fused {', '.join(f'{m.label} {m.op_name}' for m in members)} into "
                f"{fused.label} {fused.op.name}: {program.expression()}"
            )
            changes += [
                f"left {a.label} {a.op_name} outside {fused.label} {fused.op.name}: {why}"
                for a, why in _outside(members, uses, taken)
            ]
            fused_names.append(fused.op.name)
            current = fused
        rw.nodes.append(current)
        rw.mapping[node.id] = current
    return rebuilt(graph, rw.nodes, rw.mapping), changes
