"""Code generation: a scheduled graph becomes straight-line Python, one line per node, each
calling the op's kernel; a value is released (`del`) right after its last use.

    def plan(x, t):
        v3 = var_w.data                      # %3 = variable('w') : f32[64, 10]
        v4 = k_matmul(xp, x, v3)             # %4 = matmul(%1, %3) : f32[64, 10]  # model.py:9
        del v3
        ...
"""

from __future__ import annotations

import ast
import itertools
import linecache
from dataclasses import dataclass
from typing import Any

import numpy as np

from symbolic.graph import Graph, Node, format_node
from symbolic.passes.dead_code import live_ids

_plan_ids = itertools.count()


@dataclass
class Plan:
    fn: Any  # plan(*feeds) -> tuple of outputs; writes the updates last
    source: str
    filename: str
    line_to_node: dict[int, Node]  # for errors: which node a failing line computes


def _is_literal(value: Any) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _aliases_a_variable(node: Node) -> bool:
    """True if `node`'s value may share memory with a variable's storage."""
    while not node.is_source:
        if not node.op.view or not isinstance(node.inputs[0], Node):
            return False
        node = node.inputs[0]
    return node.op == "variable"


class _Writer:
    """Names values and collects the namespace the generated code runs in."""

    def __init__(self, graph: Graph, xp: Any) -> None:
        self.graph = graph
        self.namespace: dict[str, Any] = {"xp": xp, "copyto": xp.copyto}
        self.names: dict[int, str] = {}
        for i, node in enumerate(graph.inputs):
            self.names[node.id] = f"in{i}_{_safe(node.name)}"

    def name(self, arg: Any) -> str:
        if isinstance(arg, Node):
            return self.names[arg.id]
        return repr(arg)

    def bind(self, name: str, value: Any) -> str:
        self.namespace[name] = value
        return name

    def call(self, node: Node, out: str | None = None) -> str:
        ufunc = getattr(node.op.kernel, "ufunc", None)
        if ufunc is not None:  # the kernel is this one ufunc: call it directly, the same work
            kernel = self.bind(f"ufunc_{ufunc}", getattr(self.namespace["xp"], ufunc))
            args = [self.name(a) for a in node.inputs] + ([f"out={out}"] if out else [])
            return f"{kernel}({', '.join(args)})"
        kernel = self.bind(f"k_{node.op.name}", node.op.kernel)
        args = ["xp"] + [self.name(a) for a in node.inputs] + ([f"out={out}"] if out else [])
        if all(_is_literal(v) for v in node.params.values()):
            args += [f"{k}={v!r}" for k, v in node.params.items()]
        elif node.params:
            args.append("**" + self.bind(f"P{node.id}", node.params))
        return f"{kernel}({', '.join(args)})"


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned[:24] or "x"


def _last_uses(graph: Graph) -> dict[int, list[Node]]:
    """For each position in the schedule, the values that die there."""
    keep = {n.id for n in graph.outputs} | {v.id for pair in graph.updates for v in pair}
    fed = {n.id for n in graph.inputs}  # their own inputs belong to the outer graph
    live = live_ids(graph)
    last: dict[int, int] = {}
    for pos, node in enumerate(graph.nodes):
        for a in () if node.id in fed or node.id not in live else node.inputs:
            if isinstance(a, Node):
                last[a.id] = pos
    dying: dict[int, list[Node]] = {}
    by_id = {n.id: n for n in graph.nodes}
    for node_id, pos in last.items():
        if node_id not in keep:
            dying.setdefault(pos, []).append(by_id[node_id])
    return dying


def check_update_shapes(pairs: tuple) -> None:
    """Refuse the updates before writing any, so a bad one cannot leave a half-updated state."""
    for storage, new in pairs:
        if tuple(new.shape) != tuple(storage.data.shape):
            raise ValueError(f"update of variable {storage.name!r}: the new value has shape "
                             f"{tuple(new.shape)}, the variable {tuple(storage.data.shape)}. "
                             "Fix: keep the variable's shape; no variable was changed.")


def generate(graph: Graph, xp: Any = np) -> Plan:
    """The plan of `graph` as Python source, compiled into a function."""
    w = _Writer(graph, xp)
    lines = [f"def plan({', '.join(w.names[n.id] for n in graph.inputs)}):"]
    line_to_node: dict[int, Node] = {}
    dying = _last_uses(graph)
    fed = {n.id for n in graph.inputs}  # placeholders, and a body's captured values
    live = live_ids(graph)  # the plan runs only what outputs and updates need
    memory = graph.memory
    buffers = [xp.empty(size, dtype)  # allocated once, reused by every call
               for size, dtype in memory.buffers] if memory else []
    for pos, node in enumerate(graph.nodes):
        if node.id in fed or node.id not in live:
            continue
        target = w.names.setdefault(node.id, f"v{node.id}")
        if node.op == "constant":
            w.bind(target, xp.asarray(node.value))  # on the plan's device, once
            continue
        if node.op == "variable":
            rhs = f"{w.bind(f'var_{node.id}', node.value)}.data"
        else:
            planned = memory.assignment.get(node.id) if memory else None
            out = None
            if planned is not None:  # this value's window of its flat buffer
                view = buffers[planned][:int(np.prod(node.shape))].reshape(node.shape)
                out = w.bind(f"buf{planned}_{node.id}", view)
            rhs = w.call(node, out)
        line_to_node[len(lines) + 1] = node
        lines.append(f"    {target} = {rhs}".ljust(48) + f"  # {format_node(node, pad=0)}")
        released = [w.names[d.id] for d in dying.get(pos, []) if not d.is_source
                    or d.op == "variable"]
        if released:
            lines.append(f"    del {', '.join(released)}")
    for node in dict.fromkeys(n for n in list(graph.outputs) + [v for _, v in graph.updates]
                              if _aliases_a_variable(n)):
        # a value sharing a weight's memory is copied before any update writes a weight
        # (and a returned array is never the weight itself)
        lines.append(f"    {w.name(node)}_copy = {w.name(node)}.copy()")
        w.names[node.id] = f"{w.name(node)}_copy"
    outputs = [w.name(n) for n in graph.outputs]
    if any(v.shape is None or None in v.shape for _, v in graph.updates):
        pairs = ", ".join(f"({w.bind(f'var_{v.id}', v.value)}, {w.name(n)})"
                          for v, n in graph.updates)
        w.bind("check_update_shapes", check_update_shapes)
        lines.append(f"    check_update_shapes(({pairs},))  # before any write: all or none")
    for var, value in graph.updates:
        new = w.name(value)
        storage = w.bind(f"var_{var.id}", var.value)
        line_to_node[len(lines) + 1] = value
        lines.append(f"    copyto({storage}.data, {new}, casting='same_kind')"
                     f"  # update {var.name}")
    lines.append(f"    return ({', '.join(outputs)}{',' if len(outputs) == 1 else ''})")
    source = "\n".join(lines) + "\n"
    filename = f"<diptych plan {next(_plan_ids)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), w.namespace)  # noqa: S102 (our own generated code)
    return Plan(w.namespace["plan"], source, filename, line_to_node)
