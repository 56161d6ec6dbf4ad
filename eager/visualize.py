"""Pictures of the eager tape: what a tensor remembers about how it was made (as torchviz's
make_dot draws it), and the define-by-run animation of the tape growing op by op.

    y = F.tanh(x @ w).sum()
    render_tape(y, "tape.svg", names={"x": x})          # also E.render(y, "tape.svg")
    y                                                # in Jupyter: the tape, as SVG
    recording = record_tape(model, x, labels)        # run once, noting each op as it runs
    animate_tape(recording, "tape.gif")              # one frame per op recorded

The tape is drawn with the symbolic graphs' visual language (common.style): an op looks
the same in both, a leaf tensor like a placeholder, an nn.Parameter like a variable, an
array or a number baked in like a constant. After a backward() the tape's saved values are
freed; what was recorded is still drawn where autograd keeps it (`Node.recorded`).
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import graphviz

from common import style
from common.methods import ArrayMethods
from common.nn.parameter import Parameter
from common.ops.core import user_line
from eager.tensor import Tensor


def _who(value: Any) -> int:
    """Who a value is on the tape: its tape node (once backward() freed the tape, one tensor
    read by two ops is two stand-ins sharing that node), else the object itself."""
    node = getattr(value, "_node", None)
    return id(node) if node is not None else id(value)


def _inputs_of(value: Any) -> tuple:
    """What made `value`: its tape node's inputs, or once backward() freed them, what the
    node recorded of them (stand-ins with a shape and a dtype, no values)."""
    node = getattr(value, "_node", None)
    if node is None:
        return ()
    return node.inputs if node.inputs is not None else getattr(node, "recorded", None) or ()


def _is_value(a: Any) -> bool:
    """Drawn as a node of its own (not a Python number written into its op's label)."""
    return not isinstance(a, (bool, int, float, complex))


def walk(roots: list) -> list:
    """The values behind `roots` (tensors, parameters, arrays), each after its inputs,
    in the order the tape reaches them (argument order): the same program, the same list."""
    order, seen = [], set()
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        value, expanded = stack.pop()
        if expanded:
            order.append(value)
            continue
        if _who(value) in seen:
            continue
        seen.add(_who(value))
        stack.append((value, True))
        stack.extend(
            (a, False) for a in reversed(_inputs_of(value)) if _is_value(a) and _who(a) not in seen
        )
    return order


def _shape_dtype(value: Any) -> tuple:
    return tuple(getattr(value, "shape", ())), getattr(value, "dtype", "float64")


@dataclass
class _Frame:
    """What one picture of the tape shows: every value, some hidden (not recorded yet)."""

    roots: list
    names: dict = field(default_factory=dict)  # _who(value) -> name
    visible: set | None = None  # ids of recorded tensors shown (None: all)
    newest: Any = None
    grads: bool = True  # draw the .grad kept on leaves and retain_grad() tensors


def _looks(value: Any, frame: _Frame, outputs: set, legend: set) -> dict:
    type_ = style.type_label(*_shape_dtype(value))
    node = getattr(value, "_node", None)
    if node is not None:
        kind = getattr(node.op, "kind", "custom")
        legend.add(kind)
        attrs = style.op_attrs(kind)
        inputs = _inputs_of(value)
        if inputs:
            label = [node.name, style.op_detail(inputs, node.params, _is_value)]
        else:  # freed, and nothing recorded of it
            label = [node.name, "freed by backward()"]
        freed = " (its saved values were freed by backward())" if node.inputs is None else ""
        tip = f"{node.name} : {type_} (backward runs {node.name}'s VJP){freed}"
    elif isinstance(value, ArrayMethods):
        kind = "variable" if isinstance(value, Parameter) else "placeholder"
        legend.add(kind)
        attrs = style.source_attrs(kind)
        name = (
            frame.names.get(_who(value))
            or getattr(value, "name", "")
            or ("parameter" if kind == "variable" else "tensor")
        )
        label = [name, type_, "requires grad" if value.requires_grad else "no grad"]
        tip = f"leaf {type(value).__name__} : {type_}"
    else:
        legend.add("constant")
        attrs = style.source_attrs("constant")
        label = [frame.names.get(_who(value), "array"), type_]
        tip = f"{type(value).__name__} baked into the tape : {type_}"
    if _who(value) in outputs:
        legend.add("output")
        label.append(f"output : {type_}")
        attrs.update(style.OUTPUT)
    attrs["label"] = style.html_label(*label)
    attrs["tooltip"] = tip
    return attrs


def _shown(value: Any, frame: _Frame, users: dict) -> bool:
    """Recorded tensors show once recorded; leaves once a shown op uses them."""
    if frame.visible is None:
        return True
    if getattr(value, "_node", None) is not None:
        return _who(value) in frame.visible
    return any(u in frame.visible for u in users.get(_who(value), ()))


def _tape_digraph(
    frame: _Frame, max_nodes: int = style.MAX_NODES, title: str = ""
) -> graphviz.Digraph:
    values = walk(frame.roots)
    names = {_who(v): f"v{i}" for i, v in enumerate(values)}  # positions: stable between runs
    users: dict[int, list[int]] = {}
    for v in values:
        for a in _inputs_of(v):
            users.setdefault(_who(a), []).append(_who(v))
    outputs = {_who(r) for r in frame.roots} if frame.visible is None else set()
    dot = graphviz.Digraph(
        graph_attr=dict(style.GRAPH_ATTRS),
        node_attr=dict(style.NODE_ATTRS),
        edge_attr=style.EDGE_ATTRS,
    )
    if title:
        dot.attr(label=style.html_label(title, bold=False))
    legend: set[str] = set()
    drawn = values[:max_nodes]
    drawn_ids = {_who(v) for v in drawn}
    for v in drawn:
        attrs = _looks(v, frame, outputs, legend)
        shown = _shown(v, frame, users)
        if not shown:
            attrs["style"] = "invis"
        elif v is frame.newest:
            attrs.update(style.NEWEST)
        dot.node(names[_who(v)], **attrs)
        for a in _inputs_of(v):
            if _is_value(a) and _who(a) in drawn_ids:
                dot.edge(
                    names[_who(a)],
                    names[_who(v)],
                    label=style.type_label(*_shape_dtype(a)),
                    **({} if shown else {"style": "invis"}),
                )
        grad = getattr(v, "grad", None)
        kept = getattr(v, "_node", None) is None or getattr(v, "_retains_grad", False)
        if grad is not None and kept and frame.grads and shown:
            legend.add("grad")
            dot.node(
                f"{names[_who(v)]}_grad",
                **{
                    **style.GRAD,
                    "label": style.html_label("grad", style.type_label(*_shape_dtype(grad))),
                },
            )
            dot.edge(names[_who(v)], f"{names[_who(v)]}_grad", **style.GRAD_EDGE)
    if legend:
        keys = [k for k in style.LEGEND_TEXT if k in legend]
        dot.node("legend", label=style.legend_label(keys), **style.LEGEND_NODE)
    if len(values) > max_nodes:
        dot.node(
            "note",
            shape="note",
            label=f"showing {max_nodes} of {len(values)} values (max_nodes={max_nodes})",
        )
    return dot


def _frame(roots: Any, names: dict | None) -> _Frame:
    roots = list(roots) if isinstance(roots, (list, tuple)) else [roots]
    return _Frame(roots, {_who(v): k for k, v in (names or {}).items()})


def tape_to_dot(roots: Any, names: dict | None = None, max_nodes: int = style.MAX_NODES) -> str:
    """DOT source of the tape behind a tensor (or several): recorded ops with their output
    types on the edges, leaves (named through `names`: {name: tensor}), and the `.grad` kept
    on leaves and on tensors that called retain_grad(). After a backward() without
    retain_graph=True the saved values are freed; the title says so."""
    frame = _frame(roots, names)
    nodes = [v._node for v in walk(frame.roots) if getattr(v, "_node", None) is not None]
    freed = any(n.inputs is None for n in nodes)
    title = f"eager tape: {len(nodes)} ops recorded" + (
        " (their saved values freed by backward())" if freed else ""
    )
    return _tape_digraph(frame, max_nodes, title).source


def render_tape(
    roots: Any,
    path: Any,
    format: str | None = None,
    names: dict | None = None,
    max_nodes: int = style.MAX_NODES,
) -> pathlib.Path:
    """Write the tape picture (svg, png, pdf or dot; the DOT source if `dot` is missing)."""
    return style.write(tape_to_dot(roots, names, max_nodes), path, format)


render = render_tape  # E.render(tensor, path): the name a compiled function's picture has


def svg(roots: Any, names: dict | None = None) -> str | None:
    """The tape picture as SVG text, for notebooks (None where `dot` is missing)."""
    if not style.dot_available():
        return None
    return style.pipe(tape_to_dot(roots, names), "svg").decode()


# ---- the define-by-run animation ----------------------------------------------------------


@dataclass
class TapeRecording:
    result: Any  # what the function returned
    steps: list  # (tensor, the user's line) for each op the tape recorded, in order
    names: dict = field(default_factory=dict)  # name -> input tensor


@contextlib.contextmanager
def recording_tape() -> Iterator[list]:
    """Inside, every op that records a tape node is noted with the user's line that ran it
    (by wrapping Tensor._apply; custom E.Function ops are not noted)."""
    steps: list = []
    original = Tensor.__dict__["_apply"]

    def noting(op: Any, args: tuple, params: dict) -> Tensor:
        out = original.__func__(op, args, params)
        if out._node is not None:
            steps.append((out, user_line()))
        return out

    Tensor._apply = staticmethod(noting)
    try:
        yield steps
    finally:
        Tensor._apply = original


def record_tape(fn: Callable, *args: Any, names: dict | None = None) -> TapeRecording:
    """Run `fn(*args)` eagerly, noting the tape as it grows."""
    with recording_tape() as steps:
        result = fn(*args)
    if not steps:
        raise ValueError(
            "the function recorded no tape: no op had an input that requires "
            "grad. Fix: pass tensors made with requires_grad=True, or a model "
            "with parameters."
        )
    return TapeRecording(result, steps, dict(names or {}))


def frame_dots(recording: TapeRecording) -> list[str]:
    """One DOT per op recorded: the whole tape laid out once (so nothing moves between
    frames), the ops not yet recorded invisible, the newest one outlined in red."""
    roots = [t for t, _ in recording.steps]
    frame = _frame(roots, recording.names)
    frame.grads = False  # the frames show the forward run, before any backward
    dots = []
    for k, (tensor, _) in enumerate(recording.steps):
        frame.visible = {_who(t) for t, _ in recording.steps[: k + 1]}
        frame.newest = tensor
        dots.append(_tape_digraph(frame).source)
    return dots


PANEL = (1200, 1200)  # the largest picture in an animation's frame, in pixels


def png_image(source: str, dpi: float | None = None) -> Any:
    """The picture as a Pillow image; by default small enough to fit PANEL."""
    from PIL import Image

    dpi = dpi or style.dpi_to_fit(source, *PANEL)
    return Image.open(io.BytesIO(style.pipe(source, "png", f"-Gdpi={dpi:.1f}"))).convert("RGB")


def captioned(image: Any, caption: list[str], width: int | None = None) -> Any:
    """The image under a caption of a few lines (white background)."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1: one fixed size
        font = ImageFont.load_default()
    head = 12 + 20 * len(caption)
    canvas = Image.new("RGB", (max(width or 0, image.width), image.height + head), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(caption):
        draw.text((10, 6 + 20 * i), line, fill=(15, 23, 42) if i == 0 else (71, 85, 105), font=font)
    canvas.paste(image, (0, head))
    return canvas


def side_by_side(images: list, gap: int = 24) -> Any:
    from PIL import Image

    width = sum(i.width for i in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(i.height for i in images)), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + gap
    return canvas


def tape_frames(recording: TapeRecording, companion: Callable | None = None) -> list:
    """The animation's frames (Pillow images): the tape after each op, with its caption;
    `companion(k, line)` may return a picture to show beside it (the static graph)."""
    frames = []
    total = len(recording.steps)
    sources = frame_dots(recording)
    dpi = style.dpi_to_fit(sources[-1], *PANEL)  # one layout for all frames: one size
    for k, (source, (tensor, line)) in enumerate(zip(sources, recording.steps)):
        tape = captioned(
            png_image(source, dpi),
            [
                f"define-by-run: the tape after op {k + 1} of {total} ({tensor._node.name})",
                f"ran: {line}" if line else "",
            ],
        )
        frames.append(side_by_side([tape, companion(k, line)]) if companion else tape)
    return frames


def save_gif(frames: list, path: Any, ms_per_frame: int = 600) -> pathlib.Path:
    """An animated GIF, frames padded to one size; the last frame stays longer."""
    from PIL import Image

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = (max(f.width for f in frames), max(f.height for f in frames))
    padded = []
    for f in frames:
        canvas = Image.new("RGB", size, "white")
        canvas.paste(f, (0, 0))
        padded.append(canvas)
    durations = [ms_per_frame] * (len(padded) - 1) + [ms_per_frame * 5]
    padded[0].save(
        path, save_all=True, append_images=padded[1:], duration=durations, loop=0, disposal=1
    )
    return path


def animate_tape(
    recording: TapeRecording, path: Any, companion: Callable | None = None, ms_per_frame: int = 600
) -> pathlib.Path:
    """Write the animation as a GIF (one frame per op recorded). Without Graphviz's `dot`,
    writes each frame's DOT source into a folder next to `path` instead, with a note."""
    path = pathlib.Path(path)
    if not style.dot_available():
        folder = path.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        for k, source in enumerate(frame_dots(recording)):
            style.write(source, folder / f"frame_{k:03d}.dot")
        print(
            style.INSTALL_HINT.format(
                path=folder / "frame_000.dot", format="png", target="frame_000.png"
            ),
            file=sys.stderr,
        )
        return folder
    return save_gif(tape_frames(recording, companion), path, ms_per_frame)
