"""One visual language for the pictures of both engines: the same shape, colour and label for
an op in the eager tape and in a symbolic graph, and one legend. Pure data and small helpers:
the engines' `visualize` modules turn them into Graphviz attributes (no graphviz import here).
"""

from __future__ import annotations

import html
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import numpy as np

FONT = "Helvetica"
GRAPH_ATTRS = {
    "rankdir": "TB",
    "fontname": FONT,
    "fontsize": "12",
    "nodesep": "0.25",
    "ranksep": "0.35",
    "bgcolor": "white",
    "labelloc": "t",
    "labeljust": "l",
}
NODE_ATTRS = {
    "fontname": FONT,
    "fontsize": "11",
    "style": "filled",
    "penwidth": "1.2",
    "margin": "0.08,0.04",
    "height": "0.3",
}
EDGE_ATTRS = {
    "fontname": FONT,
    "fontsize": "8",
    "fontcolor": "#64748b",
    "color": "#475569",
    "arrowsize": "0.6",
}

# Where a value comes from. The eager tape maps onto these too: a leaf tensor is an input
# (placeholder), an nn.Parameter is a variable, an array or number baked in is a constant.
SOURCES = {
    "placeholder": {"shape": "invhouse", "fillcolor": "#dbeafe", "color": "#1d4ed8"},
    "variable": {"shape": "cylinder", "fillcolor": "#fef3c7", "color": "#b45309"},
    "constant": {
        "shape": "box",
        "fillcolor": "#f3f4f6",
        "color": "#9ca3af",
        "style": "filled,dashed",
    },
}
# An op by its kind (`OpDef.kind`); "custom" is an eager `E.Function` written by hand.
OPS = {
    "elementwise": {"fillcolor": "#dcfce7", "color": "#15803d"},
    "reduction": {"fillcolor": "#fce7f3", "color": "#be185d"},
    "shape": {"fillcolor": "#f1f5f9", "color": "#64748b"},
    "linalg": {"fillcolor": "#ede9fe", "color": "#6d28d9"},
    "nn": {"fillcolor": "#ffedd5", "color": "#c2410c"},
    "random": {"fillcolor": "#fef9c3", "color": "#a16207"},
    "control": {"fillcolor": "#e0f2fe", "color": "#0369a1", "shape": "hexagon"},
    "custom": {
        "fillcolor": "#ffffff",
        "color": "#334155",
        "shape": "box",
        "style": "filled,rounded,dashed",
    },
}
OP_SHAPE = {"shape": "box", "style": "filled,rounded"}
OUTPUT = {"peripheries": "2", "penwidth": "1.6"}  # an output (or the tensor drawn)
GRAD = {"shape": "note", "fillcolor": "#fff7ed", "color": "#ea580c"}  # a .grad the tape kept

# Regions and groups, drawn as clusters.
FUSED = {"style": "filled,dashed,rounded", "fillcolor": "#f0fdf4", "color": "#16a34a"}
BACKWARD = {"style": "filled,rounded", "fillcolor": "#faf5ef", "color": "#d6c6b0"}
UPDATE = {"style": "filled,rounded", "fillcolor": "#fff1f2", "color": "#fda4af"}
BODY = {"style": "filled,rounded", "fillcolor": "#f0f9ff", "color": "#7dd3fc"}
STAGE = {"style": "rounded", "color": "#94a3b8"}
COLLAPSED = {"shape": "box3d", "fillcolor": "#f8fafc", "color": "#334155"}

# Edges: an update writes a variable; a body is run by its control node.
UPDATE_EDGE = {"style": "dashed", "color": "#b45309", "fontcolor": "#b45309", "penwidth": "1.4"}
ASSIGN = {"style": "filled,dashed", "penwidth": "1.6"}  # a variable, where an update writes it
BODY_EDGE = {"style": "dotted", "color": "#0369a1", "arrowhead": "odot"}
GRAD_EDGE = {"style": "dashed", "color": "#ea580c", "arrowhead": "none"}

# Changes in the pass timeline and the newest op of the animation.
ADDED = {"color": "#16a34a", "penwidth": "3"}
REMOVED = {
    "style": "filled,dashed",
    "fillcolor": "#fef2f2",
    "color": "#dc2626",
    "fontcolor": "#991b1b",
}
MERGED = {
    "style": "filled,dashed",
    "fillcolor": "#fff7ed",
    "color": "#ea580c",
    "fontcolor": "#9a3412",
}
MERGED_EDGE = {"style": "dotted", "color": "#ea580c", "constraint": "false", "fontcolor": "#ea580c"}
NEWEST = {"color": "#dc2626", "penwidth": "3.5"}
HIGHLIGHT = {"color": "#dc2626", "penwidth": "3"}

MAX_NODES = 400  # pictures above this are cut, with a note: dot slows down and text shrinks
INSTALL_HINT = (
    "Graphviz's `dot` program was not found, so only the DOT source was written: "
    "{path}. Install Graphviz (apt install graphviz, brew install graphviz, or "
    "conda install graphviz), then run `dot -T{format} {path} -o {target}`."
)


def dot_available() -> bool:
    return shutil.which("dot") is not None


def pipe(source: str, format: str, *options: str) -> bytes:
    """DOT source laid out by Graphviz's `dot` into `format` (svg, png, pdf) bytes;
    `options` are dot's own (`-Gdpi=48`)."""
    command = ["dot", f"-T{format}", *options]
    done = subprocess.run(command, input=source.encode(), capture_output=True)
    if done.returncode != 0 and b"init_rank" in done.stderr:
        # dot's classic ranking fails on some nested clusters; the newer one (slower) works
        done = subprocess.run(
            command + ["-Gnewrank=true"], input=source.encode(), capture_output=True
        )
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def dpi_to_fit(source: str, width: int, height: int, dpi: float = 96.0) -> float:
    """The resolution at which the laid-out picture fits in width x height pixels (at most
    `dpi`): big pictures are drawn smaller rather than rasterized huge and shrunk."""
    laid = pipe(source, "dot").decode()
    found = re.search(r'bb="([\d.]+),([\d.]+),([\d.]+),([\d.]+)"', laid)
    if found is None:
        return dpi
    x0, y0, x1, y1 = (float(v) for v in found.groups())
    points = max(x1 - x0, 1.0), max(y1 - y0, 1.0)  # 72 points an inch
    return min(dpi, 72 * width / points[0], 72 * height / points[1])


FORMATS = ("svg", "png", "pdf", "dot")


def write(source: str, path: Any, format: str | None = None) -> pathlib.Path:
    """Write a picture: `format` from the suffix when not given; where `dot` is missing, the
    DOT source next to it (and a note on stderr saying how to install Graphviz)."""
    path = pathlib.Path(path)
    format = format or path.suffix.lstrip(".").lower() or "svg"
    if format not in FORMATS:
        raise ValueError(
            f"format {format!r} is not one of {', '.join(FORMATS)}. Fix: pick "
            "one, or give the path a suffix such as .svg."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "dot":
        path.write_text(source)
        return path
    if not dot_available():
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(source)
        print(INSTALL_HINT.format(path=dot_path, format=format, target=path), file=sys.stderr)
        return dot_path
    path.write_bytes(pipe(source, format))
    return path


def short_dtype(dtype: Any) -> str:
    """f32, i64, bool: the dtype as the graph dump writes it (object: a tuple of values)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "O":
        return "tuple"
    if dtype.kind == "b":
        return "bool"
    return {"f": "f", "i": "i", "u": "u", "c": "c"}.get(dtype.kind, dtype.kind) + str(
        8 * dtype.itemsize
    )


def type_label(shape: tuple | None, dtype: Any) -> str:
    """`f32[8, 64]`, `f32[]` for a scalar, `f32[?]` for an unknown rank, `tuple`."""
    name = short_dtype(dtype)
    if name == "tuple":
        return name
    if shape is None:
        return f"{name}[?]"
    return f"{name}[{', '.join('?' if d is None else str(d) for d in shape)}]"


def literal(value: Any) -> str:
    """A Python number argument, short: 2, 0.5, -inf, True."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value)


def _simple(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_simple(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, slice, np.generic))


def _param(value: Any) -> str:
    if isinstance(value, slice):
        parts = ["" if p is None else str(p) for p in (value.start, value.stop, value.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
    if isinstance(value, tuple):
        return "(" + ", ".join(_param(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return literal(value)


HIDDEN_PARAMS = ("aval", "out_avals", "n_carry", "n_xs", "n_ys")  # control flow's bookkeeping


def op_detail(inputs: tuple, params: dict, is_value=lambda a: False, width: int = 28) -> str:
    """The small line under an op's name: literal arguments and readable params,
    `(·, 2)` or `axis=1`; values that are drawn as edges show as `·`."""
    parts = []
    literals = [a for a in inputs if not is_value(a)]
    if literals:
        parts.append("(" + ", ".join("·" if is_value(a) else literal(a) for a in inputs) + ")")
    shown = [
        f"{k}={_param(v)}"
        for k, v in params.items()
        if k not in HIDDEN_PARAMS
        and _simple(v)
        and v is not None
        and not (k == "keepdims" and not v)
    ]
    text = " ".join(parts + [", ".join(shown)] if shown else parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def wrap(text: str, width: int = 48, lines: int = 4) -> list[str]:
    """Break a long expression at spaces (or anywhere), keeping at most `lines` lines."""
    out: list[str] = []
    for part in text.split("; "):
        while len(part) > width:
            cut = part.rfind(" ", 0, width)
            cut = cut if cut > width // 2 else width
            out.append(part[:cut])
            part = part[cut:].lstrip()
        out.append(part)
    return out if len(out) <= lines else out[: lines - 1] + ["…"]


def html_label(title: str, *details: str, bold: bool = True) -> str:
    """A Graphviz HTML-like label: the title, then smaller grey lines (escaped here)."""
    head = html.escape(title)
    rows = [f"<B>{head}</B>" if bold else head]
    rows += [f'<FONT POINT-SIZE="9" COLOR="#475569">{html.escape(d)}</FONT>' for d in details if d]
    return "<" + "<BR/>".join(rows) + ">"


def tooltip(*lines: str) -> str:
    """A hover text of several lines (DOT escapes: backslashes doubled, `\\n` between)."""
    return "\\n".join(line.replace("\\", "\\\\") for line in lines if line)


def source_attrs(kind: str) -> dict[str, str]:
    """A source's look (on top of NODE_ATTRS, the pictures' node defaults)."""
    return dict(SOURCES[kind])


def op_attrs(kind: str | None) -> dict[str, str]:
    """An op's look by its kind (on top of NODE_ATTRS)."""
    return {**OP_SHAPE, **OPS.get(kind or "custom", OPS["custom"])}


def where(source: str) -> str:
    """`model.py:12` from a node's source line `model.py:12: y = x @ w`."""
    return source.split(": ", 1)[0] if source else ""


def code(source: str) -> str:
    """The code part of a source line."""
    return source.split(": ", 1)[1] if ": " in source else ""


LEGEND_TEXT = {
    "placeholder": "placeholder / input fed per call",
    "variable": "variable / nn.Parameter (persistent)",
    "constant": "constant (baked in)",
    "elementwise": "elementwise op",
    "reduction": "reduction",
    "shape": "shape op (reshape, transpose…)",
    "linalg": "linear algebra",
    "nn": "nn op (conv, pooling…)",
    "random": "random op",
    "control": "control flow (cond, scan…)",
    "custom": "custom E.Function",
    "fused": "fused kernel (dashed box)",
    "collapsed": "the ops of one source line",
    "grad": ".grad kept by backward",
    "output": "output (double border)",
}


def legend_label(keys: list[str]) -> str:
    """One HTML table: a swatch in each entry's colours, then what it means."""
    rows = []
    for key in keys:
        attrs = (
            SOURCES.get(key)
            or OPS.get(key)
            or {"fused": FUSED, "grad": GRAD, "collapsed": COLLAPSED}.get(key)
            or {"fillcolor": "#ffffff", "color": "#334155"}
        )
        swatch = (
            f'<TD BGCOLOR="{attrs["fillcolor"]}" BORDER="1" COLOR="{attrs["color"]}" '
            f'WIDTH="18" HEIGHT="12"></TD>'
        )
        rows.append(
            f'<TR>{swatch}<TD ALIGN="LEFT"><FONT POINT-SIZE="9">'
            f"{html.escape(LEGEND_TEXT[key])}</FONT></TD></TR>"
        )
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
        '<TR><TD COLSPAN="2" ALIGN="LEFT"><B>legend</B></TD></TR>' + "".join(rows) + "</TABLE>>"
    )


LEGEND_NODE = {
    "shape": "box",
    "style": "rounded",
    "color": "#cbd5e1",
    "fontname": FONT,
    "margin": "0.05",
}
