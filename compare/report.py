"""Results as a table (rich on a terminal, plain text otherwise), as JSON (compare/schema.py)
and as a self-contained HTML page."""

from __future__ import annotations

import html
import json
import math
import sys
from dataclasses import asdict
from typing import Any

from compare.harness import ModelResult, Row, Settings
from compare.timing import machine_text, nbytes, seconds, table_text

HEADERS = [
    "model / mode",
    "compile",
    "first call",
    "median step",
    "95% CI",
    "speedup",
    "peak mem",
    "max abs",
    "max rel",
    "verdict",
]
BREAKDOWN_HEADERS = [
    "model / mode",
    "step",
    "kernels",
    "allocation",
    "overhead",
    "kernel calls",
    "overhead/call",
]
LEGEND = (
    "compile: trace + S.grad + passes + codegen, '+ build': the fused kernels' numba builds "
    "on the first call\n(their targets in the notes); first call: the first step, timed alone, "
    "builds included; median step:\nsteady state (forward and gradients), interleaved repeats, "
    "95% CI of the median from order statistics;\nspeedup: eager's median over the row's; "
    "peak mem: tracemalloc's peak during a steady step (numpy's\nallocations; not torch's or "
    "XLA's) plus the compiled plan's buffer pool, allocated at the first call\nand held "
    "between steps; diffs: against eager over the loss, outputs and gradients (rel: per "
    "array,\nmax|diff| / max|eager|); verdict: optimize=0 must equal eager bit for bit "
    "('exact'), optimized graphs\nand peers be within 1e-4 relative ('ok')."
)


def _diff(x: float | None) -> str:
    return "-" if x is None else ("0" if x == 0 else f"{x:.1e}")


def interval(low_ns: float, high_ns: float) -> str:
    """'80.8-84.6 us', or '950 us-1.02 ms' across units."""
    low, high = seconds(low_ns / 1e9).split(), seconds(high_ns / 1e9).split()
    if low[1] == high[1]:
        return f"{low[0]}-{high[0]} {low[1]}"
    return f"{' '.join(low)}-{' '.join(high)}"


def compile_cell(row: Row) -> str:
    """'3.96 ms', or '3.96 ms + 1.30 s build' where fused kernels were built on the first call
    (compile_s holds both)."""
    if not row.kernel_build_s:
        return seconds(row.compile_s)
    return f"{seconds(row.compile_s - row.kernel_build_s)} + {seconds(row.kernel_build_s)} build"


def row_cells(row: Row) -> list[str]:
    s = row.stats
    ci = "-" if s is None else interval(s.ci_low, s.ci_high)
    return [
        f"  {row.mode}",
        compile_cell(row),
        seconds(row.first_call_s),
        seconds(None if s is None else s.median / 1e9),
        ci,
        "-" if row.speedup is None else f"{row.speedup:.2f}x",
        nbytes(row.peak_bytes),
        _diff(row.max_abs),
        _diff(row.max_rel),
        row.verdict,
    ]


def title(result: ModelResult) -> str:
    return f"{result.model} (batch {result.batch}, {result.size_means} {result.size})"


def table_rows(results: list[ModelResult]) -> list[list[str]]:
    rows = []
    for result in results:
        rows.append([title(result)] + [""] * (len(HEADERS) - 1))
        rows += [row_cells(r) for r in result.rows]
    return rows


def _share(entry: dict, key: str) -> str:
    return f"{seconds(entry[key] / 1e9)} ({entry[key] / entry['total_ns']:.0%})"


def breakdown_rows(results: list[ModelResult]) -> list[list[str]]:
    rows = []
    for result in results:
        if not result.breakdown:
            continue
        rows.append([title(result)] + [""] * (len(BREAKDOWN_HEADERS) - 1))
        for b in result.breakdown:
            calls = b["kernel_calls"]
            untimed = f" +{b['untimed_ops']} untimed" if b["untimed_ops"] else ""
            rows.append(
                [
                    f"  {b['mode']}",
                    seconds(b["total_ns"] / 1e9),
                    _share(b, "kernel_ns"),
                    _share(b, "allocation_ns"),
                    _share(b, "overhead_ns"),
                    f"{calls}{untimed}",
                    seconds(b["overhead_ns"] / 1e9 / max(calls, 1)),
                ]
            )
    return rows


def all_notes(results: list[ModelResult], extra: list[str]) -> list[str]:
    notes = list(extra)
    for result in results:
        notes += [n for n in result.notes if n not in notes]
    return notes


def _print_rich(headers: list[str], rows: list[list[str]]) -> bool:
    """Rich tables, one per model, on a terminal wide enough for them; False (print plain
    text instead) where rich is missing, stdout is not a terminal, or the table won't fit."""
    if not sys.stdout.isatty():
        return False
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    console = Console()
    if len(table_text(headers, rows).splitlines()[0]) > console.width:
        return False
    table = None
    for row in rows:
        if all(c == "" for c in row[1:]):  # a model's title starts its own table
            if table is not None:
                console.print(table)
            table = Table(title=row[0], title_justify="left", header_style="bold")
            for i, h in enumerate(headers):
                table.add_column(
                    h if i else "mode", justify="left" if i == 0 else "right", no_wrap=True
                )
        elif table is not None:
            table.add_row(*(c.strip() for c in row), style="red" if row[-1] == "FAIL" else None)
    if table is not None:
        console.print(table)
    return True


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    if not _print_rich(headers, rows):
        print(table_text(headers, rows))


def print_report(results: list[ModelResult], machine: dict, notes: list[str]) -> None:
    print(
        "diptych compare: each model run eagerly (define-by-run) and compiled "
        "(define-then-run),\nfrom the same inputs and weights: forward and gradients\n"
    )
    print(machine_text(machine))  # with the thread policy, as benchmarks/ print it
    print()
    print_table(HEADERS, table_rows(results))
    if any(r.breakdown for r in results):
        print(
            "\nwhere a step's time goes (compare/breakdown.py: kernels timed inside the step; "
            "overhead = step - kernels)"
        )
        print_table(BREAKDOWN_HEADERS, breakdown_rows(results))
    print()
    print(LEGEND)
    for i, note in enumerate(all_notes(results, notes), 1):
        print(f"  note {i}: {note}")


# ---- JSON --------------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def row_json(row: Row) -> dict[str, Any]:
    s = row.stats
    return {
        "mode": row.mode,
        "kind": row.kind,
        "optimize": row.optimize,
        "disabled": list(row.disabled),
        "compile_s": row.compile_s,
        "kernel_build_s": row.kernel_build_s,
        "fused_kernels": list(row.fused_kernels),
        "first_call_s": row.first_call_s,
        "median_s": s.median / 1e9,
        "ci_low_s": s.ci_low / 1e9,
        "ci_high_s": s.ci_high / 1e9,
        "q1_s": s.q1 / 1e9,
        "q3_s": s.q3 / 1e9,
        "samples": s.samples,
        "speedup": row.speedup,
        "peak_bytes": row.peak_bytes,
        "pool_bytes": row.pool_bytes,
        "max_abs_diff": _finite(row.max_abs),
        "max_rel_diff": _finite(row.max_rel),
        "tolerance": row.tolerance,
        "verdict": row.verdict,
        "note": row.note,
        "graph_ops": row.graph_ops,
    }


def breakdown_json(entry: dict) -> dict[str, Any]:
    return {
        "mode": entry["mode"],
        "kernel_calls": entry["kernel_calls"],
        "untimed_ops": entry["untimed_ops"],
        **{
            k.replace("_ns", "_s"): entry[k] / 1e9
            for k in ("total_ns", "kernel_ns", "allocation_ns", "overhead_ns")
        },
    }


def to_json(
    results: list[ModelResult],
    machine: dict,
    settings: Settings,
    sizes: list[int] | None,
    notes: list[str],
) -> dict[str, Any]:
    from compare.schema import SCHEMA_ID

    return {
        "schema": SCHEMA_ID,
        "machine": {k: v for k, v in machine.items() if k != "numpy_version"},
        "settings": {
            **{k: v for k, v in asdict(settings).items() if k != "size"},
            "opts": list(settings.opts),
            "peers": list(settings.peers),
            "sizes": sizes,
        },
        "results": [
            {
                "model": r.model,
                "batch": r.batch,
                "size": r.size,
                "size_means": r.size_means,
                "rows": [row_json(row) for row in r.rows],
                "notes": r.notes,
                "breakdown": None
                if r.breakdown is None
                else [breakdown_json(b) for b in r.breakdown],
            }
            for r in results
        ],
        "notes": notes,
        "ok": not any(r.failed for r in results),
    }


def write_json(document: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


# ---- HTML --------------------------------------------------------------------------------


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        if all(c == "" for c in row[1:]):
            body.append(
                f'<tr class="group"><td colspan="{len(headers)}">{html.escape(row[0])}</td></tr>'
            )
        else:
            cls = ' class="fail"' if row[-1] == "FAIL" else ""
            body.append(
                f"<tr{cls}>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>"
            )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
    "td:first-child,th:first-child{text-align:left}tr.group td{font-weight:bold;"
    "text-align:left;padding-top:10px}tr.fail{color:#b00}pre{color:#444}"
)


def write_html(
    results: list[ModelResult],
    machine: dict,
    notes: list[str],
    path: str,
    chart_png: bytes | None = None,
) -> None:
    import base64

    parts = [
        "<!doctype html><meta charset='utf-8'><title>diptych compare</title>",
        f"<style>{STYLE}</style><h1>diptych compare</h1>",
        f"<pre>{html.escape(machine_text(machine))}</pre>",
        _html_table(HEADERS, table_rows(results)),
    ]
    if any(r.breakdown for r in results):
        parts += [
            "<h2>Where a step's time goes</h2>",
            _html_table(BREAKDOWN_HEADERS, breakdown_rows(results)),
        ]
    if chart_png is not None:
        parts.append(
            f"<p><img alt='step time per mode' src='data:image/png;base64,"
            f"{base64.b64encode(chart_png).decode()}'></p>"
        )
    parts.append(f"<pre>{html.escape(LEGEND)}</pre><ul>")
    parts += [f"<li>{html.escape(n)}</li>" for n in all_notes(results, notes)]
    parts.append("</ul>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
