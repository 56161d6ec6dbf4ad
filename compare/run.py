"""`diptych run` and `diptych export`: a saved graph run without the Python that built it,
and zoo models written to files.

    diptych export mlp_digits --format dip -o mlp.dip
    diptych run mlp.dip --input x.npy --input t.npy -o outputs.npz

`run` imports diptych and nothing of the model's: the file holds the whole program. Formats
are writers in `WRITERS`: another one is one entry.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compare import zoo
from compare.checks import UsageError, at_least, check_output, opt_level


@dataclass(frozen=True)
class Writer:
    suffix: str  # what -o must end with
    write: Callable[[Any, Path], Any]  # write(compiled function, path)


def _write_onnx(fn: Any, path: Path) -> None:
    from symbolic.serialize.onnx import (
        export_onnx,
    )  # the `export` extra, loaded for this format only

    export_onnx(fn, path)


WRITERS: dict[str, Writer] = {
    "dip": Writer(".dip", lambda fn, path: fn.save(path)),
    "onnx": Writer(".onnx", _write_onnx),
}


# ---- diptych export ----------------------------------------------------------------------


def export_model(
    name: str,
    format: str,
    path: Any,
    batch: int | None = None,
    size: int | None = None,
    optimize: int = 2,
    seed: int = 0,
) -> Any:
    """Write the zoo model `name`'s forward pass (eval mode: its loss and outputs, from its
    inputs) as `format`; returns the compiled function written."""
    import symbolic as S

    if format not in WRITERS:
        raise UsageError(f"unknown format {format!r}. Formats: {', '.join(WRITERS)}.")
    writer = WRITERS[format]
    target = check_output(str(path), (writer.suffix,), "-o")
    model = _zoo_model(name)
    size = size or model.size
    module = model.build(size, seed).eval()
    example = model.make_inputs(batch or model.batch, size, seed)
    feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in example.items()]
    fn = S.compile(lambda *xs: module(*xs), inputs=feeds, optimize=optimize)
    writer.write(fn, target)
    return fn


def _zoo_model(name: str) -> zoo.Model:
    try:
        return zoo.get(name)
    except zoo.UnknownModelError as exc:
        raise UsageError(str(exc)) from None


def run_export_command(args: argparse.Namespace) -> int:
    fn = export_model(
        args.model, args.format, args.output, args.batch, args.size, args.opt, args.seed
    )
    print(f"wrote {args.output}: {args.model} ({len(fn.graph.ops)} ops after the passes)")
    print(f"inputs: {_signature(fn.graph.inputs)}")
    return 0


# ---- diptych run -------------------------------------------------------------------------


def run_saved(path: Any, inputs: list[str], output: str | None = None, device: str | None = None):
    """Load the graph at `path`, feed it the .npy files in `inputs` (in placeholder order,
    or `NAME=PATH` by name), and write its outputs to `output` (.npy for one, .npz for any
    number); returns the outputs as a list."""
    import symbolic as S

    target = output and check_output(output, (".npy", ".npz"), "-o")
    try:
        fn = S.load(path, device=device)
    except (S.LoadError, OSError) as exc:
        raise UsageError(str(exc)) from None
    if target is not None and target.suffix == ".npy" and len(fn.graph.outputs) != 1:
        raise UsageError(
            f"-o {output}: the graph has {len(fn.graph.outputs)} outputs. Fix: a .npz."
        )
    positional, named = [], {}
    for text in inputs:
        name, file = _named_input(text)
        if name is None:
            positional.append(_array(file))
        else:
            named[name] = _array(file)
    try:
        results = fn(*positional, **named)
    except (S.FeedError, S.GraphRuntimeError) as exc:  # inputs the graph cannot take
        raise UsageError(" ".join(line.strip() for line in str(exc).splitlines())) from None
    results = results if isinstance(results, list) else [results]  # one output: an array
    if target is not None and target.suffix == ".npy":
        np.save(target, results[0], allow_pickle=False)
    elif target is not None:
        np.savez(target, **{f"output_{i}": r for i, r in enumerate(results)})
    return results


def _named_input(text: str) -> tuple[str | None, str]:
    """`NAME=PATH` -> (NAME, PATH); a plain path -> (None, PATH)."""
    found = re.fullmatch(r"([A-Za-z_]\w*)=(.+)", text)
    return (found.group(1), found.group(2)) if found else (None, text)


def _array(path: str) -> np.ndarray:
    if not path.endswith(".npy"):
        raise UsageError(f"--input {path}: a .npy file is wanted (np.save writes one).")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--input {path}: cannot read it ({exc}).") from None


def _signature(inputs: list) -> str:
    return ", ".join(f"{n.name} {n.type_str()}" for n in inputs) or "(none)"


def run_command(args: argparse.Namespace) -> int:
    results = run_saved(args.file, args.input, args.output, args.device)
    for i, result in enumerate(results):
        print(f"output {i}: {result.dtype}{list(np.shape(result))}")
    if args.output:
        print(f"wrote {args.output}")
    else:
        for i, result in enumerate(results):
            print(f"output {i} = {np.array2string(np.asarray(result), threshold=20, edgeitems=2)}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`run` and `export`; each sets `args.run` to its command."""
    r = sub.add_parser(
        "run",
        help="run a saved graph (.dip) on .npy inputs, without the Python that built it",
        description="Load a graph saved with f.save(path) and run it on arrays read from "
        ".npy files. Nothing of the model's own code is imported.",
    )
    r.add_argument("file", metavar="FILE", help="a .dip file (f.save, or diptych export)")
    r.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="a .npy file per placeholder, in order (or NAME=PATH by name); repeat it",
    )
    r.add_argument("-o", "--output", metavar="PATH", help=".npy (one output) or .npz (any)")
    r.add_argument("--device", help="cpu or cuda (default: the device it was saved for)")
    r.set_defaults(run=run_command)
    e = sub.add_parser(
        "export",
        help="write a zoo model's forward graph to a file",
        description="Trace a zoo model's forward pass (eval mode) and write it in a format "
        f"others can run: {', '.join(WRITERS)}.",
    )
    e.add_argument("model", metavar="MODEL")
    e.add_argument("--format", default="dip", help=f"one of: {', '.join(WRITERS)} (dip)")
    e.add_argument("-o", "--output", required=True, metavar="PATH")
    e.add_argument("--batch", type=at_least(1))
    e.add_argument("--size", type=at_least(1))
    e.add_argument("--opt", type=opt_level, default=2, help="optimize level (2)")
    e.add_argument("--seed", type=at_least(0), default=0)
    e.set_defaults(run=run_export_command)
