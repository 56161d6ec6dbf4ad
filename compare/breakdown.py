"""--breakdown: where a step's time goes, measured, for eager and for compiled graphs.

    kernels    the ops' kernels, timed inside the step (each kernel's own time: a control-flow
               kernel's loop, less the kernels of its body, counts as overhead)
    allocation the time to allocate every kernel's result again with `xp.empty`, alone
               (first-touch page faults stay in the kernel time, where they happen)
    overhead   the step's median time less its kernel time: Python dispatch, the eager tape
               and autograd driver, or the compiled plan's interpretive cost

Kernels are timed by swapping each registered op's kernel for a timing wrapper while a
fresh graph is compiled and a few steps run; the race's median (unwrapped) is the total.
On a GPU each kernel is synchronized before its clock stops, so kernel time is device time
(and launches no longer overlap: "overhead" is then a lower bound).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from common.ops.core import OPS

STEPS = 5  # steps with timed kernels; the median kernel time is reported


class KernelLog:
    def __init__(self) -> None:
        self.kernel_ns = 0  # own time of non-control kernels
        self.calls = 0
        self.results: list[tuple[tuple, Any]] = []  # (shape, dtype) of each kernel's result
        self._nested: list[int] = [0]  # time of inner kernels, per open kernel

    def reset(self) -> None:
        self.kernel_ns, self.calls, self.results = 0, 0, []


def _timed(kernel: Callable, kind: str, log: KernelLog, sync: Callable[[], None]) -> Callable:
    def timed(xp: Any, *args: Any, **params: Any) -> Any:
        log._nested.append(0)
        start = time.perf_counter_ns()
        try:
            out = kernel(xp, *args, **params)
            sync()  # on a GPU: the kernel's run, not just its launch
        finally:
            elapsed = time.perf_counter_ns() - start
            inner = log._nested.pop()
            log._nested[-1] += elapsed
        if kind != "control":
            log.kernel_ns += elapsed - inner
            log.calls += 1
            if hasattr(out, "shape") and hasattr(out, "dtype"):
                log.results.append((tuple(out.shape), out.dtype))
        return out

    return timed


@contextlib.contextmanager
def timed_kernels(sync: Callable[[], None] = lambda: None) -> Iterator[KernelLog]:
    """Every registered op's kernel wrapped with a timer, restored on exit."""
    log = KernelLog()
    originals = {op: op.kernel for op in OPS.values()}
    try:
        for op, kernel in originals.items():
            object.__setattr__(op, "kernel", _timed(kernel, op.kind, log, sync))  # OpDef is frozen
        yield log
    finally:
        for op, kernel in originals.items():
            object.__setattr__(op, "kernel", kernel)


def allocation_ns(results: list[tuple[tuple, Any]], xp: Any) -> float:
    """Time to allocate every recorded result once (median of a few runs)."""
    runs = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for shape, dtype in results:
            xp.empty(shape, dtype)
        runs.append(time.perf_counter_ns() - start)
    return statistics.median(runs)


def _measure(step: Callable[[], Any], log: KernelLog, xp: Any) -> tuple[float, int, float]:
    step()  # warm (a compiled scan body builds its plan on the first call)
    kernel_runs = []
    for _ in range(STEPS):
        log.reset()
        step()
        kernel_runs.append(log.kernel_ns)
    return statistics.median(kernel_runs), log.calls, allocation_ns(log.results, xp)


def breakdown(case: Any, rows: list, settings: Any) -> list[dict]:
    """One entry per eager and symbolic row: total, kernels, allocation, overhead (ns)."""
    entries = []
    for row in rows:
        if row.kind == "peer":
            continue
        # compiled inside the context: the plan binds the wrapped kernels
        with timed_kernels(case.backend.synchronize) as log:
            contender = (
                case.eager()
                if row.kind == "eager"
                else case.symbolic(row.optimize, tuple(row.disabled))
            )
            kernels, calls, alloc = _measure(contender.step, log, case.backend.xp)
            graph_ops = contender.compiled.graph.ops if contender.compiled else []
            untimed = sum(1 for node in graph_ops if node.op not in OPS.values())
        total = row.stats.median
        entries.append(
            {
                "mode": row.mode,
                "total_ns": total,
                "kernel_ns": kernels,
                "allocation_ns": alloc,
                "overhead_ns": max(0.0, total - kernels),
                "kernel_calls": calls,
                "untimed_ops": untimed,
            }
        )
    return entries
