"""`f.report`: what each stage of the compile step did, printable as a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symbolic.graph import Graph


@dataclass
class StageRecord:
    stage: str  # "trace", a pass's name, or "codegen"
    nodes_before: int
    nodes_after: int
    seconds: float
    changes: list[str] = field(default_factory=list)  # one line per thing changed
    graph: Graph | None = None  # a snapshot of the graph after this stage


class CompileReport:
    def __init__(self, traced: Graph) -> None:
        self.stages: list[StageRecord] = [
            StageRecord("trace", len(traced.nodes), len(traced.nodes), 0.0,
                        [f"constant {n.label} = {_preview(n.value)}  (baked in at {n.source})"
                         for n in traced.constants], traced)
        ]
        self.lines_of_code = 0
        self.compile_seconds = 0.0

    @property
    def constants(self) -> list[str]:
        """Every value baked into the graph, with the line that captured it."""
        return self.stages[0].changes

    def record_pass(self, name: str, before: Graph, after: Graph, seconds: float,
                    changes: list[str]) -> None:
        self.stages.append(StageRecord(name, len(before.nodes), len(after.nodes), seconds,
                                       changes, after))

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
        rows.append(f"plan: {self.lines_of_code} lines of Python, compiled in "
                    f"{1e3 * self.compile_seconds:.1f} ms")
        for op in self.fused_kernels:
            kernel = op.kernel
            rows.append(f"\n{op.name}: {op.doc}\n  target: {kernel.choice}; build "
                        f"{1e3 * kernel.compile_seconds:.0f} ms (apart from run time)")
            rows += [f"  | {line}" for line in kernel.source.splitlines()]
        return "\n".join(rows)

    @property
    def fused_kernels(self) -> list:
        """The fused ops of the final graph; each kernel's generated source and target
        (chosen on the first call, by measuring) are on `op.kernel`."""
        final = self.stages[-1].graph
        return [n.op for n in final.ops if n.op.name.startswith("fused_")] if final else []

    def __repr__(self) -> str:
        return f"<CompileReport {len(self.stages)} stages>"


def _preview(value: Any) -> str:
    array = np.asarray(value)
    if array.size <= 6:
        return np.array2string(array, separator=", ")
    return f"{array.dtype}{list(array.shape)} (mean {float(array.mean()):.4g})"
