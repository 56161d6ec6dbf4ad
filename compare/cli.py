"""The `diptych` command. Until the symbolic engine lands, it trains PyTorch's classic
two-layer network eagerly (define-by-run) and prints the loss as it falls."""

from __future__ import annotations

import argparse
import time

import numpy as np

import eager as E

HELP = """diptych: eager (define-by-run) and deferred (define-then-run) execution, side by side.

Available now: the eager engine (import eager as E) and the shared kernels
(from common import functional as F, nn, optim, data).
"""


def two_layer_net(steps: int = 500, lr: float = 1e-6, seed: int = 0) -> list[float]:
    """PyTorch's classic example, written exactly as there: N=64, D_in=1000, H=100, D_out=10."""
    E.manual_seed(seed)
    n, d_in, h, d_out = 64, 1000, 100, 10
    x, y = E.randn(n, d_in), E.randn(n, d_out)
    w1 = E.randn(d_in, h, requires_grad=True)
    w2 = E.randn(h, d_out, requires_grad=True)
    losses = []
    for _ in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with E.no_grad():
            w1 -= lr * w1.grad
            w2 -= lr * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diptych", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    args = parser.parse_args(argv)
    print(HELP)
    start = time.perf_counter()
    losses = two_layer_net(args.steps)
    elapsed = time.perf_counter() - start
    print("two_layer_net, eager: loss by step")
    for step in sorted({0, 1, 10, 50, 100, 250, args.steps - 1} & set(range(args.steps))):
        print(f"  step {step:4d}  loss {losses[step]:14.4f}")
    print(f"{args.steps} steps in {elapsed:.2f} s ({1e6 * elapsed / args.steps:.0f} us/step); "
          f"loss fell {losses[0] / max(losses[-1], np.finfo(float).tiny):.3g}x")
    return 0
