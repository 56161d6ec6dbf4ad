"""The engines check each other. `equivalence` runs a program eagerly and compiled at each
optimize level, node by node, and names the first node whose values part and the pass that
parted them; `gradcheck` holds eager and compiled gradients, first and second order, to
central differences in float64. `diptych check` runs both.

    report = equivalence(fn, x, y)          # fn written with F: runs on tensors and symbols
    report.ok; report.first_divergence      # .node .op .line .pass_name .expected .got
    print(gradcheck(fn, x, y, order=2))

Tolerances: optimize=0 runs the traced graph with eager's own kernels, so it must equal eager
bit for bit. Passes may reorder float arithmetic (fused kernels round their own way), so an
optimized value may differ from the value it replaces by `RTOL` of its dtype times the
array's largest magnitude (1 for an all-zero array): 1e-5 in float32, 1e-12 in float64.
A program that draws random numbers parts everywhere: each run draws its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import eager as E
import symbolic as S
from common.dispatch import engine_scope, run_kernel
from common.fusion import FusedKernel
from common.methods import ArrayMethods
from compare.checks import UsageError, at_least, check_sizes, opt_level
from symbolic.debug import unfuse
from symbolic.graph import Graph, Node, format_node, live_ids

RTOL = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-12}


# ---- comparing arrays ----------------------------------------------------------------------


def parting(got: Any, want: Any, exact: bool) -> float | None:
    """The largest |got - want| when the two part (None when they agree): bit for bit if
    `exact`, else within RTOL of want's dtype, scaled; NaN and inf must sit in the same places."""
    if got is want:  # a value one stage kept from the stage before
        return None
    if isinstance(want, tuple):  # a control-flow node's values
        parts = [parting(g, w, exact) for g, w in zip(got, want, strict=True)]
        return max((p for p in parts if p is not None), default=None)
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if np.array_equal(got, want):
        return None
    if want.dtype.kind != "f" or exact:
        same = np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")
        return None if same else _diff(got, want)
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(want64)
    if not np.array_equal(got64[~finite], want64[~finite], equal_nan=True):
        return float("inf")
    diff = _diff(got64[finite], want64[finite])
    scale = float(np.max(np.abs(want64[finite]), initial=0.0)) or 1.0
    return diff if diff > RTOL.get(want.dtype.name, 1e-5) * scale else None


def _diff(got: np.ndarray, want: np.ndarray) -> float:
    if got.size == 0:
        return 0.0
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(np.nanmax(diff)) if not np.all(np.isnan(diff)) else float("nan")


def _host(value: Any) -> np.ndarray:
    """A tensor's, symbol's result's or array's values as a numpy array."""
    return np.asarray(value.data if isinstance(value, ArrayMethods) else value)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


# ---- running a graph node by node ----------------------------------------------------------


@dataclass
class Run:
    """One stage's graph run node by node: `steps` in the order they ran (a fused node as its
    member ops), each step's value as it was computed, and what a fused node stands for."""

    graph: Graph
    steps: list[Node]
    values: dict[int, np.ndarray]  # step id -> its value when computed
    stand_in: dict[int, Node]  # fused node id -> its last member step
    notes: dict[int, str] = field(default_factory=dict)  # step id -> an input found clobbered

    def resolve(self, node: Node) -> Node:
        return self.stand_in.get(node.id, node)

    def value(self, node: Node) -> np.ndarray:
        return self.values[self.resolve(node).id]


def _windows(graph: Graph) -> dict[int, np.ndarray]:
    """Each planned value's window of the flat buffers, as the generated plan makes them."""
    plan = graph.memory
    if plan is None:
        return {}
    flat = [np.empty(size, dtype) for size, dtype in plan.buffers]
    nodes = {n.id: n for n in graph.nodes}
    return {
        i: flat[b][: int(np.prod(nodes[i].shape))].reshape(nodes[i].shape)
        for i, b in plan.assignment.items()
    }


def run_graph(graph: Graph, feeds: list[np.ndarray], before: Run | None = None) -> Run:
    """Run `graph` one node at a time with the ops' own kernels, as its plan would: what the
    outputs need only, fused groups member by member, and values the memory plan places in
    shared buffers written there, so a buffer reused too early shows in the values read.
    A node already run in `before` on the very same input values keeps its value from there."""
    windows = _windows(graph)
    run = Run(graph, list(graph.inputs), dict(zip((n.id for n in graph.inputs), feeds)), {})
    live = dict(run.values)  # what later nodes read: a planned value's window, once written
    earlier = before.values if before is not None and not windows else {}
    needed = live_ids(graph)
    for node in graph.nodes:
        if node.id not in needed or node.id in live:
            continue
        if isinstance(getattr(node.op, "kernel", None), FusedKernel):
            members = unfuse(node, None)
            for step in members:
                live[step.id] = _step(run, step, live, windows, earlier)
            run.stand_in[node.id] = members[-1]
            value = live[members[-1].id]
        else:
            value = _step(run, node, live, windows, earlier)
        window = windows.get(node.id)
        if window is not None:
            window[...] = value  # the plan writes it there (out=), and later reuse may too
            value = window
        live[node.id] = value
    return run


def _step(run: Run, node: Node, live: dict, windows: dict, earlier: dict) -> Any:
    inputs = [a for a in node.inputs if isinstance(a, Node)]
    if node.id in earlier and all(live[a.id] is earlier.get(a.id) for a in inputs):
        value = earlier[node.id]
    elif node.op == "variable":
        value = node.value.data
    elif node.op == "constant":
        value = np.asarray(node.value)
    else:
        args = [live[a.id] if isinstance(a, Node) else a for a in node.inputs]
        if windows:
            _note_clobbered(run, node, live)
        value = run_kernel(node.op, args, node.params)
    run.steps.append(node)
    run.values[node.id] = _copy(value) if windows else value
    return value


def _copy(value: Any) -> Any:
    return tuple(map(_copy, value)) if isinstance(value, tuple) else np.array(value, copy=True)


def _note_clobbered(run: Run, node: Node, live: dict) -> None:
    """An input whose memory changed since it was computed: a later value was written there."""
    for a in node.inputs:
        if isinstance(a, Node) and parting(live[a.id], run.value(a), exact=True) is not None:
            run.notes[node.id] = (
                f"The buffer holding its input {a.label} ({a.op_name}) was overwritten "
                "before this node read it."
            )


# ---- which node of one stage stands for which of the stage before ---------------------------


def _key(node: Node, run: Run, pair: dict[int, Node]) -> tuple | None:
    """What a node computes from which values (its inputs as the earlier stage's nodes)."""
    inputs = []
    for a in node.inputs:
        if not isinstance(a, Node):
            inputs.append(("literal", type(a), a))
        elif run.resolve(a).id in pair:
            inputs.append(("node", pair[run.resolve(a).id].id))
        else:
            return None
    return (node.op_name, tuple(inputs), repr(sorted(node.params.items())))


def correspond(before: Run, after: Run) -> list[tuple[Node, Node]]:
    """(after, before) step pairs that must hold equal values. Bottom up: the same node, or the
    same op on corresponding inputs (a node rebuilt, a fused member, a merge). Top down, for
    nodes a pass made anew: the outputs by position, then the inputs, by position, of a pair
    with one op, where an input of the same type has no partner yet (a folded constant, a
    reordered member); then bottom up again, for what those made reachable."""
    itself = {n.id: n for n in before.steps}
    index: dict[tuple, Node] = {}
    for m in before.steps:
        key = None if m.is_source else _key(m, before, itself)
        if key is not None:
            index.setdefault(key, m)
    pair: dict[int, Node] = {}
    found: list[tuple[Node, Node]] = []

    def bottom_up() -> None:
        for node in after.steps:
            if node.id not in pair:
                key = None if node.is_source or node.id in itself else _key(node, after, pair)
                partner = itself.get(node.id) or index.get(key)
                if partner is not None:
                    pair[node.id] = partner
                    found.append((node, partner))

    bottom_up()
    ends = zip(_ends(after.graph), _ends(before.graph), strict=True)
    queue = [(after.resolve(a), before.resolve(b)) for a, b in ends]
    while queue:
        node, partner = queue.pop()
        if node.id in pair:  # one node for two of the stage before: a merge, checked too
            found.append((node, partner))
            continue
        pair[node.id] = partner
        found.append((node, partner))
        if node.op_name == partner.op_name and len(node.inputs) == len(partner.inputs):
            queue += [
                (after.resolve(a), before.resolve(b))
                for a, b in zip(node.inputs, partner.inputs)
                if isinstance(a, Node)
                and isinstance(b, Node)
                and after.resolve(a).id not in pair
                and (a.shape, a.dtype) == (b.shape, b.dtype)
            ]
    bottom_up()
    order = {n.id: i for i, n in enumerate(after.steps)}
    return sorted(dict.fromkeys(found), key=lambda p: order[p[0].id])


def _ends(graph: Graph) -> list[Node]:
    return list(graph.outputs) + [value for _, value in graph.updates]


# ---- equivalence ----------------------------------------------------------------------------


@dataclass
class Divergence:
    """The first node whose values part from the eager program's, and the pass that did it."""

    optimize: int
    pass_name: str | None  # None: the traced graph itself computes something else than eager
    node: str  # the node's label in the traced graph ("%7"), as `print(f.traced_graph)` shows
    op: str  # the op the user's program applied there
    line: str  # the user's line that made it: "model.py:12"
    code: str  # the code on that line
    expected: Any  # its value before the pass (eager's, for the traced graph)
    got: Any  # its value after
    max_abs_diff: float
    note: str = ""  # what the node became, or why it was read wrong
    statement: str = ""  # the node as the traced graph prints it: "%7 = sub(%5, %6) : f32[3]"

    def __str__(self) -> str:
        code = f" (`{self.code}`)" if self.code else ""
        made = f", made at {self.line}{code}" if self.line else ""
        why = (
            f"The pass {self.pass_name!r} changed it"
            if self.pass_name
            else "No pass ran yet: the traced graph already differs from the eager program "
            "(something Python computed while tracing, a random number or a branch taken, "
            "is frozen into the graph)"
        )
        return (
            f"At optimize={self.optimize} the first node whose values part is "
            f"`{self.statement or self.node}`{made}. {why}: it holds {_preview(self.got)} "
            f"where {_preview(self.expected)} was expected (largest difference "
            f"{self.max_abs_diff:.3g}).{' ' + self.note if self.note else ''}"
        )


def _preview(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_preview, value)) + ")"
    array = np.asarray(value)
    text = np.array2string(array.ravel()[:4], precision=4, separator=", ")
    return text[:-1] + ", ...]" if array.size > 4 else text


@dataclass
class EquivalenceReport:
    """Whether every optimize level agrees with eager, node by node; `str()` says it in words."""

    program: str
    levels: dict[int, float]  # optimize -> largest difference of its outputs from eager's
    divergences: list[Divergence]  # one per level that parts, lowest level first
    nodes_checked: int = 0  # node values compared across all the passes
    exact: bool = True  # whether optimize=0 was held to bit equality

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first_divergence(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None

    def __str__(self) -> str:
        levels = ", ".join(map(str, self.levels))
        if self.ok:
            exactly = "bit for bit at optimize=0, " if self.exact and 0 in self.levels else ""
            return (
                f"{self.program}: eager and compiled agree at optimize={levels}: "
                f"{exactly}the outputs within {max(self.levels.values(), default=0):.3g}, and "
                f"{self.nodes_checked} node values held across every pass (tolerance: "
                "compare/check.py's RTOL)."
            )
        parted = ", ".join(str(d.optimize) for d in self.divergences)
        return f"{self.program}: eager and compiled part at optimize={parted}. " + str(
            self.first_divergence
        )


@dataclass
class Program:
    """What equivalence runs: eager's outputs, and how to compile the same computation."""

    name: str
    eager: list[np.ndarray]
    compile: Callable[[int, tuple[str, ...]], S.CompiledFunction]  # (optimize, disable)
    feeds: list[np.ndarray]
    exact: bool = True  # eager runs the very program that was traced


def equivalence(
    fn: Callable[..., Any], *inputs: np.ndarray, optimize: tuple[int, ...] = (0, 1, 2)
) -> EquivalenceReport:
    """Run `fn` (written with F) eagerly and compiled at each level in `optimize`, node by
    node; the report names the first node whose values part and the pass that parted them."""
    inputs = tuple(np.asarray(a) for a in inputs)
    names = _parameter_names(fn, len(inputs))

    def compile_at(level: int, disable: tuple[str, ...]) -> S.CompiledFunction:
        feeds = [S.placeholder(a.shape, a.dtype, name=n) for n, a in zip(names, inputs)]
        return S.compile(fn, inputs=feeds, optimize=level, disable=list(disable))

    eager = [_host(v) for v in _as_list(fn(*(E.tensor(a) for a in inputs)))]
    name = getattr(fn, "__name__", "the function")
    return check_program(Program(name, eager, compile_at, list(inputs)), optimize)


def equivalence_of_model(
    name: str,
    batch: int | None = None,
    size: int | None = None,
    optimize: tuple[int, ...] = (0, 1, 2),
) -> EquivalenceReport:
    """`equivalence` for a zoo model: its loss, outputs and gradients, from one initialization."""
    from compare import zoo
    from compare.harness import Case, Settings

    model = zoo.get(name)
    case = Case(model, Settings(batch=batch, size=size))
    eager = case.to_numpy(case.eager().step())
    program = Program(
        f"{name} (batch {case.batch}, {model.size_means} {case.size})",
        eager,
        case.compile,
        list(case.inputs.values()),
        exact=model.eager_forward is None,
    )
    return check_program(program, optimize)


def _parameter_names(fn: Callable[..., Any], count: int) -> list[str]:
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    return [names[i] if i < len(names) else f"x{i}" for i in range(count)]


def check_program(program: Program, optimize: tuple[int, ...] = (0, 1, 2)) -> EquivalenceReport:
    """Each level: its plan's outputs against eager's, and every stage node by node."""
    report = EquivalenceReport(program.name, {}, [], exact=program.exact)
    for level in sorted(set(optimize)):
        fn = program.compile(level, ())
        got = [_host(v) for v in _as_list(fn(*program.feeds))]
        exact = level == 0 and program.exact
        report.levels[level] = max((_diff_any(g, w) for g, w in zip(got, program.eager)), default=0)
        with fn.graph.numbering.active():
            found = _check_level(program, level, fn, report)
        if found is not None:
            report.divergences.append(found)
        elif _first_parting(got, program.eager, exact) is not None:
            report.divergences.append(_output_divergence(program, level, fn, got, exact))
    return report


def _first_parting(got: list, want: list, exact: bool) -> int | None:
    """The index of the first output that parts from eager's (None when all agree)."""
    return next(
        (i for i, (g, w) in enumerate(zip(got, want)) if parting(g, w, exact) is not None), None
    )


def _diff_any(got: Any, want: Any) -> float:
    got, want = np.asarray(got), np.asarray(want)
    return _diff(got, want) if got.shape == want.shape else float("inf")


def _check_level(
    program: Program, level: int, fn: S.CompiledFunction, report: EquivalenceReport
) -> Divergence | None:
    """The traced graph against eager, output by output; then each pass's graph against the
    graph it was given, node by node: the first pass whose nodes part is named."""
    stages = fn.report.stages
    before = run_graph(stages[0].graph, program.feeds)
    origin = {n.id: n for n in before.steps}  # a step -> the traced node it stands for
    for node, want in zip(stages[0].graph.outputs, program.eager):
        diff = parting(before.value(node), want, program.exact)
        if diff is not None:
            traced = origin[before.resolve(node).id]
            return _divergence(level, None, traced, want, before.value(node), diff)
    for stage in stages[1:]:
        after = run_graph(stage.graph, program.feeds, before)
        later = {}
        for node, partner in correspond(before, after):
            report.nodes_checked += 1
            traced = origin.get(partner.id, partner)
            later.setdefault(node.id, traced)
            diff = parting(after.values[node.id], before.values[partner.id], exact=False)
            if diff is not None:
                now = later[node.id]
                note = after.notes.get(node.id) or _became(stage.stage, node, partner, traced, now)
                want, got = before.values[partner.id], after.values[node.id]
                return _divergence(level, stage.stage, traced, want, got, diff, note)
        before, origin = after, later
    return None


def _became(stage: str, node: Node, partner: Node, traced: Node, now: Node) -> str:
    """What the pass made of the user's node (`traced`), when not the node itself: another
    op, or the node that stands for another of the user's (`now`)."""
    if node.op_name != partner.op_name:
        return f"{stage!r} made it {node.label} = {node.op_name}(...)."
    if now is not traced:
        return f"{stage!r} computes it as {now.label}, made at {_split(now.source)[0]}."
    return ""


def _split(source: str) -> tuple[str, str]:
    where, _, code = source.partition(": ")
    return where, code


def _divergence(level, pass_name, traced: Node, want, got, diff, note="") -> Divergence:
    line, code = _split(traced.source)
    statement = format_node(traced, pad=0).split("  # ")[0]
    return Divergence(
        level, pass_name, traced.label, traced.op_name, line, code, want, got, diff, note, statement
    )


def _output_divergence(program: Program, level: int, fn, got: list, exact: bool) -> Divergence:
    """Every stage held node by node, yet the plan's outputs part (a fused kernel, the code
    generated): the output named, and the pass whose absence mends them."""
    i = _first_parting(got, program.eager, exact)
    blamed = _switching_passes_off(program, level, exact)
    note = "Run node by node, every stage agreed, but the generated plan's outputs did not; " + (
        f"switching {blamed!r} off mends them."
        if blamed != "codegen"
        else "no pass switched off alone mends them, so the code generated is to blame."
    )
    want, diff = program.eager[i], _diff_any(got[i], program.eager[i])
    with fn.graph.numbering.active():
        return _divergence(level, blamed, fn.traced_graph.outputs[i], want, got[i], diff, note)


def _switching_passes_off(program: Program, level: int, exact: bool) -> str:
    """The first pass of the level's pipeline whose absence makes the outputs agree."""
    from symbolic.passes import PIPELINES

    for name, _ in PIPELINES[level]:
        mended = [_host(v) for v in _as_list(program.compile(level, (name,))(*program.feeds))]
        if _first_parting(mended, program.eager, exact) is None:
            return name
    return "codegen"


# ---- gradcheck ------------------------------------------------------------------------------

EPS = 1e-6  # central differences in float64: truncation ~EPS**2, rounding ~1e-16 / EPS
RTOL_GRAD = 1e-5
ATOL_GRAD = {1: 1e-7, 2: 1e-6}  # differences of differences carry more rounding


@dataclass(frozen=True)
class Worst:
    """The entry furthest from central differences, relative to its tolerance."""

    input: str  # "x (input 0)"
    entry: tuple  # its index in that input
    order: int  # 1: the gradient; 2: the gradient of <gradient, v>, a Hessian-vector product
    engine: str  # "eager" or "compiled"
    expected: float  # by central differences
    got: float
    tolerance: float

    @property
    def error(self) -> float:
        return abs(self.got - self.expected)


@dataclass
class GradcheckReport:
    """Whether every gradient checked agrees with central differences; `str()` says it."""

    name: str
    orders: tuple[int, ...]
    optimize: int
    worst: Worst | None  # None: no float input to differentiate
    entries: int  # entries compared, over inputs, orders and engines

    @property
    def ok(self) -> bool:
        return self.worst is None or self.worst.error <= self.worst.tolerance

    def __str__(self) -> str:
        what = " and ".join(("first order", "second order")[o - 1] for o in self.orders)
        head = (
            f"{self.name}: gradcheck {'passes' if self.ok else 'FAILS'} ({what}, eager and "
            f"compiled at optimize={self.optimize}, {self.entries} entries against central "
            "differences in float64)"
        )
        w = self.worst
        if w is None:
            return head + ": no float input to differentiate."
        which = ("the gradient", "the Hessian-vector product")[w.order - 1]
        return (
            f"{head}. {'The worst' if self.ok else 'Wrong'}: {which} of {w.input} at entry "
            f"{w.entry}, {w.engine}, is {w.got:.6g} where central differences give "
            f"{w.expected:.6g} (error {w.error:.3g}, tolerance {w.tolerance:.3g})."
        )


def gradcheck(
    fn: Callable[..., Any], *inputs: np.ndarray, order: int = 2, optimize: int = 2
) -> GradcheckReport:
    """Check the gradients of `sum(fn(*inputs) * c)` (c a fixed random cotangent; of several
    outputs, the first) with respect to every float input, eagerly and compiled (S.grad),
    against central differences in float64; with `order=2` also the gradient of
    `sum(<gradient, v>)` (v fixed, random: a Hessian-vector product), against central
    differences of the eager first-order gradient. Inputs are taken in float64."""
    primals = [_as_float64(np.asarray(a)) for a in inputs]
    floats = [i for i, a in enumerate(primals) if a.dtype.kind == "f"]
    names = _parameter_names(fn, len(primals))
    rng = np.random.default_rng(0)
    with E.no_grad():
        out = _host(_as_list(fn(*(E.tensor(a) for a in primals)))[0])
    cotangent = rng.normal(size=out.shape)
    directions = [rng.normal(size=primals[i].shape) for i in floats]
    grads = _Gradients(fn, primals, floats, cotangent, directions)
    report = GradcheckReport(
        getattr(fn, "__name__", "fn"), tuple(range(1, order + 1)), optimize, None, 0
    )
    checks = {1: (grads.loss, grads.eager_first(), grads.compiled(1, optimize))}
    if order >= 2:
        checks[2] = (grads.directional, grads.eager_second(), grads.compiled(2, optimize))
    for level, (numeric, eager, compiled) in checks.items():
        for k, i in enumerate(floats):
            want = _central_differences(numeric, primals, i)
            label = f"{names[i]} (input {i})"
            for engine, got in (("eager", eager[k]), ("compiled", compiled[k])):
                report.entries += want.size
                report.worst = _worse(report.worst, label, level, engine, want, got)
    return report


def _as_float64(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype.kind == "f" else array


def _worse(worst, label: str, order: int, engine: str, want, got) -> Worst | None:
    tolerance = ATOL_GRAD[order] + RTOL_GRAD * np.abs(want)
    excess = np.abs(np.asarray(got, np.float64) - want) / tolerance
    entry = np.unravel_index(int(np.argmax(np.where(np.isnan(excess), np.inf, excess))), want.shape)
    found = Worst(
        label, tuple(int(e) for e in entry), order, engine, float(want[entry]),
        float(np.asarray(got)[entry]), float(tolerance[entry]),
    )  # fmt: skip
    if worst is None or _excess(found) > _excess(worst):
        return found
    return worst


def _excess(w: Worst) -> float:
    return np.inf if np.isnan(w.got) else w.error / w.tolerance


def _central_differences(f: Callable[[list], float], primals: list, i: int) -> np.ndarray:
    """d f(primals) / d primals[i], entry by entry."""
    args = [a.copy() for a in primals]
    x, grad = args[i], np.empty(args[i].shape)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + EPS
        high = f(args)
        x[index] = saved - EPS
        low = f(args)
        x[index] = saved
        grad[index] = (high - low) / (2 * EPS)
    return grad


class _Gradients:
    """The quantities gradcheck differentiates, eagerly, numerically and compiled."""

    def __init__(self, fn, primals, floats, cotangent, directions) -> None:
        self.fn, self.primals, self.floats = fn, primals, floats
        self.cotangent, self.directions = cotangent, directions

    def _out(self, *args: Any) -> Any:
        return _as_list(self.fn(*args))[0]  # of several outputs, the first (a model's loss)

    def loss(self, args: list) -> float:
        with E.no_grad():
            return float(np.sum(_host(self._out(*(E.tensor(a) for a in args))) * self.cotangent))

    def _eager(self, args: list, create_graph: bool) -> tuple[list, list]:
        leaves = [E.tensor(a, requires_grad=i in self.floats) for i, a in enumerate(args)]
        wrt = [leaves[i] for i in self.floats]
        loss = (self._out(*leaves) * self.cotangent).sum()
        grads = E.grad(loss, wrt, create_graph=create_graph, allow_unused=True)
        return wrt, [E.tensor(np.zeros(x.shape)) if g is None else g for g, x in zip(grads, wrt)]

    def eager_first(self, args: list | None = None) -> list[np.ndarray]:
        return [_host(g) for g in self._eager(args or self.primals, False)[1]]

    def directional(self, args: list) -> float:
        return sum(float(np.sum(g * v)) for g, v in zip(self.eager_first(args), self.directions))

    def eager_second(self) -> list[np.ndarray]:
        wrt, grads = self._eager(self.primals, True)
        total = sum((g * v).sum() for g, v in zip(grads, self.directions))
        if not getattr(total, "requires_grad", False):  # a gradient that is constant
            return [np.zeros(x.shape) for x in wrt]
        second = E.grad(total, wrt, allow_unused=True)
        return [np.zeros(x.shape) if h is None else _host(h) for h, x in zip(second, wrt)]

    def compiled(self, order: int, optimize: int) -> list[np.ndarray]:
        feeds = [S.placeholder(a.shape, a.dtype) for a in self.primals]
        wrt = [feeds[i] for i in self.floats]
        with engine_scope(S.Symbol):  # as S.compile traces: weights alone become nodes too
            grads = S.grad((self._out(*feeds) * self.cotangent).sum(), wrt)
            if order == 2:
                grads = S.grad(sum((g * v).sum() for g, v in zip(grads, self.directions)), wrt)
        fn = S.compile(list(grads), inputs=feeds, optimize=optimize)
        return [_host(g) for g in fn(*self.primals)]


def gradcheck_of_model(
    name: str, batch: int | None = None, size: int | None = None, order: int = 2
) -> GradcheckReport:
    """`gradcheck` of a zoo model's loss with respect to its float inputs (every layer's VJP
    lies on that path), weights fixed and held in float64 for the check; at the model's
    test sizes unless given."""
    from compare import zoo

    model = zoo.get(name)
    batch, size = batch or model.test_sizes[0], size or model.test_sizes[1]
    module = model.build(size, 0)
    inputs = model.make_inputs(batch, size, 0)
    floats = [k for k, v in inputs.items() if v.dtype.kind == "f"]

    def loss(*values: Any) -> Any:
        given = {**inputs, **dict(zip(floats, values))}
        return model.loss_and_outputs(module, list(given.values()))[0]

    loss.__name__ = f"{name} (batch {batch}, {model.size_means} {size})"
    loss.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.POSITIONAL_ONLY) for k in floats]
    )
    saved = [(p, p.data) for p in module.parameters()]
    try:
        for p, data in saved:
            p.data = data.astype(np.float64)
        return gradcheck(loss, *(inputs[k] for k in floats), order=order)
    finally:
        for p, data in saved:
            p.data = data


# ---- `diptych check` ------------------------------------------------------------------------

GRADCHECK_ENTRIES = 1024  # float input entries a script's gradcheck takes (2 runs per entry)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="run a program eagerly and compiled, node by node; name where and why they part",
        description="Run a zoo model (or a function of a script) eagerly and compiled at each "
        "optimize level, node by node, and name the first node whose values part and the pass "
        "that parted them; then check its gradients, first and second order, against central "
        "differences. Exit status 0 when everything agrees, 1 when not.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="a zoo model (`diptych models`)")
    p.add_argument(
        "--script",
        metavar="PATH.py:FUNCTION",
        help="a function written with F; its inputs come from the script's make_inputs() "
        "(a dict, a list or one array) or from --shape",
    )
    p.add_argument(
        "--shape",
        action="append",
        metavar="D0,D1,...",
        help="with --script: one float32 input of this shape (random normal); once per input",
    )
    p.add_argument(
        "--opt",
        type=opt_level,
        nargs="+",
        default=[0, 1, 2],
        metavar="LEVEL",
        help="optimize levels to check (default: 0 1 2)",
    )
    p.add_argument("--batch", type=at_least(1), help="with MODEL: batch size (default: its own)")
    p.add_argument("--size", type=at_least(1), help="with MODEL: its size knob")
    p.add_argument("--no-gradcheck", action="store_true", help="check the values only")


def run_check_command(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.script is None):
        raise UsageError("name a zoo model or pass --script PATH.py:FUNCTION (one of them).")
    if args.model is not None:
        reports = _check_model(args)
    else:
        reports = _check_script(args)
    for report in reports:
        print(report)
    return 0 if all(report.ok for report in reports) else 1


def _check_model(args: argparse.Namespace) -> list:
    from compare import zoo

    try:
        model = zoo.get(args.model)
    except zoo.UnknownModelError as exc:
        raise UsageError(str(exc)) from None
    check_sizes(model, args.batch, args.size)
    reports: list = [equivalence_of_model(model.name, args.batch, args.size, tuple(args.opt))]
    if not args.no_gradcheck:  # at the model's small test sizes: two runs per input entry
        reports.append(gradcheck_of_model(model.name))
    return reports


def _check_script(args: argparse.Namespace) -> list:
    fn, inputs = _script(args.script, args.shape)
    reports: list = [equivalence(fn, *inputs, optimize=tuple(args.opt))]
    entries = sum(a.size for a in inputs if a.dtype.kind == "f")
    if entries <= GRADCHECK_ENTRIES and not args.no_gradcheck:
        reports.append(gradcheck(fn, *inputs))
    elif not args.no_gradcheck:
        print(
            f"gradcheck left out: the inputs hold {entries:,} float entries, more than the "
            f"{GRADCHECK_ENTRIES:,} it takes (each costs two runs); pass smaller --shape values."
        )
    return reports


def _script(spec: str, shapes: list[str] | None) -> tuple[Callable[..., Any], list[np.ndarray]]:
    """The function named by `path.py:function`, and its inputs."""
    path, _, name = spec.rpartition(":")
    if not path or not name or not pathlib.Path(path).is_file():
        raise UsageError(f"--script {spec!r}: expected an existing PATH.py:FUNCTION.")
    loader = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"--script: {path} defines no function {name!r}.")
    if shapes:
        rng = np.random.default_rng(0)
        return fn, [rng.standard_normal(_shape(s)).astype(np.float32) for s in shapes]
    if not hasattr(module, "make_inputs"):
        raise UsageError(f"--script: {path} has no make_inputs(); define one or pass --shape.")
    made = module.make_inputs()
    values = made.values() if isinstance(made, dict) else _as_list(made)
    return fn, [np.asarray(v) for v in values]


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(at_least(1)(d) for d in text.split(",") if d.strip())
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--shape {text!r}: {exc}") from None
