"""Figures with matplotlib, imported only when a figure is asked for (`--plot`, `--html`).

Figures are made with `matplotlib.figure.Figure` directly, not pyplot: no GUI backend, no
global state.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

from compare.harness import ModelResult


class PlotError(RuntimeError):
    """matplotlib is missing: says how to install it."""


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(
            "plots need matplotlib, which is not installed. Fix: pip install "
            "matplotlib (or leave out --plot)."
        ) from None
    return Figure(**kwargs)


def step_times(results: list[ModelResult]) -> Any:
    """Horizontal bars: median step time per mode, one panel per model, 95% CI as whiskers."""
    fig = _figure(
        figsize=(8, 1.2 + 0.45 * sum(len(r.rows) + 1 for r in results)), layout="constrained"
    )
    axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
    for ax, result in zip(axes, results):
        rows = result.rows
        medians = [r.stats.median / 1e3 for r in rows]
        low = [m - r.stats.ci_low / 1e3 for m, r in zip(medians, rows)]
        high = [r.stats.ci_high / 1e3 - m for m, r in zip(medians, rows)]
        colors = [
            "#777" if r.kind == "eager" else "#1f77b4" if r.kind == "symbolic" else "#ff7f0e"
            for r in rows
        ]
        ax.barh(range(len(rows)), medians, xerr=[low, high], color=colors)
        ax.set_yticks(range(len(rows)), [r.mode for r in rows])
        ax.invert_yaxis()
        ax.set_title(
            f"{result.model} (batch {result.batch}, {result.size_means} {result.size})", fontsize=10
        )
    axes[-1].set_xlabel("median step time (us; whiskers: 95% CI of the median)")
    return fig


def scaling(results: list[ModelResult]) -> Any:
    """Speedup over eager against input size (--sizes), one panel per model."""
    by_model: dict[str, list[ModelResult]] = defaultdict(list)
    for r in results:
        by_model[r.model].append(r)
    fig = _figure(figsize=(7.5, 3 * len(by_model)), layout="constrained")
    axes = fig.subplots(len(by_model), 1, squeeze=False)[:, 0]
    for ax, (model, runs) in zip(axes, by_model.items()):
        runs = sorted(runs, key=lambda r: r.size)
        modes = [row.mode for row in runs[0].rows if row.kind != "eager" and not row.disabled]
        for mode in modes:  # the --ablate rows are left out: they would hide the others
            points = [(r.size, row.speedup) for r in runs for row in r.rows if row.mode == mode]
            ax.plot(*zip(*points), marker="o", label=mode)
        ax.axhline(1.0, color="#777", linewidth=1, linestyle="--")
        ax.set_xscale("log")
        sizes = [r.size for r in runs]
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel(runs[0].size_means)
        ax.set_ylabel("speedup over eager")
        ax.set_title(f"{model} (batch {runs[0].batch})", fontsize=10)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def loss_curves(model: str, eager: list[float], symbolic: list[float]) -> Any:
    """Both training runs' losses in one figure."""
    fig = _figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(eager, label="eager", linewidth=3, alpha=0.5)
    ax.plot(symbolic, label="symbolic (compiled step)", linestyle="--")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if min(eager + symbolic) > 0 else "linear")
    ax.set_title(f"{model}: the same training, eager and compiled")
    ax.legend()
    return fig


def for_results(results: list[ModelResult]) -> Any:
    """The scaling figure for a --sizes sweep, the step-time bars otherwise."""
    swept = len({(r.model, r.size) for r in results}) > len({r.model for r in results})
    return scaling(results) if swept else step_times(results)


def save(fig: Any, path: str) -> None:
    fig.savefig(path, dpi=110)


def png_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
