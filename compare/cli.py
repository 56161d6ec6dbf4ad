"""The `diptych` command: the same model trained eagerly and as one compiled graph, side by side.

Until the model zoo lands it runs PyTorch's classic two-layer network both ways from the same
initialization and prints both loss curves' agreement and the time per step.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

import eager as E
import symbolic as S

HELP = """diptych: eager (define-by-run) and deferred (define-then-run) execution, side by side.

Trains PyTorch's classic two-layer network (N=64, D_in=1000, H=100, D_out=10) twice from the
same initialization: eagerly, op by op, and as one compiled graph (forward, S.grad and the
SGD update in a single plan). Prints the losses of both and the time per step.
"""

N, D_IN, H, D_OUT = 64, 1000, 100, 10


def initial_values(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in
            [("x", (N, D_IN)), ("y", (N, D_OUT)), ("w1", (D_IN, H)), ("w2", (H, D_OUT))]}


def eager_two_layer_net(init: dict, lr: float) -> Callable[[], float]:
    """The define-by-run step, written exactly as PyTorch's example."""
    x, y = E.tensor(init["x"]), E.tensor(init["y"])
    w1 = E.tensor(init["w1"], requires_grad=True)
    w2 = E.tensor(init["w2"], requires_grad=True)

    def step() -> float:
        nonlocal w1, w2  # `w1 -= ...` updates the tensor in place and rebinds the same object
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with E.no_grad():
            w1 -= lr * w1.grad
            w2 -= lr * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
        return loss.item()

    return step


def symbolic_two_layer_net(init: dict, lr: float, optimize: int) -> Callable[[], float]:
    """The define-then-run step: the same lines on symbols, compiled once with the update."""
    x, y = S.placeholder((N, D_IN), name="x"), S.placeholder((N, D_OUT), name="y")
    w1, w2 = S.variable(init["w1"], name="w1"), S.variable(init["w2"], name="w2")
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    g1, g2 = S.grad(loss, [w1, w2])
    compiled = S.compile(loss, inputs=[x, y], updates={w1: w1 - lr * g1, w2: w2 - lr * g2},
                         optimize=optimize)
    return lambda: float(compiled(init["x"], init["y"]))


def run(step: Callable[[], float], steps: int) -> tuple[list[float], float]:
    losses = [step()]  # the first call compiles or warms up; timed separately from the rest
    start = time.perf_counter()
    losses += [step() for _ in range(steps - 1)]
    return losses, (time.perf_counter() - start) / max(steps - 1, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diptych", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--lr", type=float, default=1e-6, help="learning rate (default 1e-6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    print(HELP)
    init = initial_values(args.seed)
    eager_losses, eager_time = run(eager_two_layer_net(init, args.lr), args.steps)
    sym_losses, sym_time = run(symbolic_two_layer_net(init, args.lr, 0), args.steps)
    print(f"{'step':>6} {'eager loss':>16} {'symbolic loss':>16}")
    for i in sorted({0, 1, 10, 50, 100, args.steps - 1} & set(range(args.steps))):
        print(f"{i:>6} {eager_losses[i]:>16.6g} {sym_losses[i]:>16.6g}")
    rel = np.max(np.abs(np.subtract(eager_losses, sym_losses)) / np.abs(eager_losses))
    print(f"\nlargest relative difference between the two loss curves: {rel:.2e}")
    print(f"time per step: eager {1e6 * eager_time:.0f} us, compiled {1e6 * sym_time:.0f} us "
          f"({eager_time / sym_time:.2f}x)")
    return 0
