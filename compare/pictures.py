"""`diptych graph` and `diptych tape`: pictures of a zoo model, both ways.

    diptych graph mlp_digits --stage both -o mlp.svg            # traced beside optimized
    diptych graph gelu_chain --every-node -o gelu.svg           # no box, however large
    diptych graph mlp_digits --what train --format png -o step.png
    diptych graph rnn_varlen --passes -o passes/                # one picture per pass
    diptych tape mlp_digits -o tape.svg --animate tape.gif      # the tape, and its growth

The animation puts the eager tape growing op by op beside the static graph the symbolic
engine builds at once (the picture that explains dynamic graphs); this module is the one
place that knows both engines.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

import eager as E
import symbolic as S
from common import optim, style
from compare import checks, zoo
from compare.checks import UsageError, at_least, opt_level
from eager import visualize as eager_pictures
from symbolic import visualize as graph_pictures

WHAT = {
    "forward": "the loss and outputs",
    "grad": "the loss, outputs and gradients (as `diptych compare` runs it)",
    "train": "one SGD training step, updates included",
}


def _model(name: str) -> zoo.Model:
    try:
        return zoo.get(name)
    except zoo.UnknownModelError as exc:
        raise UsageError(str(exc)) from None


def _build(model: zoo.Model, size: int, seed: int) -> Any:
    """The model, its parameters named by their path (`layers.0.weight`, not `weight`)."""
    module = model.build(size, seed)
    for name, param in module.named_parameters():
        param.name = name
    return module


def _feeds(inputs: dict) -> list:
    return [S.placeholder(v.shape, v.dtype, name=k) for k, v in inputs.items()]


def compile_model(
    model: zoo.Model,
    what: str = "grad",
    optimize: int = 2,
    batch: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> S.CompiledFunction:
    """The model's graph: its forward, its gradients, or a whole SGD training step."""
    module = _build(model, size or model.size, seed)
    inputs = model.make_inputs(batch or model.batch, size or model.size, seed)
    feeds = _feeds(inputs)
    results = model.loss_and_outputs(module, feeds)
    params = list(module.parameters())
    if what == "forward":
        return S.compile(results, inputs=feeds, optimize=optimize)
    if what == "grad":
        wrt = params + [f for f, k in zip(feeds, inputs) if k in model.wrt]
        grads = list(S.grad(results[0], wrt)) if wrt else []
        return S.compile(results + grads, inputs=feeds, optimize=optimize)
    if not params:
        raise UsageError(
            f"{model.name} has no parameters, so it has no training step. "
            "Fix: --what grad, or a model with weights (`diptych models`)."
        )
    sgd = optim.SGD(params, lr=model.lr, momentum=model.momentum)
    grads = S.grad(results[0], params)  # its own line: the picture sets S.grad's nodes apart
    updates = S.optimizer_updates(sgd, grads)
    return S.compile(results[0], inputs=feeds, updates=updates, optimize=optimize)


def eager_peak_bytes(model: zoo.Model, batch: int | None, size: int | None) -> int:
    """What one eager step (loss, outputs, gradients) allocates at its peak."""
    from compare.harness import Case, Settings, peak_memory

    return peak_memory(Case(model, Settings(batch=batch, size=size)).eager().step)


# ---- diptych graph ------------------------------------------------------------------------


def graph_target(args: argparse.Namespace, model: zoo.Model) -> tuple[pathlib.Path, str]:
    """Where the picture goes and in which format, checked: -o (or MODEL_STAGE.svg); with
    --passes, a folder (made if its parent exists: it was asked for) or one .html page."""
    if not args.passes:
        path = args.output or f"{model.name}_{args.stage}.{args.format or 'svg'}"
        target = checks.check_output(path, checks.PICTURES, "-o")
        return target, checks.check_format(args.format, target)
    target = pathlib.Path(args.output or f"{model.name}_passes")
    if target.suffix.lower() == ".html":
        return checks.check_output(str(target), (".html",), "-o"), args.format or "svg"
    if target.suffix:
        raise UsageError(
            f"with --passes, -o is a folder (no suffix) or one .html page, not "
            f"{target}. Fix: -o {target.with_suffix('')} or -o "
            f"{target.with_suffix('.html')}."
        )
    return checks.check_folder(str(target), "-o"), args.format or "svg"


@checks.exits_2
def graph_command(args: argparse.Namespace) -> int:
    model = _model(args.model)
    target, fmt = graph_target(args, model)
    memory = None
    if args.memory:
        memory = checks.check_output(args.memory, checks.FIGURES, "--memory")
        checks.check_module("matplotlib", "--memory", "matplotlib")
        checks.check_distinct([target, memory])
    checks.check_sizes(model, args.batch, args.size, args.seed)
    fn = compile_model(model, args.what, args.opt, args.batch, args.size, args.seed)
    if args.passes:
        written = graph_pictures.render_passes(fn, target, fmt, args.max_nodes)
    else:
        written = [
            graph_pictures.render(fn, target, fmt, args.stage, args.collapse, args.max_nodes)
        ]
    if memory:
        if fn.graph.memory is None:
            print(
                "note: --memory needs --opt 2 (the memory pass); no chart written", file=sys.stderr
            )
        else:
            peak = eager_peak_bytes(model, args.batch, args.size) if args.what == "grad" else None
            written.append(graph_pictures.render_memory_plan(fn, memory, peak))
    for path in written:
        print(f"wrote {path}")
    return 0


# ---- diptych tape -------------------------------------------------------------------------


def _sizes(model: zoo.Model, batch: int | None, size: int | None) -> tuple[int, int]:
    """The tape is drawn op by op: small sizes by default (each model's test sizes), so an
    eager loop over the batch stays readable."""
    return batch or model.test_sizes[0], size or model.test_sizes[1]


def _eager_inputs(model: zoo.Model, batch: int, size: int, seed: int) -> dict:
    inputs = model.make_inputs(batch, size, seed)
    return {k: E.tensor(v, requires_grad=k in model.wrt) for k, v in inputs.items()}


@checks.exits_2
def tape_command(args: argparse.Namespace) -> int:
    model = _model(args.model)
    path = checks.check_output(
        args.output or f"{model.name}_tape.{args.format or 'svg'}", checks.PICTURES, "-o"
    )
    checks.check_format(args.format, path)
    if args.animate:
        checks.check_output(args.animate, (".gif",), "--animate")
        checks.check_module("PIL", "--animate", "Pillow")
    checks.check_sizes(model, args.batch, args.size, args.seed, defaults=model.test_sizes)
    batch, size = _sizes(model, args.batch, args.size)
    module = _build(model, size, args.seed)
    tensors = _eager_inputs(model, batch, size, args.seed)
    results = model.loss_and_outputs(module, list(tensors.values()), eager=True)
    outputs = [r for r in results if isinstance(r, E.Tensor) and r.requires_grad]
    for extra in outputs[1:]:
        extra.retain_grad()  # shown: a gradient kept on a tensor that is not a leaf
    if not outputs:
        raise UsageError(f"{model.name} records no tape (nothing requires grad)")
    outputs[0].backward(retain_graph=True)
    print(f"wrote {eager_pictures.render_tape(outputs, path, args.format, tensors)}")
    if args.animate:
        print(f"wrote {animate_model(model, args.animate, batch, size, args.seed)}")
    return 0


def animate_model(
    model: zoo.Model, path: Any, batch: int, size: int, seed: int = 0
) -> pathlib.Path:
    """The define-by-run animation: the eager tape growing op by op (left) beside the graph
    the symbolic engine builds before running anything (right), with the nodes made by the
    line the eager run is on outlined."""
    module = _build(model, size, seed)
    tensors = _eager_inputs(model, batch, size, seed)
    recording = eager_pictures.record_tape(
        lambda *ts: model.loss_and_outputs(module, list(ts), eager=True)[0],
        *tensors.values(),
        names=tensors,
    )
    feeds = _feeds(model.make_inputs(batch, size, seed))
    results = model.loss_and_outputs(module, feeds)
    graph = S.Graph([f.node for f in feeds], [r.node for r in results])
    return eager_pictures.animate_tape(recording, path, _static_panel(graph))


def _static_panel(graph: S.Graph) -> Any:
    cache: dict[str, Any] = {}

    def panel(k: int, line: str) -> Any:
        where = style.where(line)
        if where not in cache:
            lit = [n for n in graph.nodes if where and style.where(n.source) == where]
            picture = graph_pictures.digraph(graph, highlight=lambda n: n in lit, title="")
            note = (
                f"outlined: the {len(lit)} node(s) that line made, all at build time"
                if lit
                else "(no node here comes from that line: the eager program differs)"
            )
            cache[where] = eager_pictures.captioned(
                eager_pictures.png_image(picture.source),
                ["define-then-run: the whole graph exists before any number", note],
            )
        return cache[where]

    return panel


# ---- the subcommands ----------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add `graph` and `tape` to the `diptych` command's subparsers."""
    g = subparsers.add_parser(
        "graph",
        help="draw a model's graph (traced, optimized, passes)",
        description="Draw a zoo model's graph with Graphviz: "
        "placeholders, variables, constants and ops, fused kernels as "
        "boxes, the backward part set apart.",
    )
    g.add_argument("model", metavar="MODEL")
    g.add_argument("--stage", choices=graph_pictures.STAGES, default="optimized")
    g.add_argument("--format", choices=style.FORMATS, help="default: from -o, else svg")
    g.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the picture (with --passes: a folder, or a .html page)",
    )
    detail = g.add_mutually_exclusive_group()
    detail.add_argument(
        "--collapse",
        action="store_const",
        const=True,
        default="auto",
        help="one box per layer and source line (by default only graphs too large to read "
        "op by op, so that a picture fits a projector's width)",
    )
    detail.add_argument(
        "--every-node",
        dest="collapse",
        action="store_const",
        const=False,
        help="draw every node, however large the graph",
    )
    g.add_argument(
        "--passes",
        action="store_true",
        help="the graph after each pass, with what it changed highlighted",
    )
    g.add_argument(
        "--what",
        choices=tuple(WHAT),
        default="grad",
        help="; ".join(f"{k}: {v}" for k, v in WHAT.items()) + " (default: grad)",
    )
    g.add_argument("--memory", metavar="PATH", help="also chart the memory plan (png, svg, pdf)")
    g.add_argument("--opt", type=opt_level, default=2, help="optimize level (2)")
    g.add_argument(
        "--max-nodes",
        type=at_least(1),
        default=style.MAX_NODES,
        help=f"cut larger pictures, with a note ({style.MAX_NODES})",
    )
    g.add_argument("--batch", type=at_least(1))
    g.add_argument("--size", type=at_least(1))
    g.add_argument("--seed", type=at_least(0), default=0)
    g.set_defaults(run=graph_command)
    t = subparsers.add_parser(
        "tape",
        help="draw the eager tape of a model (and its growth)",
        description="Run a zoo model eagerly and draw the tape behind "
        "its loss; --animate also writes the tape growing op by op "
        "beside the static graph.",
    )
    t.add_argument("model", metavar="MODEL")
    t.add_argument("-o", "--output", metavar="PATH", help="the picture (default MODEL_tape.svg)")
    t.add_argument("--format", choices=style.FORMATS, help="default: from -o, else svg")
    t.add_argument("--animate", metavar="PATH.gif", help="write the define-by-run animation")
    t.add_argument("--batch", type=at_least(1), help="default: the model's small test batch")
    t.add_argument("--size", type=at_least(1), help="default: the model's small test size")
    t.add_argument("--seed", type=at_least(0), default=0)
    t.set_defaults(run=tape_command)
