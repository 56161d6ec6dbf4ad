"""`f.report`: what each stage of the compile step did, printable as a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symbolic.graph import Graph, Node, nested_nodes


@dataclass
class StageRecord:
    stage: str  # "trace", a pass's name, or "codegen"
    nodes_before: int
    nodes_after: int
    seconds: float
    changes: list[str] = field(default_factory=list)  # one line per thing changed
    graph: Graph | None = None  # a snapshot of the graph after this stage


class CompileReport:
    """One record per stage; the trace stage lists what tracing froze from Python: every
    constant (`constants`) and every Python number an op took (`python_values`)."""

    def __init__(self, traced: Graph) -> None:
        nodes = nested_nodes(traced)
        # What tracing froze: a global or closure value changed later does not reach the graph.
        self.constants = [
            f"constant {n.label} = {_preview(n.value)}  (baked in at {n.source})"
            for n in nodes
            if n.op == "constant"
        ]  # arrays and eager tensors
        self.python_values = [line for n in nodes for line in _python_values(n)]
        self.stages: list[StageRecord] = [
            StageRecord(
                "trace",
                len(traced.nodes),
                len(traced.nodes),
                0.0,
                self.constants + self.python_values,
                traced,
            )
        ]
        self.lines_of_code = 0
        self.lint: list = []  # what tracing froze silently (symbolic.lint), set by compile
        self.compile_seconds = 0.0

    def record_pass(
        self, name: str, before: Graph, after: Graph, seconds: float, changes: list[str]
    ) -> None:
        self.stages.append(
            StageRecord(name, len(before.nodes), len(after.nodes), seconds, changes, after)
        )

    def record_codegen(self, source: str, seconds: float) -> None:
        self.lines_of_code = source.count("\n")
        self.compile_seconds = seconds

    def __str__(self) -> str:
        rows = [f"{'stage':<28}{'nodes':>14}{'ms':>9}  changes"]
        for s in self.stages:
            nodes = f"{s.nodes_before} -> {s.nodes_after}"
            rows.append(f"{s.stage:<28}{nodes:>14}{1e3 * s.seconds:>9.2f}  {len(s.changes)}")
            rows += [f"    {c}" for c in s.changes[:20]]
            if len(s.changes) > 20:
                rows.append(f"    ... and {len(s.changes) - 20} more")
        rows += [f"lint: {finding}" for finding in self.lint]
        rows.append(
            f"plan: {self.lines_of_code} lines of Python, compiled in "
            f"{1e3 * self.compile_seconds:.1f} ms"
        )
        for op in self.fused_kernels:
            kernel = op.kernel
            target = kernel.gpu_choice or kernel.choice  # the GPU's, where it ran there
            rows.append(
                f"\n{op.name}: {op.doc}\n  target: {target}; build "
                f"{1e3 * kernel.compile_seconds:.0f} ms (apart from run time)"
            )
            rows += [f"  | {line}" for line in kernel.source.splitlines()]
        return "\n".join(rows)

    @property
    def fused_kernels(self) -> list:
        """The fused ops of the final graph; each kernel's generated source and target
        (chosen on the first call, by a fixed rule) are on `op.kernel`."""
        final = self.stages[-1].graph
        return [n.op for n in final.ops if n.op.name.startswith("fused_")] if final else []

    def __repr__(self) -> str:
        return f"<CompileReport {len(self.stages)} stages>"


def _preview(value: Any) -> str:
    array = np.asarray(value)
    if array.size <= 6:
        return np.array2string(array, separator=", ")
    return f"{array.dtype}{list(array.shape)} (mean {float(array.mean()):.4g})"


def _python_values(node: Node) -> list[str]:
    """The Python numbers an op takes as literals (`x * SCALE`), each with its line."""
    if node.is_source:
        return []
    return [
        f"{a!r} (a Python {type(a).__name__}) in {node.op_name} {node.label}  (baked in "
        f"at {node.source})"
        for a in node.inputs
        if isinstance(a, (bool, int, float))
    ]
