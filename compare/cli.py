"""The `diptych` command: the same model run eagerly and as a compiled graph, side by side.

    diptych                                   # compare a quick default set of models
    diptych compare mlp_digits --opt 0 2 --peers torch,jax --json out.json
    diptych train two_layer_net --steps 300 --plot curves.png
    diptych models;  diptych explain attention

Exit status: 0 when every row passes its correctness check, 1 when one fails, 2 for a usage
error (an unknown model, peer or optimize level, an unavailable device, a number out of range,
a size the model cannot take or memory cannot hold, an output path that cannot be written),
always as one line and before any work (compare/checks.py). `train` exits 0 when the training
diverged too: the point is that both engines trained alike; a warning line says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from dataclasses import replace
from typing import NoReturn

from compare import bench, check, checks, lessons, pictures, zoo
from compare import run as run_commands
from compare.checks import UsageError, add_opt_levels, at_least, opt_level, positive_float
from compare.timing import THREADS_HELP, thread_limit

COMMANDS = (
    "compare",
    "train",
    "models",
    "explain",
    "graph",
    "tape",
    "lesson",
    "check",
    "bench",
    "run",
    "export",
)
DESCRIPTION = """diptych: eager (define-by-run) and deferred (define-then-run) execution of the
same model, side by side: time, memory, and the differences in outputs and gradients.
Without a command it runs `compare` on a quick default set of models."""


class Parser(argparse.ArgumentParser):
    """argparse, its errors one line like every other usage error (no usage line first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"diptych: error: {message}\n")


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="time and check every mode of some models (default)",
        description="Run each model eagerly, compiled at each optimize level "
        "and on the peers; print one table.",
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"zoo models, or 'all' (default: {', '.join(zoo.QUICK)})",
    )
    p.add_argument("--device", default="cpu", help="cpu (numpy) or cuda (cupy)")
    p.add_argument("--batch", type=at_least(1), help="batch size (default: each model's own)")
    p.add_argument(
        "--sizes",
        type=at_least(1),
        nargs="+",
        metavar="N",
        help="the model's size knob (see `diptych models`); several values make a scaling sweep",
    )
    p.add_argument("--repeat", type=at_least(1), default=15, help="interleaved timing rounds (15)")
    p.add_argument("--warmup", type=at_least(0), default=2, help="untimed calls per mode first (2)")
    add_opt_levels(p, "optimize levels of the symbolic rows (default: 0 1 2)")
    p.add_argument("--peers", default="", help="comma list of peer frameworks: torch,jax")
    p.add_argument(
        "--ablate",
        action="store_true",
        help="add the top optimize level with each pass switched off in turn",
    )
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="measure where each step's time goes: kernels, allocation, overhead",
    )
    p.add_argument("--json", metavar="PATH", help="write the results (compare/schema.py)")
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="bar chart of step times (or the scaling plot for several --sizes); needs matplotlib",
    )
    p.add_argument("--html", metavar="PATH", help="write the tables as an HTML page")
    p.add_argument("--threads", type=at_least(0), default=1, help=THREADS_HELP)
    p.add_argument(
        "--target-ms",
        type=positive_float,
        default=10.0,
        help="each timing sample loops for about this long (10)",
    )
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def scheduler_address(text: str) -> str:
    """A Dask scheduler's address, PROTOCOL://HOST:PORT (checked as argparse reads it)."""
    if not re.fullmatch(r"[a-z]+://[^\s/:]+:\d+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an address like tcp://HOST:PORT")
    return text


def _add_others(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model eagerly and compiled from the same init")
    t.add_argument("model", metavar="MODEL")
    t.add_argument("--steps", type=at_least(2), default=100, help="training steps (100)")
    t.add_argument("--lr", type=positive_float, help="learning rate (default: the model's)")
    t.add_argument("--batch", type=at_least(1))
    t.add_argument("--size", type=at_least(1))
    t.add_argument("--opt", type=opt_level, default=2, help="optimize level of the compiled step")
    t.add_argument("--plot", metavar="PATH", help="both loss curves in one figure (png, svg, pdf)")
    t.add_argument("--threads", type=at_least(0), default=1, help="as for compare")
    t.add_argument("--seed", type=at_least(0), default=0)
    t.add_argument(
        "--workers",
        type=at_least(1),
        metavar="N",
        help="data-parallel on Dask: N shards a step, on a LocalCluster of N worker processes "
        "(or on --scheduler's workers); compiled and eager replicas beside one process",
    )
    t.add_argument(
        "--scheduler",
        type=scheduler_address,
        metavar="ADDRESS",
        help="join the Dask cluster at tcp://HOST:PORT instead of starting one",
    )
    sub.add_parser("models", help="the zoo, one line each")
    e = sub.add_parser("explain", help="the compile report, pass by pass, and the source")
    e.add_argument("model", metavar="MODEL")
    e.add_argument("--opt", type=opt_level, default=2)
    e.add_argument("--batch", type=at_least(1))
    e.add_argument("--size", type=at_least(1))
    e.add_argument("--graph", action="store_true", help="also print the optimized graph")


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="diptych",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    _add_compare(sub)
    _add_others(sub)
    pictures.register(sub)  # `graph` and `tape` (they set `args.run`)
    lessons.add_parser(sub)
    bench.add_parser(sub)
    check.add_parser(sub)
    run_commands.add_parsers(sub)  # `run` and `export` (they set `args.run`)
    return p


# ---- checks ------------------------------------------------------------------------------


def models_named(names: list[str]) -> list[zoo.Model]:
    if not names:
        return [zoo.get(n) for n in zoo.QUICK]
    if names == ["all"]:
        return list(zoo.MODELS.values())
    try:
        return [zoo.get(n) for n in names]
    except zoo.UnknownModelError as exc:
        raise UsageError(str(exc)) from None


def check_device(device: str) -> None:
    from common.backend import DeviceError, get_backend

    try:
        get_backend(device)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None


def peers_named(text: str) -> tuple[str, ...]:
    from compare.peers import PEERS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in PEERS]
    if bad:
        raise UsageError(f"unknown peer {bad[0]!r}. Peers: {', '.join(PEERS)}.")
    return names


def check_results_paths(args: argparse.Namespace) -> None:
    """--json, --html and --plot, checked before the run rather than failing after it."""
    if args.json:
        checks.check_output(args.json, (".json",), "--json")
    if args.html:
        checks.check_output(args.html, (".html", ".htm"), "--html")
    if args.plot:
        checks.check_output(args.plot, checks.FIGURES, "--plot")
        checks.check_module("matplotlib", "--plot", "matplotlib")


# ---- commands ----------------------------------------------------------------------------


def run_compare(args: argparse.Namespace) -> int:
    from compare import report
    from compare.harness import Settings, run_model
    from compare.progress import Progress
    from compare.schema import validate
    from compare.timing import machine

    models = models_named(args.models)
    check_device(args.device)
    peers = peers_named(args.peers)
    check_results_paths(args)
    jobs = [(m, s) for m in dict.fromkeys(models) for s in dict.fromkeys(args.sizes or [None])]
    for model, size in jobs:  # memory for all first: nothing big is allocated to find out
        checks.check_memory(model, args.batch or model.batch, size or model.size)
    for model, size in jobs if args.batch or args.sizes else ():
        checks.check_runs(model, args.batch or model.batch, size or model.size, args.seed)
    base = Settings(
        device=args.device,
        batch=args.batch,
        repeat=args.repeat,
        warmup=args.warmup,
        opts=tuple(dict.fromkeys(args.opt)),
        peers=peers,
        ablate=args.ablate,
        breakdown=args.breakdown,
        seed=args.seed,
        target_ms=args.target_ms,
    )
    results: list = []
    notes = (
        []
        if args.device == "cpu"
        else [
            f"peak mem: tracemalloc sees host allocations only, so it is left out on {args.device}"
        ]
    )
    start = time.perf_counter()
    with (
        thread_limit(args.threads, peers) as threads,
        Progress(len(jobs) * (args.repeat + 1), args.quiet) as progress,
    ):
        info = {**machine(args.device), "threads": threads}
        for name in peers:
            from compare.peers import version_line

            info["libraries"].setdefault(name, version_line(name))
        for i, (model, size) in enumerate(jobs, 1):
            results.append(
                run_model(
                    model,
                    replace(base, size=size),
                    tick=progress.tick,
                    stage=lambda text, i=i: progress.stage(f"[{i}/{len(jobs)}] {text}"),
                )
            )
            progress.tick()
    report.print_report(results, info, notes)
    print(f"\n{len(jobs)} model run(s) in {time.perf_counter() - start:.1f} s")
    document = report.to_json(results, info, base, args.sizes, notes)
    validate(document)
    write_outputs(args, results, info, notes, document)
    return 0 if document["ok"] else 1


def write_outputs(
    args: argparse.Namespace, results: list, info: dict, notes: list[str], document: dict
) -> None:
    """--json, --plot and --html (the chart goes into the page too)."""
    from compare import report

    if args.json:
        report.write_json(document, args.json)
        print(f"wrote {args.json}")
    chart = None
    if args.plot or args.html:
        from compare import plots

        try:
            figure = plots.for_results(results)
            if args.plot:
                plots.save(figure, args.plot)
                print(f"wrote {args.plot}")
            chart = plots.png_bytes(figure)
        except plots.PlotError as exc:  # --html without matplotlib: a page without the chart
            print(f"note: {exc}", file=sys.stderr)
    if args.html:
        report.write_html(results, info, notes, args.html, chart)
        print(f"wrote {args.html}")


def run_train(args: argparse.Namespace) -> int:
    from compare.train import print_training, train

    model = models_named([args.model])[0]
    if args.workers or args.scheduler:
        return run_train_data_parallel(args, model)
    if args.plot:
        checks.check_output(args.plot, checks.FIGURES, "--plot")
        checks.check_module("matplotlib", "--plot", "matplotlib")
    checks.check_sizes(model, args.batch, args.size, args.seed, batches=args.steps)
    with thread_limit(args.threads):
        try:
            result = train(model, args.steps, args.batch, args.size, args.lr, args.opt, args.seed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print_training(result)
    if result.diverged:
        print(
            f"diptych: warning: the training diverged ({result.diverged}) at learning rate "
            f"{result.lr:g}. Fix: a smaller --lr (the model's own: {model.lr:g}).",
            file=sys.stderr,
        )
    if args.plot:
        from compare import plots

        plots.save(
            plots.loss_curves(model.name, result.eager_losses, result.symbolic_losses), args.plot
        )
        print(f"wrote {args.plot}")
    return 0


def run_train_data_parallel(args: argparse.Namespace, model: zoo.Model) -> int:
    """`train --workers N` / `--scheduler ADDRESS`: compare/distributed.py."""
    flag = "--scheduler" if args.scheduler else "--workers"
    checks.check_module("distributed", flag, "'dask[distributed]'")
    if args.plot:
        raise UsageError(f"--plot draws one process's training. Fix: leave out --plot or {flag}.")
    checks.check_sizes(model, args.batch, args.size, args.seed, batches=args.steps)
    from compare.distributed import (
        StepFailed,
        open_cluster,
        print_data_parallel,
        train_data_parallel,
    )

    where = args.scheduler or "a LocalCluster on 127.0.0.1"
    with thread_limit(args.threads), contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(open_cluster(args.workers, args.scheduler))
        except OSError as exc:  # includes the timeout of a scheduler that does not answer
            raise UsageError(
                f"could not start or reach {where}: {exc}. Fix: start a scheduler (`dask "
                "scheduler`) and pass its address, or leave out --scheduler."
            ) from None
        try:
            result = train_data_parallel(
                client,
                model,
                args.steps,
                args.batch,
                args.size,
                args.lr,
                args.opt,
                args.seed,
                shards=args.workers,
            )
        except ValueError as exc:  # a model whose batch cannot be cut: the message says why
            raise UsageError(str(exc)) from None
        except StepFailed as exc:
            print(f"diptych: error: {exc}", file=sys.stderr)
            return 1
    print_data_parallel(result)
    return 0


def run_models(args: argparse.Namespace) -> int:
    width = max(len(n) for n in zoo.MODELS)
    for m in zoo.MODELS.values():
        peer = "; peers: torch, jax" if m.peer else ""
        print(f"{m.name:<{width}}  {m.description}")
        print(f"{'':<{width}}  (batch {m.batch}, {m.size_means} {m.size}{peer})")
    print(f"\nquick default set (plain `diptych`): {', '.join(zoo.QUICK)}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from compare.harness import Case, Settings

    model = models_named([args.model])[0]
    checks.check_sizes(model, args.batch, args.size)
    case = Case(model, Settings(batch=args.batch, size=args.size))
    fn = case.compile(args.opt)
    print(f"{model.name}: {model.description}")
    print(
        f"compiled at optimize={args.opt}: the loss, the outputs and the gradients of "
        f"{len(case.params)} parameters{' and ' + ', '.join(model.wrt) if model.wrt else ''}"
        f" (batch {case.batch}, {model.size_means} {case.size})\n"
    )
    print(fn.report)
    if args.graph:
        print(f"\nthe graph after the passes:\n{fn.graph}")
    print(f"\nthe generated plan ({fn.report.lines_of_code} lines):\n{fn.source}")
    return 0


RUNNERS = {
    "compare": run_compare,
    "train": run_train,
    "models": run_models,
    "explain": run_explain,
    "lesson": lessons.run_lesson_command,
    "bench": bench.run_bench_command,
    "check": check.run_check_command,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["compare", *argv]  # `diptych`, `diptych mlp_digits`, `diptych --repeat 5`
    try:
        args = parser().parse_args(argv)  # numbers are checked here (checks' argparse types)
    except SystemExit as exc:  # --help, or a usage error already printed (status 2)
        return int(exc.code or 0)
    try:
        return checks.exits_2(getattr(args, "run", None) or RUNNERS[args.command])(args)
    except BrokenPipeError:  # `diptych models | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
