"""Control-flow nodes: `cond`, `while_loop` and `scan` on symbols.

Each body is a subgraph traced once from the Python function, on fresh placeholders; outer
values it uses (weights, other symbols) become extra inputs of the node, so gradients reach
them. A control node yields a tuple; `item` nodes pick its parts.

Gradients: `cond` differentiates each branch (a cond of the branch gradients); `scan` runs
a reverse scan of the body's gradient, using the carries the forward scan saved (the
tape of a loop, kept as data). `while_loop` does the same as TF1 does: its forward loop
saves the carry of each iteration (when a carry is a float) and its trip count, and its
gradient is a reverse scan over those carries, skipped when no iteration ran.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Callable

import numpy as np

from common import functional as F
from common.autodiff import PartialTuple
from common.control import leaves, rebuild
from common.dispatch import apply
from common.ops.control import COND, ITEM, SCAN, WHILE
from common.ops.core import Aval, OpError
from symbolic.codegen import generate
from symbolic.graph import Graph, Node, next_id, recording
from symbolic.symbol import Symbol, as_symbol, constant, user_line


class Body:
    """A traced subgraph: inputs are the function's arguments, then the captured values.

    The control ops in `common.ops.control` hold bodies in their params; their kernels call
    `run`, and their VJP rules, which build symbolic nodes, call `cond_vjp`, `while_vjp` and
    `scan_vjp` (defined below in this module), so that `common` needs no symbolic import.
    """

    def __init__(self, graph: Graph, structure: Any) -> None:
        self.graph = graph
        self.structure = structure  # what the function returned, to rebuild tuples
        self._plans: dict[str, Any] = {}

    def run(self, xp: Any, *args: Any) -> tuple:
        plan = self._plans.get(xp.__name__)
        if plan is None:
            plan = self._plans[xp.__name__] = generate(self.graph, xp).instantiate()
        return plan(*args)

    def __repr__(self) -> str:
        return f"<body: {len(self.graph.ops)} ops>"


class _StackRoom:
    """Room on the stack for nested control flow. Tracing a body calls the user's function
    from inside F.cond, which the user's function called: nesting recurses through the
    tracer, about 7 frames a level where eager adds 1. While bodies are traced, the
    recursion limit grows by `frames_per_level` per open level, so symbolic tracing nests
    as deep as eager runs. The limit is per process: levels open in all threads count."""

    def __init__(self, frames_per_level: int) -> None:
        self.frames_per_level = frames_per_level
        self._levels = 0  # body traces open now, in all threads
        self._base = 0  # the limit before the first level opened
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def level(self):
        with self._lock:
            if self._levels == 0:
                self._base = sys.getrecursionlimit()
            self._open(+1)
        try:
            yield
        finally:
            with self._lock:
                self._open(-1)

    def _open(self, change: int) -> None:
        self._levels += change
        sys.setrecursionlimit(self._base + self.frames_per_level * self._levels)


_stack_room = _StackRoom(frames_per_level=16)


def _trace(fn: Callable, avals: list[Aval], names: list[str]) -> tuple:
    """Call `fn` on fresh placeholders: (placeholder nodes, fn's result, output nodes, the
    first node id of the trace)."""
    start = next_id()
    source = user_line()
    with recording(False), _stack_room.level():  # a body's nodes belong to the body alone
        args = [
            Node("placeholder", (), {}, a.shape, a.dtype, source, name=n)
            for a, n in zip(avals, names)
        ]
        result = fn([Symbol(a) for a in args])
        outputs = [as_symbol(o).node for o in leaves(result)] if result is not None else []
    return args, result, outputs, start


def _captures(outputs: list[Node], args: list[Node], start: int) -> list[Node]:
    """Outer nodes a body reads: made before tracing began, or variables (which must be
    inputs so that gradients reach them)."""
    arg_ids = {a.id for a in args}
    found: dict[int, Node] = {}
    stack = list(outputs)
    seen = set()
    while stack:
        node = stack.pop()
        if node.id in seen or node.id in arg_ids:
            continue
        seen.add(node.id)
        if node.id < start or node.op == "variable":
            found[node.id] = node
            continue
        stack.extend(a for a in node.inputs if isinstance(a, Node))
    return sorted(found.values(), key=lambda n: n.id)


def _bodies(fns: list[Callable], avals: list[Aval], names: list[str]) -> tuple[list, list]:
    """Trace several functions of the same arguments; all share one list of captures."""
    traces = [_trace(fn, avals, names) for fn in fns]
    captured: dict[int, Node] = {}
    for args, _, outputs, start in traces:
        captured.update((n.id, n) for n in _captures(outputs, args, start))
    caps = sorted(captured.values(), key=lambda n: n.id)
    bodies = [Body(Graph(args + caps, outputs), result) for args, result, outputs, _ in traces]
    return bodies, caps


def inline(graph: Graph, args: list) -> list:
    """Re-apply a subgraph's ops to new arguments (symbols): a copy of the body, in place."""
    values: dict[int, Any] = {n.id: a for n, a in zip(graph.inputs, args)}
    for node in graph.nodes:
        if node.id in values:
            continue
        if node.is_source:
            values[node.id] = Symbol(node)
            continue
        inputs = [values[a.id] if isinstance(a, Node) else a for a in node.inputs]
        values[node.id] = apply(node.op, *inputs, **node.params)
    return [values[n.id] for n in graph.outputs]


def _avals(values: list) -> list[Aval]:
    return [as_symbol(v).aval for v in values]


def _aval_param(node: Node) -> tuple:
    return (node.shape, node.dtype.name)


def _items(tuple_symbol: Symbol, nodes: list[Node]) -> list[Symbol]:
    return [apply(ITEM, tuple_symbol, index=i, aval=_aval_param(n)) for i, n in enumerate(nodes)]


def _cotangents(g: PartialTuple, out: Symbol, out_avals: tuple) -> list:
    """Every output's cotangent: the given ones, zeros for the rest."""
    result = []
    for i, (shape, dtype) in enumerate(out_avals):
        if i in g:
            result.append(g[i])
        else:
            like = apply(ITEM, out, index=i, aval=(shape, dtype))
            result.append(F.broadcast_like(constant(np.zeros((), dtype)), like))
    return result


def _differentiable(values: list) -> list[int]:
    return [i for i, v in enumerate(values) if as_symbol(v).dtype.kind == "f"]


# ---- cond -------------------------------------------------------------------------------


def _cond_vjp(g, out, pred, *args, branches, out_avals):
    gs = _cotangents(g, out, out_avals)
    wrt = _differentiable(args)

    def branch_vjp(body: Body) -> Callable:
        def vjp(*a):
            outs = inline(body.graph, list(a[: len(args)]))
            from symbolic.gradients import grad

            return tuple(grad(outs, [a[i] for i in wrt], grad_y=list(a[len(args) :])))

        return vjp

    grads = leaves(F.cond(pred, branch_vjp(branches[0]), branch_vjp(branches[1]), *args, *gs))
    out_grads: list = [None] * (1 + len(args))
    for i, gr in zip(wrt, grads):
        out_grads[1 + i] = gr
    return out_grads


def cond(pred: Any, true_fn: Callable, false_fn: Callable, operands: tuple) -> Any:
    pred = as_symbol(pred)
    if pred.shape not in ((), None):
        raise OpError(
            f"cond: the predicate must be a single boolean, got shape "
            f"{pred.shape}. Fix: reduce it, or use F.where for an "
            "elementwise choice."
        )
    avals = _avals(list(operands))
    names = [f"operand{i}" for i in range(len(operands))]
    (true_body, false_body), caps = _bodies(
        [lambda a: true_fn(*a), lambda a: false_fn(*a)], avals, names
    )
    t_out, f_out = true_body.graph.outputs, false_body.graph.outputs
    if [n.aval for n in t_out] != [n.aval for n in f_out]:
        raise OpError(
            "cond: the branches return different types: "
            f"{[n.type_str() for n in t_out]} vs "
            f"{[n.type_str() for n in f_out]}. Fix: make both branches "
            "return values of the same shapes and dtypes."
        )
    node = apply(
        COND,
        pred,
        *operands,
        *(Symbol(c) for c in caps),
        branches=(true_body, false_body),
        out_avals=tuple(map(_aval_param, t_out)),
    )
    return rebuild(true_body.structure, _items(node, t_out))


# ---- while_loop -------------------------------------------------------------------------


def _while_vjp(g, out, *args, test, body, n_carry, out_avals):
    """The reverse scan of `scan`'s gradient over the saved carries, as though the loop were
    a scan of its trip count; a cond skips it when the loop ran no iteration."""
    if len(out_avals) == n_carry:  # no float carry: no gradient to give
        return [None] * len(args)
    init, caps = args[:n_carry], args[n_carry:]
    g_carry = _cotangents(g, out, out_avals[:n_carry])
    count = apply(ITEM, out, index=n_carry, aval=out_avals[n_carry])
    saved = [
        apply(ITEM, out, index=n_carry + 1 + i, aval=out_avals[n_carry + 1 + i])
        for i in range(n_carry)
    ]
    c_wrt, cap_wrt = _differentiable(init), _differentiable(caps)
    s_wrt = [i for i in c_wrt if n_carry + 1 + i in g]  # saved carries a gradient graph read
    g_saved = [g[n_carry + 1 + i] for i in s_wrt]

    def reverse(*a):
        tape, g_out, g_tape = a[:n_carry], a[n_carry : 2 * n_carry], a[2 * n_carry :]
        g_init, _, g_caps = _reverse_scan(
            body, init, (), caps, tape, g_out, [], list(zip(s_wrt, g_tape))
        )
        return tuple([g_init[i] for i in c_wrt] + [g_caps[i] for i in cap_wrt])

    def no_iteration(*a):  # the same values the reverse scan starts from
        return tuple([a[n_carry + i] for i in c_wrt] + [_zeros_like(caps[i]) for i in cap_wrt])

    grads = leaves(F.cond(count > 0, reverse, no_iteration, *saved, *g_carry, *g_saved))
    result: list = [None] * len(args)
    for k, i in enumerate(c_wrt + [n_carry + i for i in cap_wrt]):
        result[i] = grads[k]
    return result


def while_loop(
    cond_fn: Callable, body_fn: Callable, init: Any, max_iterations: int | None = None
) -> Any:
    carry = leaves(init)
    avals = _avals(carry)
    names = [f"carry{i}" for i in range(len(carry))]
    (test, body), caps = _bodies(
        [lambda a: cond_fn(rebuild(init, a)), lambda a: body_fn(rebuild(init, a))], avals, names
    )
    got = [n.aval for n in body.graph.outputs]
    if got != avals:
        raise OpError(
            f"while_loop: the body changes the carry from {avals} to {got}. "
            "Fix: return values of the same shapes and dtypes."
        )
    if max_iterations is not None:
        return rebuild(init, _bounded_loop(test, body, carry, caps, max_iterations))
    out_avals = tuple(map(_aval_param, body.graph.outputs))
    if _differentiable(carry):  # the tape for the gradient: trip count, carries saved
        out_avals += (((), "int64"),) + tuple(((None,) + s, d) for s, d in out_avals)
    node = apply(
        WHILE,
        *carry,
        *(Symbol(c) for c in caps),
        test=test,
        body=body,
        n_carry=len(carry),
        out_avals=out_avals,
    )
    return rebuild(init, _items(node, body.graph.outputs))


def _bounded_loop(test: Body, body: Body, carry: list, caps: list, max_iterations: int):
    """A while_loop of at most `max_iterations` iterations as JAX would write it: a scan
    whose step runs the body while the test holds and keeps the carry after (the test of a
    kept carry keeps failing). Its gradient is scan's, over `max_iterations` saved carries.

        while_loop(c < 3, c + 1, 0, max_iterations=5)
        -> scan(lambda c, _: (cond(c < 3, c + 1, c), None), 0, arange(5))
    """
    if max_iterations == 0:
        return [as_symbol(c) for c in carry]
    outer = [Symbol(c) for c in caps]

    def step(c: tuple, _: Any) -> tuple:
        running = inline(test.graph, [*c, *outer])[0]
        c = F.cond(running, lambda *a: tuple(inline(body.graph, [*a, *outer])), lambda *a: a, *c)
        return c, None

    final, _ = F.scan(step, tuple(carry), constant(np.arange(max_iterations)))
    return leaves(final)


# ---- scan -------------------------------------------------------------------------------


def _reverse(x: Any) -> Any:
    return F.getitem(x, slice(None, None, -1))


def _zeros_like(x: Any) -> Any:
    return F.broadcast_like(constant(np.zeros((), x.dtype)), x)


def _scan_vjp(g, out, *args, body, n_carry, n_xs, n_ys, out_avals):
    """`_reverse_scan` over the carries the forward scan saved."""
    gs = _cotangents(g, out, out_avals[: n_carry + n_ys])
    init, xs, caps = args[:n_carry], args[n_carry : n_carry + n_xs], args[n_carry + n_xs :]
    saved = [
        apply(ITEM, out, index=n_carry + n_ys + i, aval=out_avals[n_carry + n_ys + i])
        for i in range(n_carry)
    ]
    y_wrt = [i for i in range(n_ys) if np.dtype(out_avals[n_carry + i][1]).kind == "f"]
    g_ys = [(i, gs[n_carry + i]) for i in y_wrt]
    g_saved = [(i, g[n_carry + n_ys + i]) for i in _differentiable(init) if n_carry + n_ys + i in g]
    g_init, g_xs, g_caps = _reverse_scan(body, init, xs, caps, saved, gs[:n_carry], g_ys, g_saved)
    return [*g_init, *g_xs, *g_caps]


def _reverse_scan(body: Body, init, xs, caps, saved, g_carry, g_ys, g_saved) -> tuple:
    """The gradients of a scan's (or a while_loop's) init, xs and captured values, None
    where not a float: a reverse scan whose step t maps the carry's cotangent at t+1 (and
    y_t's) to the carry's at t, using the carry saved at step t; captured values' gradients
    add up. `g_ys` and `g_saved` pair an index with a cotangent of the stacked ys or saved
    carries (a gradient graph reads the saved carries: so its own gradient sends them one)."""
    from symbolic.gradients import grad

    n_carry, n_xs = len(init), len(xs)
    c_wrt, x_wrt, cap_wrt = _differentiable(init), _differentiable(xs), _differentiable(caps)
    y_wrt, s_wrt = [i for i, _ in g_ys], [c_wrt.index(i) for i, _ in g_saved]
    n_c, n_x, n_y = len(c_wrt), len(x_wrt), len(y_wrt)

    def step(carry, seq):
        g_carry, g_caps = list(carry[:n_c]), list(carry[n_c:])
        c_t, x_t = seq[:n_carry], seq[n_carry : n_carry + n_xs]
        g_y, g_s = seq[n_carry + n_xs : n_carry + n_xs + n_y], seq[n_carry + n_xs + n_y :]
        outs = inline(body.graph, [*c_t, *x_t, *caps])
        used = [outs[i] for i in c_wrt] + [outs[n_carry + i] for i in y_wrt]
        wrt = [c_t[i] for i in c_wrt] + [x_t[i] for i in x_wrt] + [caps[i] for i in cap_wrt]
        grads = grad(used, wrt, grad_y=[*g_carry, *g_y])
        summed = [acc + new for acc, new in zip(g_caps, grads[n_c + n_x :])]
        g_x, g_c = grads[n_c : n_c + n_x], grads[:n_c]
        for k, g_direct in zip(s_wrt, g_s):  # c_t's own uses, besides the step's
            g_c[k] = g_c[k] + g_direct
        return tuple(g_c + summed), tuple(g_x) if g_x else None

    zeros = [_zeros_like(caps[i]) for i in cap_wrt]
    given = [gy for _, gy in g_ys] + [gs for _, gs in g_saved]
    sequences = tuple(_reverse(s) for s in [*saved, *xs, *given])
    # not F.scan: a while_loop's saved carries have a length known only at run time
    final, g_xs = _scan(step, tuple([g_carry[i] for i in c_wrt] + zeros), sequences)
    final = leaves(final)
    g_init, g_seq, g_caps = [None] * n_carry, [None] * n_xs, [None] * len(caps)
    for k, i in enumerate(c_wrt):
        g_init[i] = final[k]
    for k, i in enumerate(x_wrt):
        g_seq[i] = _reverse(leaves(g_xs)[k])
    for k, i in enumerate(cap_wrt):
        g_caps[i] = final[n_c + k]
    return g_init, g_seq, g_caps


def scan(fn: Callable, init: Any, xs: Any) -> tuple[Any, Any]:
    if any(a.shape is None or not a.shape or a.shape[0] is None for a in _avals(leaves(xs))):
        raise OpError(
            "scan: the sequences need a known leading (time) axis. Fix: "
            "give the placeholder a shape such as (T, batch, features)."
        )
    return _scan(fn, init, xs)


def _scan(fn: Callable, init: Any, xs: Any) -> tuple[Any, Any]:
    """`scan`, also over sequences whose length is known only at run time (the carries a
    while_loop saved)."""
    carry, seqs = leaves(init), leaves(xs)
    seq_avals = _avals(seqs)
    step_avals = [Aval(a.shape[1:], a.dtype) for a in seq_avals]
    names = [f"carry{i}" for i in range(len(carry))] + [f"x{i}" for i in range(len(seqs))]
    n_carry = len(carry)
    y_structure = []

    def flat_step(a: list) -> tuple:
        result = fn(rebuild(init, a[:n_carry]), rebuild(xs, a[n_carry:]))
        if not isinstance(result, tuple) or len(result) != 2:
            raise OpError("scan: the step function must return (new_carry, y); y may be None.")
        new_carry, y = result
        y_structure.append(y)
        return tuple(leaves(new_carry) + ([] if y is None else leaves(y)))

    (body,), caps = _bodies([flat_step], _avals(carry) + step_avals, names)
    new_carry = body.graph.outputs[:n_carry]
    if [n.aval for n in new_carry] != _avals(carry):
        raise OpError(
            f"scan: the step changes the carry from {_avals(carry)} to "
            f"{[n.aval for n in new_carry]}. Fix: return a carry of the same "
            "shapes and dtypes."
        )
    y_structure = y_structure[0]
    ys_nodes = body.graph.outputs[n_carry:]
    t = seq_avals[0].shape[0]
    out_avals = (
        tuple(map(_aval_param, new_carry))
        + tuple(((t,) + n.shape, n.dtype.name) for n in ys_nodes)
        + tuple(((t,) + n.shape, n.dtype.name) for n in new_carry)
    )
    node = apply(
        SCAN,
        *carry,
        *seqs,
        *(Symbol(c) for c in caps),
        body=body,
        n_carry=n_carry,
        n_xs=len(seqs),
        n_ys=len(ys_nodes),
        out_avals=out_avals,
    )
    parts = [apply(ITEM, node, index=i, aval=out_avals[i]) for i in range(n_carry + len(ys_nodes))]
    ys = None if y_structure is None else rebuild(y_structure, parts[n_carry:])
    return rebuild(init, parts[:n_carry]), ys


# The VJP rules of the control ops in common.ops.control, reached through their bodies.
Body.cond_vjp = staticmethod(_cond_vjp)
Body.while_vjp = staticmethod(_while_vjp)
Body.scan_vjp = staticmethod(_scan_vjp)
