"""The memory plan, on the graph (each planned node says which buffer it writes, in its
buffer's colour) and as a chart (matplotlib): buffer lifetimes over the schedule."""

from __future__ import annotations

import html
import pathlib
import re
from typing import Any

import numpy as np

from symbolic.graph import Node

# One colour per buffer (matplotlib's tab10, dark enough for text), the same in both pictures.
BUFFER_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

# ---- on the graph -----------------------------------------------------------------------


def buffer_line(node: Node, plan: Any) -> str:
    """`buffer 3`, `buffer 3, in place` (over a dying input), or "" (no planned buffer)."""
    if plan is None or node.id not in plan.assignment:
        return ""
    return f"buffer {plan.assignment[node.id]}" + (", in place" if node.id in plan.in_place else "")


def with_buffer(label: str, node: Node, plan: Any) -> str:
    """An HTML label (`<...>`) with the node's buffer line added, in the buffer's colour."""
    line = buffer_line(node, plan)
    if not line:
        return label
    color = BUFFER_COLORS[plan.assignment[node.id] % len(BUFFER_COLORS)]
    mark = f'<FONT POINT-SIZE="9" COLOR="{color}"><B>■ {html.escape(line)}</B></FONT>'
    return f"{label[:-1]}<BR/>{mark}>"


def plan_caption(plan: Any) -> str:
    """What the buffer lines on the nodes mean, with the plan's totals."""
    return (
        f"memory plan: {len(plan.assignment)} values share {len(plan.buffers)} buffers "
        f"({len(plan.in_place)} written in place); ■ buffer k under an op: the buffer it "
        "writes into, one colour each; in place: over an input that dies there"
    )


# ---- the chart --------------------------------------------------------------------------


def render_memory_plan(fn: Any, path: Any, eager_peak: int | None = None) -> pathlib.Path:
    """Buffer lifetimes over the schedule (one bar per planned value, coloured by buffer;
    hatched: written in place), and bytes live without reuse against the planned pool and,
    if given, the eager peak."""
    plan = fn.graph.memory
    if plan is None:
        raise ValueError(
            "this function has no memory plan: the memory pass runs at "
            "optimize=2. Fix: S.compile(..., optimize=2)."
        )
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    nodes = fn.graph.nodes
    by_id = {n.id: n for n in nodes}
    values = sorted(plan.assignment, key=lambda i: plan.lifetimes[i])
    fig, (bars, live) = plt.subplots(
        2,
        1,
        figsize=(10, 2.2 + 0.28 * max(len(values), 4)),
        height_ratios=[max(len(values), 4), 5],
        sharex=True,
    )
    for row, vid in enumerate(values):
        start, end = plan.lifetimes[vid]
        buffer = plan.assignment[vid]
        bars.barh(
            row,
            max(end - start, 0.4),
            left=start,
            color=BUFFER_COLORS[buffer % len(BUFFER_COLORS)],
            alpha=0.55,
            hatch="//" if vid in plan.in_place else None,
            edgecolor="#334155",
        )
        bars.text(
            start + max(end - start, 0.4) / 2,
            row,
            f"buf {buffer}",
            ha="center",
            va="center",
            fontsize=7,
        )
    names = [by_id[v].op.name for v in values]
    bars.set_yticks(
        range(len(values)),
        [
            f"{'fused' if name.startswith('fused_') else name} {by_id[v].type_str()}"
            for name, v in zip(names, values)
        ],
        fontsize=7,
    )
    bars.set_ylim(max(len(values), 1) - 0.5, -0.5)
    summary = (
        f"{len(plan.assignment)} values in {len(plan.buffers)} buffers: "
        f"{_bytes(plan.planned_bytes)} planned for {_bytes(plan.intermediate_bytes)} "
        f"of intermediates; {len(plan.in_place)} written in place"
    )
    bars.set_title(
        f"memory plan: {summary}\none bar per value from its definition to "
        "its last read, coloured by buffer; hatched: written in place into a "
        "dying input",
        fontsize=9,
    )
    if not values:
        bars.text(0.5, 0.5, "no value got a planned buffer", transform=bars.transAxes, ha="center")
    _live_bytes(live, plan, nodes, eager_peak)
    refused = _refusal_counts(plan)
    if refused:
        fig.text(0.01, 0.005, "in place refused: " + "; ".join(refused), fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _live_bytes(ax: Any, plan: Any, nodes: list[Node], eager_peak: int | None) -> None:
    by_id = {n.id: n for n in nodes}
    steps = np.arange(len(nodes) + 1)
    live = np.zeros(len(steps))
    for vid, (start, end) in plan.lifetimes.items():
        node = by_id[vid]
        start += vid in plan.in_place  # written into its input's memory as that one dies
        live[start : end + 1] += int(np.prod(node.shape)) * node.dtype.itemsize
    ax.step(steps, live, where="post", label="bytes live at each step (what any plan needs)")
    ax.axhline(
        plan.planned_bytes,
        color="#16a34a",
        linestyle="--",
        label=f"planned pool: {_bytes(plan.planned_bytes)}",
    )
    ax.axhline(
        plan.intermediate_bytes,
        color="#64748b",
        linestyle="-.",
        label=f"every value its own array: {_bytes(plan.intermediate_bytes)}",
    )
    if eager_peak is not None:
        ax.axhline(
            eager_peak, color="#dc2626", linestyle=":", label=f"eager peak: {_bytes(eager_peak)}"
        )
    ax.set_xlabel("schedule position (node)")
    ax.set_ylabel("memory")
    ax.yaxis.set_major_formatter(lambda value, _: _bytes(int(value)))
    ax.legend(fontsize=7, loc="best")


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _refusal_counts(plan: Any) -> list[str]:
    counts: dict[str, int] = {}
    for _, _, reason in plan.refused:
        reason = re.sub(r"at step \d+ \(by [^)]*\)", "later", re.sub(r"%\d+", "%n", reason))
        counts[reason] = counts.get(reason, 0) + 1
    return [f"{c} × {r}" for r, c in sorted(counts.items(), key=lambda rc: -rc[1])][:4]
