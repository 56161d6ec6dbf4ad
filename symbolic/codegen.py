"""Code generation: a scheduled graph becomes straight-line Python, one line per node, each
calling the op's kernel; a value is released (`del`) right after its last use.

    def plan(in0_x, in1_t):
        v3 = var_3.data                      # %3 = variable('w') : f32[64, 10]
        v4 = k_matmul(xp, in0_x, v3)         # %4 = matmul(%1, %3) : f32[64, 10]  # model.py:9
        del v3
        ...

No user text reaches the source except inside comments, escaped: identifiers are built from
ASCII letters, digits and numbers the plan chooses, and every value that is not a plain
finite Python number (inf, nan, numpy scalars, arrays, index templates) is bound in the
plan's namespace under a name, never spelled.
"""

from __future__ import annotations

import hashlib
import linecache
import math
import threading
import weakref
from dataclasses import dataclass
from types import CodeType
from typing import Any, Callable

import numpy as np

from symbolic.graph import Graph, Node, Numbering, format_node, live_ids, numbering

LINE_WIDTH = 99  # generated lines read like the project's own (ruff's 100)
COMMENT_WIDTH = 100  # user text quoted in a comment is cut to this many characters


@dataclass(frozen=True)
class Window:
    """A planned value's window of a flat buffer: allocated when a plan is instantiated."""

    name: str  # the namespace name the generated code writes into (out=...)
    buffer: int  # index into Plan.buffers
    shape: tuple


@dataclass
class Plan:
    """Generated source and what it needs to run; `instantiate()` makes a callable with its
    own buffers, so concurrent calls each take their own instance."""

    source: str
    filename: str
    line_to_node: dict[int, Node]  # for errors: which node a failing line computes
    names: dict[int, str]  # node id -> its local name in `plan` (errors read the inputs)
    code: CodeType
    namespace: dict[str, Any]  # kernels, constants, variables: shared, never written
    buffers: tuple  # (elements, dtype) of each flat buffer
    windows: tuple[Window, ...]
    xp: Any

    def instantiate(self) -> Callable:
        """plan(*feeds) -> tuple of outputs (the updates written last), with fresh buffers."""
        namespace = dict(self.namespace)
        flat = [self.xp.empty(size, dtype) for size, dtype in self.buffers]
        for window in self.windows:
            size = math.prod(window.shape)
            namespace[window.name] = flat[window.buffer][:size].reshape(window.shape)
        exec(self.code, namespace)  # noqa: S102 (our own generated code)
        return namespace["plan"]


# ---- names and literals ---------------------------------------------------------------------


def identifier(name: str) -> str:
    """A user's name as part of a Python identifier: ASCII letters, digits and `_` only."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "_" for c in name)
    return cleaned[:24] or "x"


def comment(text: str, width: int = COMMENT_WIDTH) -> str:
    """User text safe inside a `#` comment: no line breaks or control characters survive,
    and long text is cut (a name of 10,000 characters stays one short line)."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escaped if len(escaped) <= width else escaped[: width - 3] + "..."


def _is_spellable(value: Any) -> bool:
    """Plain Python values whose repr reads back as the same value: written into the source."""
    if type(value) in (bool, int, str) or value is None:
        return type(value) is not str or value.isascii() and value.isprintable()
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is tuple:
        return all(_is_spellable(v) for v in value)
    return False


class _Writer:
    """Names values and collects the namespace the generated code runs in."""

    def __init__(self, graph: Graph, xp: Any) -> None:
        self.namespace: dict[str, Any] = {"xp": xp, "copyto": xp.copyto}
        self.names: dict[int, str] = {}
        self.windows: list[Window] = []
        self._by_object: dict[int, str] = {}  # id(value) -> its name: one name per object
        self._counts: dict[str, int] = {}  # prefix -> the last number given with it
        self.numbers = numbering() or Numbering(graph)  # names say %k's k, not a global id
        for i, node in enumerate(graph.inputs):
            self.names[node.id] = f"in{i}_{identifier(node.name)}"

    def local(self, node: Node) -> int:
        return self.numbers.number(node)

    def name(self, arg: Any) -> str:
        if isinstance(arg, Node):
            return self.names[arg.id]
        return self.literal(arg)

    def literal(self, value: Any) -> str:
        """A value as source: spelled when that is exact, else bound under a name."""
        return repr(value) if _is_spellable(value) else self.bind_new("const", value)

    def bind(self, name: str, value: Any) -> str:
        self.namespace[name] = value
        return name

    def bind_new(self, prefix: str, value: Any) -> str:
        """Bind `value` under `prefix`, numbered if another object has that name (two ops
        whose names clean up alike never share a kernel); an object bound twice keeps one
        name."""
        name = self._by_object.get(id(value))
        if name is None:
            name, count = prefix, self._counts.get(prefix, 0)
            while name in self.namespace:
                count += 1
                name = f"{prefix}_{count}"
            self._counts[prefix] = count
            self._by_object[id(value)] = self.bind(name, value)
        return name

    def call(self, node: Node, out: str | None = None) -> str:
        ufunc = getattr(node.op.kernel, "ufunc", None)
        if ufunc is not None:  # the kernel is this one ufunc: call it directly, the same work
            kernel = self.bind_new(f"ufunc_{ufunc}", getattr(self.namespace["xp"], ufunc))
            args = [self.name(a) for a in node.inputs] + ([f"out={out}"] if out else [])
            return f"{kernel}({', '.join(args)})"
        kernel = self.bind_new(f"k_{identifier(node.op.name)}", node.op.kernel)
        args = ["xp"] + [self.name(a) for a in node.inputs] + ([f"out={out}"] if out else [])
        args += [f"{k}={self.literal(v)}" for k, v in node.params.items()]
        return f"{kernel}({', '.join(args)})"


def _root_source(node: Node) -> Node | None:
    """The source node (placeholder, variable, constant) whose memory `node` may share."""
    while not node.is_source:
        if not node.op.view or not isinstance(node.inputs[0], Node):
            return None
        node = node.inputs[0]
    return node


def _last_uses(graph: Graph, live: set[int]) -> dict[int, list[Node]]:
    """For each position in the schedule, the values that die there."""
    keep = {n.id for n in graph.outputs} | {v.id for pair in graph.updates for v in pair}
    fed = {n.id for n in graph.inputs}  # their own inputs belong to the outer graph
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
            raise ValueError(
                f"update of variable {storage.name!r}: the new value has shape "
                f"{tuple(new.shape)}, the variable {tuple(storage.data.shape)}. "
                "Fix: keep the variable's shape; no variable was changed."
            )


def _node_line(target: str, rhs: str, node: Node) -> str:
    """The code, and the node it computes as a comment, within LINE_WIDTH where the code
    leaves room (the comment is cut, never the code)."""
    code = f"    {target} = {rhs}".ljust(48)
    room = max(LINE_WIDTH - len(code) - 4, 24)
    return f"{code}  # {comment(format_node(node, pad=0), room)}"


def _body(graph: Graph, w: _Writer, lines: list[str], line_to_node: dict) -> None:
    """One line per live node, in schedule order, each followed by the `del` of what dies."""
    fed = {n.id for n in graph.inputs}  # placeholders, and a body's captured values
    live = live_ids(graph)  # the plan runs only what outputs and updates need
    dying = _last_uses(graph, live)
    memory = graph.memory
    for pos, node in enumerate(graph.nodes):
        if node.id in fed or node.id not in live:
            continue
        target = w.names.setdefault(node.id, f"v{w.local(node)}")
        if node.op == "constant":
            w.bind(target, w.namespace["xp"].asarray(node.value))  # on the plan's device
            continue
        if node.op == "variable":
            rhs = f"{w.bind(f'var_{w.local(node)}', node.value)}.data"
        else:
            planned = memory.assignment.get(node.id) if memory else None
            out = None
            if planned is not None:  # this value's window of its flat buffer
                out = f"buf{planned}_{w.local(node)}"
                w.windows.append(Window(out, planned, tuple(node.shape)))
            rhs = w.call(node, out)
        line_to_node[len(lines) + 1] = node
        lines.append(_node_line(target, rhs, node))
        released = [
            w.names[d.id] for d in dying.get(pos, []) if not d.is_source or d.op == "variable"
        ]
        if released:
            lines.append(f"    del {', '.join(released)}")


def _returns(graph: Graph, w: _Writer, lines: list[str], line_to_node: dict) -> None:
    """Copies of returned values that share a caller's, a weight's or a constant's memory
    (a returned array is never one the caller or a later call can change), then the
    updates (all checked before any is written), then the return."""
    sharing = [n for n in graph.outputs if _root_source(n) is not None]
    sharing += [
        v
        for _, v in graph.updates  # read before a weight is written
        if getattr(_root_source(v), "op", None) == "variable"
    ]
    for node in dict.fromkeys(sharing):
        lines.append(f"    {w.name(node)}_copy = {w.name(node)}.copy()")
        w.names[node.id] = f"{w.name(node)}_copy"
    outputs = [w.name(n) for n in graph.outputs]
    if any(v.shape is None or None in v.shape for _, v in graph.updates):
        pairs = ", ".join(
            f"({w.bind(f'var_{w.local(v)}', v.value)}, {w.name(n)})" for v, n in graph.updates
        )
        w.bind("check_update_shapes", check_update_shapes)
        lines.append(f"    check_update_shapes(({pairs},))  # before any write: all or none")
    for var, value in graph.updates:
        storage = w.bind(f"var_{w.local(var)}", var.value)
        line_to_node[len(lines) + 1] = value
        lines.append(
            f"    copyto({storage}.data, {w.name(value)}, casting='same_kind')"
            f"  # update {comment(var.name)}"
        )
    lines.append(f"    return ({', '.join(outputs)}{',' if len(outputs) == 1 else ''})")


def generate(graph: Graph, xp: Any = np) -> Plan:
    """The plan of `graph` as Python source, compiled (not yet instantiated)."""
    w = _Writer(graph, xp)
    lines = [f"def plan({', '.join(w.names[n.id] for n in graph.inputs)}):"]
    line_to_node: dict[int, Node] = {}
    _body(graph, w, lines, line_to_node)
    _returns(graph, w, lines, line_to_node)
    source = "\n".join(lines) + "\n"
    filename = f"<diptych plan {hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    buffers = tuple(graph.memory.buffers) if graph.memory else ()
    plan = Plan(
        source,
        filename,
        line_to_node,
        dict(w.names),
        compile(source, filename, "exec"),
        w.namespace,
        buffers,
        tuple(w.windows),
        xp,
    )
    _show_in_tracebacks(plan)
    return plan


# ---- tracebacks show the generated lines, for as long as a plan lives ------------------------

_shown: dict[str, int] = {}  # filename -> live plans with that source
_shown_lock = threading.Lock()


def _show_in_tracebacks(plan: Plan) -> None:
    lines = plan.source.splitlines(True)
    with _shown_lock:
        _shown[plan.filename] = _shown.get(plan.filename, 0) + 1
        linecache.cache[plan.filename] = (len(plan.source), None, lines, plan.filename)
    weakref.finalize(plan, _forget, plan.filename)


def _forget(filename: str) -> None:
    with _shown_lock:
        _shown[filename] -= 1
        if not _shown[filename]:
            del _shown[filename]
            linecache.cache.pop(filename, None)
