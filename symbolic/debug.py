"""A stepping debugger over a compiled plan: `f.debug(*inputs)` runs `f.graph` node by node,
fed as `f(*inputs)` is, and stops where asked, so a deferred program can be inspected the way
an eager one is. A fused group runs unfused, one member op at a time.

    dbg = f.debug(x_batch, t_batch)
    dbg.continue_to("model.py:12")   # stop just before the first node made at that line
    dbg.step(); dbg.value()          # run it; its value
    print(dbg)                       # the plan around here, `->` at the next step
    dbg.finish()                     # the outputs, equal to f(x_batch, t_batch)
    dbg.interact()                   # the same from a terminal: s, c TARGET, p %k, w, l, q
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from common import anomaly
from common.fusion import FusedKernel
from common.ops import OPS
from symbolic.codegen import check_update_shapes
from symbolic.graph import Graph, Node, Numbering, format_node, live_ids
from symbolic.passes.fusion import build_program, find_groups


class DebugError(ValueError):
    """A debugger command that cannot be done: says why, and what exists instead."""


@dataclass(frozen=True)
class Location:
    """Where a node sits: its step in the plan, the user's line, and its fused group."""

    node: Node
    step: int | None  # 1-based position in the plan's steps; None for a source
    line: str  # the user's line that made it: "model.py:12: y = x * w"
    group: Node | None  # the fused node it runs inside, unfused
    summary: str  # all of it in a sentence

    def __str__(self) -> str:
        return self.summary


def members_before_fusion(graph: Graph, report: Any) -> dict[int, list[Node]]:
    """For each fused node of `graph`, the nodes it was fused from (the fusion pass's own
    groups, found again in the graph it was given), so the debugger can show their lines."""
    stages = [s.stage for s in report.stages]
    if "fusion" not in stages:
        return {}
    before = report.stages[stages.index("fusion") - 1].graph
    groups = [(build_program(g)[0], g) for g in reversed(find_groups(before))]  # schedule order
    found = {}
    for node in graph.ops:
        if not isinstance(node.op.kernel, FusedKernel):
            continue
        match = next((i for i, (p, _) in enumerate(groups) if p == node.op.kernel.program), None)
        if match is not None:
            found[node.id] = groups.pop(match)[1]
    return found


def unfuse(fused: Node, members: list[Node] | None) -> list[Node]:
    """The fused node's kernel program as one node per step, over the fused node's inputs;
    each takes the number and line of the node it was fused from, where that is known."""
    program = fused.op.kernel.program
    made: list[Node] = []
    for j, step in enumerate(program.steps):
        args = tuple(
            fused.inputs[v] if kind == "in" else made[v] if kind == "t" else v
            for kind, v in step.args
        )
        member = members[j] if members else None
        made.append(
            Node(
                OPS[step.op],
                args,
                dict(step.params),
                program.shape,
                np.dtype(step.dtype),
                member.source if member else fused.source,
                provenance=member.provenance if member else (),
                backward=member.backward if member else fused.backward,
                **({"id": member.id} if member else {}),  # its label: the fusion report's
            )
        )
    return made


def _where(source: str) -> str:
    return source.split(": ", 1)[0]


def _made_at(node: Node, line: str) -> bool:
    """Whether `node` comes from `line` ("file.py:12", a path, or ":12" for any file)."""
    file, _, number = line.rpartition(":")
    for text in (node.source, *node.provenance):
        at_file, _, at_number = _where(text).rpartition(":")
        if at_number == number and (not file or os.path.basename(file) == at_file):
            return True
    return False


def _some(names: list[str], limit: int = 30) -> str:
    names = list(dict.fromkeys(names))
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "") or "none"


COMMANDS = (  # (short, long, help) for `interact`
    ("s", "step", "run the next node"),
    (
        "c",
        "continue",
        "c TARGET: run until just before TARGET (%k, an op name, file.py:LINE "
        "or :LINE); c alone: run to the end",
    ),
    ("p", "print", "p [%k]: a node's value (default: the node that ran last)"),
    ("w", "where", "the user's line of the next node, and its fused group"),
    ("l", "list", "the plan around the next step"),
    ("q", "quit", "leave the debugger"),
    ("h", "help", "this list"),
)
HELP = "\n".join(f"  {short}, {long:<9} {text}" for short, long, text in COMMANDS)


class Debugger:
    """Runs a compiled function's plan one node at a time; made by `f.debug(*inputs)`.

    The steps are the plan's op nodes in schedule order, each fused node replaced by its
    member ops (run with the ops' own kernels, so each value equals the unfused graph's).
    Control-flow nodes run as one step. Placeholders, variables and constants have values
    from the start: variables are read from their storage, and `updates=` are NOT written
    unless `finish(apply_updates=True)` is called.
    """

    def __init__(self, fn: Any, feeds: list) -> None:
        self.fn = fn  # the CompiledFunction
        self.graph = fn.graph
        self._xp = fn.backend.xp
        self._numbers = self.graph.numbering or Numbering(self.graph)
        self.steps: list[Node] = []  # what step() runs, in order
        self._group: dict[int, Node] = {}  # a member's id -> the fused node it runs inside
        self._members: dict[int, list[Node]] = {}  # a fused node's id -> its member steps
        fused_from = members_before_fusion(self.graph, fn.report)
        live = live_ids(self.graph)  # as the plan, run only what outputs and updates need
        for node in self.graph.ops:
            if node.id not in live:
                continue
            if isinstance(node.op.kernel, FusedKernel):
                members = self._members[node.id] = unfuse(node, fused_from.get(node.id))
                self._group.update((m.id, node) for m in members)
                self.steps += members
            else:
                self.steps.append(node)
        self._index = {n.id: i for i, n in enumerate(self.steps)}
        planned = [n for n in self.graph.nodes if n.id in live]  # sources, fused nodes too
        with self._numbers.active():
            self._by_label = {n.label: n for n in planned + self.steps}
        self._values: dict[int, Any] = dict(zip((n.id for n in self.graph.inputs), feeds))
        for node in self.graph.nodes:
            if node.op == "variable":
                self._values[node.id] = node.value.data
            elif node.op == "constant":
                self._values[node.id] = self._xp.asarray(node.value)  # on the plan's device
        self.position = 0  # how many steps have run; steps[position] runs next
        self._stopped_at: int | None = None  # where the last continue_to stopped
        self._updated = False

    @property
    def done(self) -> bool:
        return self.position == len(self.steps)

    # ---- running ---------------------------------------------------------------------

    def step(self) -> Node | None:
        """Run the next node and return it (None when every step has run)."""
        if self.done:
            return None
        node = self.steps[self.position]
        args = [self._values[a.id] if isinstance(a, Node) else a for a in node.inputs]
        try:
            value = node.op.kernel(self._xp, *args, **node.params)
        except Exception as exc:  # the plan's own message: the op, the line, the fed sizes
            raise self._failure(node, exc) from exc
        self._values[node.id] = value
        group = self._group.get(node.id)
        if group is not None and self._members[group.id][-1] is node:
            self._values[group.id] = value  # the group's value: its last member's
        self.position += 1
        return node

    def continue_to(self, target: Any) -> Node:
        """Run until just before `target` runs: a node (or symbol, or its label "%k"), an
        op name ("matmul"), or a user's line ("model.py:12", or ":12" in any file); a fused
        node stops before its first member. Continuing from a stop to the same op name or
        line goes on to its next occurrence. Nothing runs if the target is not ahead."""
        matches, exact = self._matcher(target)
        start = self.position
        if not exact and self._stopped_at == start:
            start += 1  # as a debugger continues from a breakpoint it stopped at
        index = next((i for i in range(start, len(self.steps)) if matches(self.steps[i])), None)
        if index is None:
            raise DebugError(self._not_ahead(target, exact))
        while self.position < index:
            self.step()
        self._stopped_at = index
        return self.steps[index]

    def finish(self, apply_updates: bool = False) -> Any:
        """Run every step left; return the outputs as `f(*inputs)` does (values equal bit
        for bit where the fused kernels ran with numpy; numba's exp, log and tanh may differ
        by a few ulp). `apply_updates=True` then writes the variables' updates, as a call."""
        while self.step() is not None:
            pass
        if apply_updates:
            self._apply_updates()
        values = [self._xp.array(self._values[n.id], copy=True) for n in self.graph.outputs]
        if self.fn.backend.name == "numpy":
            values = [v[()] if v.ndim == 0 else v for v in values]
        return values[0] if self.fn._single else values

    run = finish  # pdb's word for it

    def _apply_updates(self) -> None:
        if self._updated:
            raise DebugError("this debugger already applied the updates once; not again.")
        pairs = tuple(
            (var.value, self._xp.array(self._values[new.id], copy=True))  # read before writing
            for var, new in self.graph.updates
        )
        check_update_shapes(pairs)
        for storage, new in pairs:
            self._xp.copyto(storage.data, new, casting="same_kind")
        self._updated = True

    def _failure(self, node: Node, exc: Exception) -> Exception:
        names = self.fn._plan.names  # the plan's local names of the values computed so far
        local = {names[i]: v for i, v in self._values.items() if i in names}
        return self.fn._node_error(node, exc, local)

    # ---- looking ---------------------------------------------------------------------

    def value(self, node: Any = None) -> Any:
        """A node's value (a node, symbol or "%k"); the node that ran last when None."""
        with self._numbers.active():
            node = self._last_run() if node is None else self.node(node)
            if node.id not in self._values:
                last = self._members[node.id][-1] if node.id in self._members else node
                raise DebugError(
                    f"{node.label} {node.op_name} has not run yet: it is step "
                    f"{self._index[last.id] + 1} of {len(self.steps)}, and {self.position} "
                    f"have run. Fix: continue_to('{last.label}'), then step()."
                )
            return self._values[node.id]

    def where(self, node: Any = None) -> Location:
        """The user's line of a node (the next to run when None) and its fused group."""
        with self._numbers.active():
            node = self._current() if node is None else self.node(node)
            index = self._index.get(node.id)
            group = self._group.get(node.id)
            summary = f"{node.label} {node.op_name}"
            if index is not None:
                summary = f"step {index + 1} of {len(self.steps)}: {summary}"
            summary += f", made at {node.source or 'an unknown line'}"
            if group is not None:
                summary += (
                    f"; runs inside {group.label} {group.op_name} ({group.op.doc}), unfused "
                    "here one op at a time"
                )
            return Location(node, None if index is None else index + 1, node.source, group, summary)

    def node(self, name: Any) -> Node:
        """The plan's node for a label "%k", a node or a symbol (a node fused away is found
        as the member step that stands for it); a clear error otherwise."""
        with self._numbers.active():
            wanted = getattr(name, "node", name)  # a Symbol names its node
            label = wanted.label if isinstance(wanted, Node) else str(name).strip()
            found = self._by_label.get(label)
            if found is None:
                raise DebugError(
                    f"{name!r} is not a node of this plan (a pass may have replaced it: see "
                    f"f.report). Its nodes: {_some(list(self._by_label))}."
                )
            return found

    def listing(self, context: int = 3) -> str:
        """The steps around the next one (`->`), members indented under their fused node."""
        with self._numbers.active():
            lo = max(0, self.position - context)
            hi = min(len(self.steps), self.position + context + 1)
            lines = [f"plan: {self.position} of {len(self.steps)} steps ran"]
            for i in range(lo, hi):
                node = self.steps[i]
                group = self._group.get(node.id)
                if group is not None and (
                    i == lo or self._group.get(self.steps[i - 1].id) is not group
                ):
                    lines.append(f"        {format_node(group)}, run unfused:")
                marker = "->" if i == self.position else "  "
                text = f"  | {format_node(node, pad=56)}" if group else format_node(node)
                lines.append(f"{marker} {i + 1:>4} {text}")
            if self.done:
                lines.append("-> end: every step ran; finish() returns the outputs")
            return "\n".join(lines)

    def __repr__(self) -> str:  # what Jupyter shows
        return self.listing()

    def _current(self) -> Node:
        if not self.steps:
            raise DebugError("this plan runs no ops: its outputs are its inputs or weights.")
        return self.steps[min(self.position, len(self.steps) - 1)]

    def _last_run(self) -> Node:
        if self.position == 0:
            raise DebugError("nothing has run yet. Fix: step() first, or name a node.")
        return self.steps[self.position - 1]

    # ---- targets ---------------------------------------------------------------------

    def _matcher(self, target: Any) -> tuple[Callable[[Node], bool], bool]:
        """A test for the step to stop at, and whether it names one node (else a pattern)."""
        if not isinstance(target, str) or target.strip().startswith("%"):
            wanted = self.node(target)
            first = self._members.get(wanted.id, [wanted])[0]
            return (lambda step: step is first), True
        target = target.strip()
        if target.rpartition(":")[2].isdigit():
            return (lambda step: _made_at(step, target)), False

        def runs_op(step: Node) -> bool:
            group = self._group.get(step.id)
            starts_group = group is not None and self._members[group.id][0] is step
            return step.op_name == target or starts_group and group.op_name == target

        return runs_op, False

    def _not_ahead(self, target: Any, exact: bool) -> str:
        ahead = self.steps[self.position :]
        with self._numbers.active():
            if exact:
                node = self.node(target)
                return (
                    f"{node.label} {node.op_name} is not ahead: it already ran, or it is a "
                    f"source (its value is there: value('{node.label}'))."
                )
            if target.rpartition(":")[2].isdigit():
                lines = [_where(n.source) for n in ahead if n.source]
                return f"no step ahead was made at {target}. Lines ahead: {_some(lines)}."
            groups = [self._group[n.id].op_name for n in ahead if n.id in self._group]
            ops = [n.op_name for n in ahead] + groups
            return f"no step ahead runs an op named {target!r}. Ops ahead: {_some(ops)}."

    # ---- the terminal ----------------------------------------------------------------

    def interact(self) -> None:
        """A command loop like pdb's on stdin (h lists the commands); Enter repeats the last."""
        print(self.listing())
        commands = {name: long for short, long, _ in COMMANDS for name in (short, long)}
        last = ""
        while True:
            try:
                line = input("(diptych-debug) ").strip() or last
            except EOFError:  # the end of a script, or Ctrl-D
                print()
                return
            last = line
            word, _, argument = line.partition(" ")
            command = commands.get(word)
            if command == "quit":
                return
            if command is None:
                print(f"unknown command {word!r}. Commands:\n{HELP}")
                continue
            try:
                getattr(self, f"_do_{command}")(argument.strip())
            except (DebugError, RuntimeError) as error:
                print(error)

    def _do_step(self, _: str) -> None:
        node = self.step()
        if node is None:
            print("every step has run: q leaves, p %k shows any value")
            return
        with self._numbers.active():
            print(f"ran {format_node(node)}")
            upcoming = "nothing: every step ran" if self.done else format_node(self._current())
            print(f"next: {upcoming}")

    def _do_continue(self, target: str) -> None:
        if target:
            self.continue_to(target)
        else:
            self.finish()
        print(self.listing())

    def _do_print(self, name: str) -> None:
        node = self.node(name) if name else self._last_run()
        value = self.value(node)
        with self._numbers.active():
            print(f"{node.label} = {value!r}")

    def _do_where(self, _: str) -> None:
        print(self.where())

    def _do_list(self, _: str) -> None:
        print(self.listing())

    def _do_help(self, _: str) -> None:
        print(HELP)


# ---- anomaly mode --------------------------------------------------------------------------


def call_checked(fn: Any, feeds: list) -> Any:
    """A call of `fn` in anomaly mode (`common.detect_anomaly`): its plan stepped node by
    node, fused groups unfused, every value checked; the first NaN or inf an op produced
    raises `AnomalyError` naming the op and the user's line (for a gradient node, the forward
    op it differentiates and that op's line). Updates are written only if nothing was found."""
    debugger = Debugger(fn, feeds)
    while (node := debugger.step()) is not None:
        found = anomaly.nonfinite(debugger.value(node))
        if found is not None:
            raise _anomaly(debugger, node, found)
    return debugger.finish(apply_updates=True)


def _anomaly(debugger: Debugger, node: Node, found: str) -> anomaly.AnomalyError:
    """The error for `node`, whose value `found` describes (its inputs' values are known)."""
    came_in = []
    for i, a in enumerate(node.inputs):
        bad = anomaly.nonfinite(debugger.value(a) if isinstance(a, Node) else a)
        if bad is not None:
            what = f", {a.op_name} {a.name!r}" if isinstance(a, Node) and a.name else ""
            came_in.append(f"input {i}{what} ({bad})")
    forward = ""
    if node.backward:  # its line is the forward op's: name the forward ops made there
        made_there = [
            n.op_name
            for n in debugger.fn.traced_graph.ops
            if not n.backward and n.source == node.source
        ]
        forward = " or ".join(dict.fromkeys(made_there)) or "an op"
    line = node.source or "an unknown line"
    return anomaly.anomaly_error(node.op_name, found, line, came_in, forward)
