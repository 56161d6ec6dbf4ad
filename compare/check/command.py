"""`diptych check`: equivalence and gradcheck of a zoo model, or of a function in a script."""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np

from compare.check.equivalence import equivalence, equivalence_of_model
from compare.check.gradcheck import gradcheck, gradcheck_of_model
from compare.check.stages import as_list
from compare.checks import UsageError, add_opt_levels, at_least, check_sizes

GRADCHECK_ENTRIES = 1024  # float input entries a script's gradcheck takes (2 runs per entry)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="run a program eagerly and compiled, node by node; name where and why they part",
        description="Run a zoo model (or a function of a script) eagerly and compiled at each "
        "optimize level, node by node, and name the first node whose values part and the pass "
        "that parted them; then check its gradients, first and second order, against central "
        "differences. Exit status 0 when everything agrees, 1 when not.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="a zoo model (`diptych models`)")
    p.add_argument(
        "--script",
        metavar="PATH.py:FUNCTION",
        help="a function written with F; its inputs come from the script's make_inputs() "
        "(a dict, a list or one array) or from --shape",
    )
    p.add_argument(
        "--shape",
        action="append",
        metavar="D0,D1,...",
        help="with --script: one float32 input of this shape (random normal); once per input",
    )
    add_opt_levels(p, "optimize levels to check (default: 0 1 2)")
    p.add_argument("--batch", type=at_least(1), help="with MODEL: batch size (default: its own)")
    p.add_argument("--size", type=at_least(1), help="with MODEL: its size knob")
    p.add_argument("--no-gradcheck", action="store_true", help="check the values only")


def run_check_command(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.script is None):
        raise UsageError("name a zoo model or pass --script PATH.py:FUNCTION (one of them).")
    if args.model is not None:
        reports = _check_model(args)
    else:
        reports = _check_script(args)
    for report in reports:
        print(report)
    return 0 if all(report.ok for report in reports) else 1


def _check_model(args: argparse.Namespace) -> list:
    from compare import zoo

    try:
        model = zoo.get(args.model)
    except zoo.UnknownModelError as exc:
        raise UsageError(str(exc)) from None
    check_sizes(model, args.batch, args.size)
    reports: list = [equivalence_of_model(model.name, args.batch, args.size, tuple(args.opt))]
    if not args.no_gradcheck:  # at the model's small test sizes: two runs per input entry
        reports.append(gradcheck_of_model(model.name))
    return reports


def _check_script(args: argparse.Namespace) -> list:
    fn, inputs = _script(args.script, args.shape)
    reports: list = [equivalence(fn, *inputs, optimize=tuple(args.opt))]
    entries = sum(a.size for a in inputs if a.dtype.kind == "f")
    if entries <= GRADCHECK_ENTRIES and not args.no_gradcheck:
        reports.append(gradcheck(fn, *inputs))
    elif not args.no_gradcheck:
        print(
            f"gradcheck left out: the inputs hold {entries:,} float entries, more than the "
            f"{GRADCHECK_ENTRIES:,} it takes (each costs two runs); pass smaller --shape values."
        )
    return reports


def _script(spec: str, shapes: list[str] | None) -> tuple[Callable[..., Any], list[np.ndarray]]:
    """The function named by `path.py:function`, and its inputs."""
    path, _, name = spec.rpartition(":")
    if not path or not name or not pathlib.Path(path).is_file():
        raise UsageError(f"--script {spec!r}: expected an existing PATH.py:FUNCTION.")
    loader = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"--script: {path} defines no function {name!r}.")
    if shapes:
        rng = np.random.default_rng(0)
        return fn, [rng.standard_normal(_shape(s)).astype(np.float32) for s in shapes]
    if not hasattr(module, "make_inputs"):
        raise UsageError(f"--script: {path} has no make_inputs(); define one or pass --shape.")
    made = module.make_inputs()
    values = made.values() if isinstance(made, dict) else as_list(made)
    return fn, [np.asarray(v) for v in values]


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(at_least(1)(d) for d in text.split(",") if d.strip())
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--shape {text!r}: {exc}") from None
