"""How much does define-by-run cost? diptych eager next to raw numpy and torch eager.

An eager engine pays a fixed price on every op: Python dispatch, wrapping the result in a
tensor and, when a gradient is wanted, recording a tape entry. On tiny arrays that price is
all there is; on a small network it decides whether eager training is usable at all. This
benchmark puts the price in numbers, side by side in one run, so a change to the eager path
(`eager.tensor.Tensor._apply`, `eager.autograd.propagate`, `common.dispatch.apply`) can be
judged against the floor (hand-written numpy) and the reference (torch eager):

1. per-op time on a 16-element float32 array (the overhead, with almost no arithmetic);
2. one SGD training step of a 64-128-64-10 ReLU MLP on a digits batch of 64.

Timing (benchmarks/harness.py): each contender is warmed up and calibrated to a loop of about
`target` length; the contenders are then interleaved across repeats (so drift hits all alike)
with the garbage collector off, and the median and interquartile range of the per-call time
are reported; under `diptych compare`'s thread policy (--threads, default 1), printed with
the results.

    .venv/bin/python benchmarks/eager_overhead.py [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from harness import (
    REPEATS,
    add_threads_argument,
    iqr,
    print_machine,
    print_noise_note,
    print_table,
    print_thread_pools,
    race,
    ratio,
    thread_limit,
    us,
)

import eager as E
from common import functional as F
from compare.contenders import (
    BATCH,
    LOSS_TOLERANCE,
    LR,
    SIZES,
    first_losses,
    make_diptych_step,
    make_numpy_step,
    make_torch_step,
    training_setup,
)

try:
    import torch
except ImportError:  # the benchmark still runs without torch, minus its columns
    torch = None

OP_TARGET_NS = 4_000_000  # each per-op sample loops for about 4 ms
STEP_TARGET_NS = 20_000_000  # each training-step sample loops for about 20 ms


# ---- 1. per-op overhead ------------------------------------------------------------------

# Each op is written once against a module `m` (numpy, diptych's F, or torch).
OPS: dict[str, Callable[[Any, Any, Any], Any]] = {
    "a + b": lambda m, a, b: a + b,
    "tanh(a)": lambda m, a, b: m.tanh(a),
    "a * 2.0": lambda m, a, b: a * 2.0,
}


def op_contenders(a: np.ndarray, b: np.ndarray) -> dict[str, tuple[Any, Any, Any]]:
    """Contender name -> (module, a, b) in that contender's own types."""
    table = {
        "numpy": (np, a, b),
        "diptych eager": (F, E.tensor(a), E.tensor(b)),
        "diptych eager, grad": (F, E.tensor(a, requires_grad=True), E.tensor(b)),
    }
    if torch is not None:
        table["torch eager"] = (torch, torch.from_numpy(a.copy()), torch.from_numpy(b.copy()))
        table["torch eager, grad"] = (
            torch,
            torch.from_numpy(a.copy()).requires_grad_(),
            torch.from_numpy(b.copy()),
        )
    return table


def bench_ops() -> None:
    print(f"1. per-op time on a 16-element float32 array (median of {REPEATS} interleaved repeats)")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(16).astype(np.float32) for _ in range(2))
    contenders = op_contenders(a, b)
    rows, all_stats = [], []
    floor = race({"": partial(lambda m, a, b: None, np, a, b)}, OP_TARGET_NS)[""]
    rows.append(["(empty call: loop + partial)", "harness", us(floor.median), iqr(floor), "-"])
    for op_name, op in OPS.items():
        stats = race({name: partial(op, *args) for name, args in contenders.items()}, OP_TARGET_NS)
        all_stats.extend(stats.values())
        for name, s in stats.items():
            rows.append([op_name, name, us(s.median), iqr(s), ratio(s, stats["numpy"])])
    print_table(["op", "contender", "us/op", "IQR (us)", "vs numpy"], rows)
    print_noise_note(all_stats)
    if torch is None:
        print("  (torch is not importable: its rows are left out)")
    print("  every row includes the harness's empty-call time shown first")
    print()


# ---- 2. one training step ----------------------------------------------------------------


STEP_FACTORIES: dict[str, Callable] = {
    "numpy, by hand": make_numpy_step,
    "diptych eager": make_diptych_step,
}
if torch is not None:
    STEP_FACTORIES["torch eager"] = make_torch_step


def check_losses(
    weights: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    factories: dict[str, Callable] = STEP_FACTORIES,
) -> None:
    """From the same start, the losses of steps 1 and 2 (so after one update) must agree."""
    losses = first_losses({name: make(weights, x, y) for name, make in factories.items()})
    ref = losses["numpy, by hand"]
    worst = max(abs(a - b) for ls in losses.values() for a, b in zip(ls, ref))
    width = max(map(len, losses)) + 1
    for name, (first, second) in losses.items():
        print(f"  {name:{width}s} loss at step 1 = {first:.6f}, at step 2 = {second:.6f}")
    verdict = "OK" if worst <= LOSS_TOLERANCE else "MISMATCH (check the contenders!)"
    print(f"  largest difference from numpy: {worst:.2e} (tolerance {LOSS_TOLERANCE:g}): {verdict}")


COMPARE_NOTE = (
    "  the 'as diptych compare' rows: `diptych compare mlp_digits`'s own steps "
    "(forward and gradients,\n  no update; its weights and batch), from its "
    "harness: they should match its table"
)


def compare_steps(opts: tuple[int, ...] = ()) -> dict[str, Callable]:
    """The steps `diptych compare mlp_digits` times (the same MLP and batch size), built by its
    own harness: eager, and compiled at each of `opts`."""
    from compare import zoo
    from compare.harness import Case, Settings

    case = Case(zoo.get("mlp_digits"), Settings())
    assert (case.batch, case.size) == (BATCH, SIZES[1])  # the same network as this script's
    steps = {"eager, as diptych compare": case.eager().step}
    steps.update({f"O{o}, as diptych compare": case.symbolic(o).step for o in opts})
    return steps


def bench_training_step() -> None:
    print(
        f"2. one training step: MLP {'-'.join(map(str, SIZES))} (ReLU), batch {BATCH}, "
        f"softmax cross-entropy, SGD lr={LR}"
    )
    x, y, weights = training_setup()
    check_losses(weights, x, y)
    steps = {name: make(weights, x, y) for name, make in STEP_FACTORIES.items()}
    stats = race({**steps, **compare_steps()}, STEP_TARGET_NS)
    ref_np, ref_torch = stats["numpy, by hand"], stats.get("torch eager")
    rows = [
        [name, us(s.median), iqr(s), ratio(s, ref_np), ratio(s, ref_torch)]
        for name, s in stats.items()
    ]
    print()
    print_table(["contender", "us/step", "IQR (us)", "vs numpy", "vs torch"], rows)
    print(COMPARE_NOTE)
    print_noise_note(list(stats.values()))
    if torch is None:
        print("  (torch is not importable: no torch row or ratio)")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with thread_limit(args.threads) as policy:
        print_machine(torch, policy)
        bench_ops()
        bench_training_step()
        print_thread_pools()
    print()
    print(f"total time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
