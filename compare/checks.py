"""Every argument of `diptych` checked before any work, and the one way bad input fails: one
line, `diptych: error: ...`, exit status 2, nothing written and no folder created.

    p.add_argument("--batch", type=at_least(1))              # numbers: argparse types
    path = check_output(args.json, (".json",), "--json")     # paths: before the run
    check_sizes(model, args.batch, args.size)                # sizes the model cannot take
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pathlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

PICTURES = tuple(f".{f}" for f in ("svg", "png", "pdf", "dot"))  # Graphviz: common/style.py
FIGURES = (".png", ".svg", ".pdf")  # matplotlib
KERNEL_FILES = ("/proc", "/sys")  # the kernel's file systems: never a place for results
WORKING_SET = 8  # a run holds several copies of its inputs and weights: activations,
# gradients, compiled buffers; a bound that refuses absurd sizes, not a promise about others
PROBE = 64  # sizes at which a model is built to extrapolate its memory from


class UsageError(Exception):
    """Bad arguments: printed as `diptych: error: ...`, exit status 2."""


def fail(message: str) -> int:
    """The one way a command fails on bad input: one line on stderr, exit status 2."""
    print(f"diptych: error: {message}", file=sys.stderr)
    return 2


def exits_2(command: Callable[[Any], int]) -> Callable[[Any], int]:
    """`command(args)`, with a UsageError, or running out of memory, as `fail`."""

    @functools.wraps(command)
    def run(args: Any) -> int:
        try:
            return command(args)
        except UsageError as exc:
            return fail(str(exc))
        except MemoryError as exc:
            said = str(exc).splitlines()[0] if str(exc) else "an allocation failed"
            return fail(f"out of memory ({said}). Fix: a smaller --batch or --size.")

    return run


# ---- numbers: argparse types (argparse prints `argument --batch: <message>`) ---------------


def at_least(least: int) -> Callable[[str], int]:
    """A whole number >= least."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value

    return whole


def positive_float(text: str) -> float:
    """A finite number > 0 (nan, inf, 0 and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def opt_level(text: str) -> int:
    """An optimize level that symbolic.passes has."""
    from symbolic.passes import PIPELINES

    level = at_least(0)(text)
    if level not in PIPELINES:
        raise argparse.ArgumentTypeError(
            f"no optimize level {level}. Levels: {', '.join(map(str, sorted(PIPELINES)))}."
        )
    return level


# ---- output paths ---------------------------------------------------------------------------


def _check_place(target: pathlib.Path, flag: str) -> None:
    """The folder that `target` goes into exists and takes files; creates nothing."""
    resolved = target.resolve()
    for special in KERNEL_FILES:
        if resolved.is_relative_to(special):
            raise UsageError(
                f"{flag} {target}: {special} holds the kernel's files, not "
                "results. Fix: a path elsewhere."
            )
    folder = target.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"{flag} {target}: {folder} is not a folder but a file. Fix: a path in a folder."
        )
    if not folder.is_dir():
        raise UsageError(
            f"{flag} {target}: no folder {folder}, and diptych creates none. "
            "Fix: create it first, or pick a path in an existing folder."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag} {target}: cannot write into {folder}. Fix: a folder you may write to."
        )


def check_output(path: str, suffixes: tuple[str, ...], flag: str) -> pathlib.Path:
    """`path` as a file that can be written, with a suffix the writer supports; an existing
    file is overwritten, an existing folder refused."""
    target = pathlib.Path(path)
    suffix = target.suffix.lower()
    if suffix not in suffixes:
        what = f"a {suffix} file" if suffix else f"{path!r} (no suffix)"
        raise UsageError(
            f"{flag} writes {', '.join(suffixes)} files, not {what}. Fix: give "
            f"the path one of those suffixes."
        )
    _check_place(target, flag)
    if target.is_dir():
        raise UsageError(f"{flag} {path}: that is a folder; a file is wanted. Fix: a file name.")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{flag} {path}: the file cannot be overwritten (read-only).")
    return target


def check_folder(path: str, flag: str) -> pathlib.Path:
    """`path` as a folder to write files into: it may be created, but not its parents."""
    target = pathlib.Path(path)
    _check_place(target, flag)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{flag} {path}: that is a file and not a folder. Fix: a folder name.")
    return target


def check_format(format: str | None, path: pathlib.Path, flag: str = "-o") -> str:
    """The picture format: --format if given (it must agree with the suffix), else the
    suffix's."""
    suffix = path.suffix.lower().lstrip(".")
    if format and format != suffix:
        raise UsageError(
            f"--format {format} does not match {flag} {path}. Fix: leave out "
            f"--format, or name the file {path.with_suffix('.' + format)}."
        )
    return suffix


def check_distinct(paths: Iterable[pathlib.Path | None]) -> None:
    """No two outputs write the same file."""
    seen: set[pathlib.Path] = set()
    for path in filter(None, paths):
        if path.resolve() in seen:
            raise UsageError(
                f"{path} is given twice: the second output would overwrite the "
                "same file. Fix: two names."
            )
        seen.add(path.resolve())


def check_module(module: str, flag: str, package: str) -> None:
    """`flag` needs `module`, which can be imported (it is not imported here)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UsageError(
            f"{flag} needs {package}, which is not installed. Fix: pip install "
            f"{package} (or leave out {flag})."
        )


# ---- sizes -----------------------------------------------------------------------------------


def available_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, under a cgroup's limit if lower."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            found += [int(limit) - int(f.read())] if limit.isdigit() else []
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _nbytes(arrays: Iterable[Any]) -> int:
    return sum(int(getattr(a, "nbytes", 0)) for a in arrays)


def _grown(nbytes: Callable[[int], int], size: int) -> float:
    """nbytes(size) measured where that is small, else extrapolated from PROBE and 2 * PROBE:
    the growth exponent rounded up bounds a polynomial with nonnegative terms from above."""
    if size <= 2 * PROBE:
        return nbytes(size)
    low, high = nbytes(PROBE), nbytes(2 * PROBE)
    degree = math.ceil(math.log2(high / low) - 1e-9) if low else 2
    return high * (size / (2 * PROBE)) ** max(degree, 0)


def estimated_bytes(model: Any, batch: int, size: int, batches: int = 1) -> float:
    """The inputs (`batches` of them) and weights of `model` at (batch, size), found without
    allocating anything big: inputs grow linearly with the batch."""
    row = _grown(lambda s: _nbytes(model.make_inputs(1, s, 0).values()), size)
    weights = _grown(lambda s: _nbytes(p.data for p in model.build(s, 0).parameters()), size)
    return batches * batch * row + weights


def _gb(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def _trying(model: Any, batch: int, size: int, work: Callable[[], Any]) -> Any:
    """work(), with an error of the model's own (a size it cannot take) as a UsageError."""
    try:
        return work()
    except Exception as exc:  # the model's code, run on sizes the user chose
        said = (str(exc).splitlines() or [""])[0].split(" Fix:")[0].rstrip(".")
        raise UsageError(
            f"{model.name} cannot run at batch {batch}, {model.size_means} {size} "
            f"({type(exc).__name__}: {said}). Fix: another --batch or --size "
            f"(its defaults: batch {model.batch}, {model.size_means} "
            f"{model.size})."
        ) from None


def check_memory(model: Any, batch: int, size: int, batches: int = 1) -> None:
    """Refuse sizes whose inputs and weights alone would not fit in memory several times."""
    need = _trying(model, batch, size, lambda: estimated_bytes(model, batch, size, batches))
    have = available_bytes()
    if have is not None and WORKING_SET * need > have:
        raise UsageError(
            f"{model.name} at batch {batch}, {model.size_means} {size} needs "
            f"about {_gb(need)} for its inputs and weights alone, and a run "
            f"several times that: more than the {_gb(have)} of memory "
            "available. Fix: a smaller --batch or --size."
        )


def check_runs(model: Any, batch: int, size: int, seed: int = 0) -> None:
    """Build the model, make a batch of inputs and run one eager forward pass on a batch of
    one: a size the model cannot take fails here, as a UsageError."""
    import eager as E

    def attempt() -> None:
        module = model.build(size, seed)
        model.make_inputs(batch, size, seed)
        one = model.make_inputs(1, size, seed)
        model.loss_and_outputs(module, [E.tensor(v) for v in one.values()], eager=True)

    _trying(model, batch, size, attempt)


def check_sizes(
    model: Any,
    batch: int | None,
    size: int | None,
    seed: int = 0,
    batches: int = 1,
    defaults: tuple[int, int] | None = None,
) -> None:
    """The memory that `batches` batches need, and a --batch or --size the user gave (the
    defaults are known to run), checked before any work. `defaults`: (batch, size) when not
    the model's own."""
    default_batch, default_size = defaults or (model.batch, model.size)
    check_memory(model, batch or default_batch, size or default_size, batches)
    if batch is not None or size is not None:
        check_runs(model, batch or default_batch, size or default_size, seed)


def add_opt_levels(parser: Any, help: str) -> None:
    """`--opt 0 1 2`: the optimize levels a command runs (`compare`, `check`)."""
    parser.add_argument(
        "--opt", type=opt_level, nargs="+", default=[0, 1, 2], metavar="LEVEL", help=help
    )
