"""`equivalence`: a program run eagerly and compiled at each optimize level, every pass's
graph held node by node to the graph it was given; the report names the first node whose
values part and the pass that parted them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import eager as E
import symbolic as S
from compare.check.stages import (
    as_list,
    as_numpy,
    correspond,
    largest_difference,
    parting,
    run_graph,
)
from symbolic.graph import Node, format_node


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
                "compare.check.RTOL)."
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
    names = parameter_names(fn, len(inputs))

    def compile_at(level: int, disable: tuple[str, ...]) -> S.CompiledFunction:
        feeds = [S.placeholder(a.shape, a.dtype, name=n) for n, a in zip(names, inputs)]
        return S.compile(fn, inputs=feeds, optimize=level, disable=list(disable))

    eager = [as_numpy(v) for v in as_list(fn(*(E.tensor(a) for a in inputs)))]
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


def parameter_names(fn: Callable[..., Any], count: int) -> list[str]:
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
        got = [as_numpy(v) for v in as_list(fn(*program.feeds))]
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
    return largest_difference(got, want) if got.shape == want.shape else float("inf")


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
        mended = [as_numpy(v) for v in as_list(program.compile(level, (name,))(*program.feeds))]
        if _first_parting(mended, program.eager, exact) is None:
            return name
    return "codegen"
