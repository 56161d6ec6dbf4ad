"""The compile step: graph -> passes -> plan (generated Python) -> a callable.

f = S.compile([loss], inputs=[x, t], updates={w: w - 0.1 * g})
f(x_batch, t_batch)        # runs the plan, then applies the updates
print(f.source)            # the straight-line code it runs
print(f.report)            # what each stage did
"""

from __future__ import annotations

import time
import traceback
import weakref
from typing import Any

import numpy as np

from common.anomaly import active as anomaly_active
from common.backend import backend_of, get_backend
from common.dispatch import engine_scope
from common.ops import ShapeError
from symbolic.codegen import generate
from symbolic.debug import call_checked
from symbolic.graph import Graph, Node, Numbering, ancestors_in_order, recording
from symbolic.lint import Lint
from symbolic.passes import run_pipeline
from symbolic.report import CompileReport
from symbolic.symbol import Symbol, as_node, as_symbol, at_line


class FeedError(ValueError):
    """A call fed the wrong inputs: says which placeholders were expected."""


class GraphRuntimeError(RuntimeError):
    """A kernel failed inside a compiled graph: names the op and the user's line."""


class GraphShapeError(GraphRuntimeError, ShapeError):
    """Fed shapes that the graph's ops cannot combine, found while running: the same message
    eager gives, the node's line, and the placeholders whose sizes met there."""


def _expected(inputs: list[Node]) -> str:
    return ", ".join(f"{n.name} {n.type_str()}" for n in inputs)


def _fits(shape: tuple, want: tuple | None) -> bool:
    """A fed shape against a placeholder's (None: any size; no shape: anything)."""
    if want is None:
        return True
    return len(shape) == len(want) and all(w is None or w == s for s, w in zip(shape, want))


def _check_feed(node: Node, value: Any, backend: Any) -> Any:
    array = value if type(value) is backend.xp.ndarray else backend.asarray(value)
    if array.dtype != node.dtype:
        if not np.can_cast(array.dtype, node.dtype, "same_kind"):
            raise FeedError(
                at_line(
                    f"placeholder {node.name!r} expects {node.dtype}, got "
                    f"{array.dtype}. Fix: convert the value (e.g. .astype("
                    f"'{node.dtype}')).",
                    node.source,
                )
            )
        array = array.astype(node.dtype)
    if not _fits(array.shape, node.shape):
        raise FeedError(
            at_line(
                f"placeholder {node.name!r} expects shape {node.type_str()}, "
                f"got {tuple(array.shape)}. Fix: feed a value of that shape "
                "(None dimensions take any size).",
                node.source,
            )
        )
    return array


class CompiledFunction:
    """A graph compiled into a plan. Call it with one value per input placeholder."""

    def __init__(
        self, graph: Graph, plan: Any, report: CompileReport, backend: Any, traced: Graph
    ) -> None:
        self.graph = graph  # after the passes: what runs
        self.traced_graph = traced  # as built by the user, before any pass
        self.report = report
        self.backend = backend
        self._plan = plan
        self._idle: list = []  # instantiated plans not running now: one per concurrent call
        self.calls = 0
        self._expect = [(n.shape, n.dtype) for n in graph.inputs]
        self._array_type = backend.xp.ndarray

    @property
    def source(self) -> str:
        return self._plan.source

    @property
    def inputs(self) -> list[Symbol]:
        return [Symbol(n) for n in self.graph.inputs]

    @property
    def outputs(self) -> list[Symbol]:
        return [Symbol(n) for n in self.graph.outputs]

    def __repr__(self) -> str:
        return (
            f"<CompiledFunction ({_expected(self.graph.inputs)}) -> "
            f"{len(self.graph.outputs)} outputs, {len(self.graph.ops)} ops>"
        )

    def to_dot(self, stage: str = "optimized", **options: Any) -> str:
        """The picture's DOT source: stage 'traced', 'optimized' or 'both'."""
        from symbolic.visualize import to_dot

        return to_dot(self, stage, **options)

    def render(
        self, path: Any, format: str | None = None, stage: str = "optimized", **options: Any
    ) -> Any:
        """Draw the graph to `path` (svg, png, pdf or dot): `symbolic.visualize.render`."""
        from symbolic.visualize import render

        return render(self, path, format, stage, **options)

    def debug(self, *args: Any, **kwargs: Any) -> Any:
        """A stepping debugger over this plan, fed as a call is (`symbolic.debug`)."""
        from symbolic.debug import Debugger

        return Debugger(self, self._feeds(args, kwargs))

    def save(self, path: Any) -> Any:
        """Write this function to a `.dip` file that `S.load` reads back, in any process,
        without the Python that built it (`symbolic.serialize`)."""
        from symbolic.serialize import save

        return save(self, path)

    def to_dask(self, chunks: dict) -> Any:
        """This function as a Dask task graph over blocks of rows of its batched inputs
        (`chunks={placeholder or name: rows}`): calling the result builds Dask arrays that run
        on a cluster or Dask's threads and equal this function's results
        (`symbolic.distributed`)."""
        from symbolic.distributed import DaskFunction

        return DaskFunction(self, chunks)

    def _repr_svg_(self) -> str | None:  # Jupyter shows the optimized graph
        from symbolic.visualize import svg

        return svg(self)

    def _feeds(self, args: tuple, kwargs: dict) -> list:
        inputs = self.graph.inputs
        if len(args) > len(inputs):
            raise FeedError(
                f"got {len(args)} positional inputs but the graph has "
                f"{len(inputs)} placeholders: {_expected(inputs)}. Fix: pass one "
                "value per placeholder, in this order (or by name)."
            )
        values: dict[int, Any] = dict(zip(range(len(args)), args))
        by_name = {n.name: i for i, n in enumerate(inputs)}
        for name, value in kwargs.items():
            if name not in by_name:
                raise FeedError(
                    f"no placeholder is named {name!r}. Expected: "
                    f"{_expected(inputs)}. Fix: use one of these names."
                )
            shared = [i for i, n in enumerate(inputs) if n.name == name]
            if len(shared) > 1:  # e.g. `x = S.placeholder()` run in a loop: never guess
                raise FeedError(
                    f"{len(shared)} placeholders are named {name!r} (inputs "
                    f"{', '.join(map(str, shared))} of {_expected(inputs)}), so "
                    "feeding by that name is ambiguous. Fix: give each its own "
                    "name=, or feed them by position."
                )
            if by_name[name] in values:
                raise FeedError(
                    f"placeholder {name!r} was fed twice (by position and name). "
                    "Fix: pass it one way only."
                )
            values[by_name[name]] = value
        missing = [inputs[i].name for i in range(len(inputs)) if i not in values]
        if missing:
            raise FeedError(
                f"missing a value for placeholder(s) {', '.join(missing)}. "
                f"Expected, in order: {_expected(inputs)}. Fix: feed every one."
            )
        return [_check_feed(inputs[i], values[i], self.backend) for i in range(len(inputs))]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            not kwargs
            and len(args) == len(self._expect)
            and all(
                type(a) is self._array_type and a.dtype == dtype and _fits(a.shape, shape)
                for a, (shape, dtype) in zip(args, self._expect)
            )
        ):
            feeds = args  # the common case, checked cheaply: arrays of the right types
        else:
            feeds = self._feeds(args, kwargs)
        if anomaly_active():  # common.detect_anomaly(): step the plan, checking each value
            result = call_checked(self, feeds)
            self.calls += 1
            return result
        try:  # list.pop and append are atomic: a thread never takes a running plan's buffers
            plan = self._idle.pop()
        except IndexError:  # the first call, or all instances busy in other threads
            plan = self._plan.instantiate()
        try:
            outputs = plan(*feeds)
        except Exception as exc:
            raise self._explain(exc) from exc
        finally:
            self._idle.append(plan)
        self.calls += 1
        if self.backend.name == "numpy":
            outputs = [o[()] if o.ndim == 0 else o for o in outputs]
        return outputs[0] if self._single else list(outputs)

    _single = False

    def _explain(self, exc: Exception) -> Exception:
        """The failing node's op and source line, found from the plan's traceback; for a
        shape the graph could not check at compile time (None dimensions), the op's own
        shape error on the values it was given, as eager would raise it."""
        for frame, line in reversed(list(traceback.walk_tb(exc.__traceback__))):
            if frame.f_code.co_filename == self._plan.filename:
                node = self._plan.line_to_node.get(line)
                if node is not None:
                    return self._node_error(node, exc, frame.f_locals)
        return GraphRuntimeError(f"the compiled graph failed: {exc}")

    def _node_error(self, node: Node, exc: Exception, local_values: dict) -> Exception:
        if node.is_source:  # an update's value: its node is the one the line names
            return GraphRuntimeError(at_line(f"the compiled graph failed: {exc}", node.source))
        names = self._plan.names
        args = [
            local_values.get(names.get(a.id)) if isinstance(a, Node) else a for a in node.inputs
        ]
        clear = (
            node.op.explain_failure(exc, args, node.params)
            if all(a is not None for a in args)
            else exc
        )
        if not isinstance(clear, ShapeError):
            return GraphRuntimeError(
                at_line(f"{node.op_name} failed while running the graph: {exc}", node.source)
            )
        fed = [
            n
            for n in self.graph.inputs
            if n.op == "placeholder"
            and n in ancestors_in_order([a for a in node.inputs if isinstance(a, Node)])
        ]
        feeds = ", ".join(
            f"{n.name!r} {n.type_str()} (fed {local_values[names[n.id]].shape}, "
            f"made at {n.source.split(': ', 1)[0] or 'an unknown line'})"
            for n in fed
            if names.get(n.id) in local_values
        )
        message = str(clear).split("\n  (at ")[0]  # the call's line is not where it went wrong
        if feeds:
            message += f"\n  the sizes came from placeholder(s) {feeds}"
        return GraphShapeError(at_line(message, node.source))


def _as_update_pairs(updates: Any) -> list[tuple[Node, Node]]:
    pairs = []
    for var, value in updates.items() if isinstance(updates, dict) else updates or ():
        var_node = as_node(var)
        if not isinstance(var_node, Node) or var_node.op != "variable":
            raise TypeError(
                f"updates: keys must be variables, got a {type(var).__name__}. "
                "Fix: update an S.variable or an nn.Parameter; placeholders and "
                "computed values cannot be assigned."
            )
        new = as_symbol(value).node
        if new.shape is not None and None not in new.shape and new.shape != var_node.shape:
            raise ValueError(
                at_line(
                    f"updates: the new value of {var_node.name!r} has shape "
                    f"{new.shape}, but the variable has {var_node.shape}. Fix: "
                    "keep the variable's shape.",
                    new.source,
                )
            )
        pairs.append((var_node, new))
    return pairs


def _reachable_placeholders(graph: Graph) -> list[Node]:
    return sorted((n for n in graph.nodes if n.op == "placeholder"), key=lambda n: n.id)


def compile(
    outputs: Any,
    inputs: Any = None,
    updates: Any = None,
    optimize: int = 2,
    backend: str = "numpy",
    disable: Any = (),
) -> CompiledFunction:  # noqa: A001
    """Compile symbols (or a function of placeholders) into a callable plan.

    `inputs` fixes the feed order (default: every placeholder used, in creation order);
    `updates` maps variables to new values, written after the outputs are computed.
    """
    backend = get_backend(backend)
    recorded: list = []
    findings: list = []  # what the capture linter found while tracing a function
    if callable(outputs) and not isinstance(outputs, Symbol):
        lint = Lint(outputs)
        with recording() as recorded, engine_scope(Symbol):
            outputs = lint.run(*inputs)
        findings = lint.findings
    single = not isinstance(outputs, (list, tuple))
    out_nodes = [as_symbol(o).node for o in ([outputs] if single else outputs)]
    pairs = _as_update_pairs(updates)
    start = time.perf_counter()
    traced = Graph([], out_nodes, pairs)
    if inputs is None:
        feed = _reachable_placeholders(traced)
    else:
        feed = [as_symbol(i).node for i in inputs]
        unfed = [n for n in _reachable_placeholders(traced) if n not in feed]
        if unfed:
            n = unfed[0]
            raise FeedError(
                at_line(
                    f"the outputs need placeholder {n.name!r}, which inputs= "
                    "does not list. Fix: add it to inputs.",
                    n.source,
                )
            )
    traced = Graph.traced(feed, out_nodes, pairs, recorded)
    numbers = Numbering(traced)  # one numbering for every stage, the report and the source
    with numbers.active():
        report = CompileReport(traced)
        report.lint = findings
        graph = run_pipeline(traced, optimize, disable, report)
        for var in graph.variables:  # weights live where the plan runs (as model.to(device))
            if backend_of(var.value.data) is not backend:
                var.value.data = backend.asarray(var.value.data)
        plan = generate(graph, backend.xp)
    for stage in report.stages:
        stage.graph.numbering = numbers
    report.record_codegen(plan.source, time.perf_counter() - start)
    fn = CompiledFunction(graph, plan, report, backend, traced)
    fn._single = single
    return fn


_by_symbol: dict[int, CompiledFunction] = {}  # id(Symbol) -> its plan, while the Symbol lives


def compiled_for_symbol(symbol: Symbol) -> CompiledFunction:
    """The cached plan behind `symbol(...)` (compiled on the first call). Keyed by the Symbol's
    identity (`==` on symbols builds a node), and dropped when the Symbol dies: the plan holds
    nodes, not the Symbol, so the entry cannot keep itself alive."""
    fn = _by_symbol.get(id(symbol))
    if fn is None:
        fn = _by_symbol[id(symbol)] = compile(symbol, optimize=0)
        weakref.finalize(symbol, _by_symbol.pop, id(symbol), None)
    return fn
