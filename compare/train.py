"""`diptych train`: one zoo model trained twice from the same initialization and the same
batches: eagerly (loss.backward(), optimizer.step()) and as one compiled step (S.grad and the
optimizer's own update rule inside the graph, writing the parameters through `updates=`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

import eager as E
import symbolic as S
from common import optim
from compare.zoo import Model

DIVERGED = 10.0  # a last loss this many times the first: the learning rate is too large


@dataclass
class TrainResult:
    model: str
    steps: int
    lr: float
    eager_losses: list[float]
    symbolic_losses: list[float]
    eager_step_s: float  # median time per step, the first step left out
    symbolic_step_s: float
    compile_s: float
    weights_max_rel: float  # the trained weights, symbolic against eager

    @property
    def curves_max_rel(self) -> float:
        e, s = np.asarray(self.eager_losses), np.asarray(self.symbolic_losses)
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged run: inf - inf
            return float(np.max(np.abs(e - s) / np.maximum(np.abs(e), 1e-30)))

    @property
    def diverged(self) -> str | None:
        """How the training diverged, if it did: a loss that is not finite, or one that ends
        more than DIVERGED times above where it started."""
        for losses in (self.eager_losses, self.symbolic_losses):
            bad = next((i for i, x in enumerate(losses) if not np.isfinite(x)), None)
            if bad is not None:
                return f"the loss is {losses[bad]} at step {bad}"
            if abs(losses[-1]) > DIVERGED * abs(losses[0]):
                return f"the loss went from {losses[0]:.4g} to {losses[-1]:.4g}"
        return None


def _timed_loop(step: Callable[[dict], float], batches: list[dict]) -> tuple[list, float]:
    losses, times = [], []
    for inputs in batches:
        start = time.perf_counter()
        losses.append(step(inputs))
        times.append(time.perf_counter() - start)
    return losses, statistics.median(times[1:] or times)


def eager_trainer(model: Model, module, lr: float) -> Callable[[dict], float]:
    opt = optim.SGD(list(module.parameters()), lr=lr, momentum=model.momentum)

    def step(inputs: dict) -> float:
        loss = model.loss_and_outputs(module, [E.tensor(v) for v in inputs.values()], eager=True)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def compiled_trainer(
    model: Model, module, lr: float, example: dict, optimize: int
) -> Callable[[dict], float]:
    """The whole step as one graph: the loss, S.grad, and SGD's rule with its momentum held
    in variables."""
    feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in example.items()]
    loss = model.loss_and_outputs(module, feeds)[0]
    params = list(module.parameters())
    opt = optim.SGD(params, lr=lr, momentum=model.momentum)
    updates = S.optimizer_updates(opt, S.grad(loss, params))
    compiled = S.compile(loss, inputs=feeds, updates=updates, optimize=optimize)
    return lambda inputs: float(compiled(*inputs.values()))


def global_batches(model: Model, steps: int, batch: int, size: int, seed: int) -> list[dict]:
    """The batches a training run sees, one per step (the same one again unless the model
    draws fresh batches): every way of training the model is fed these."""
    return [
        model.make_inputs(batch, size, seed + i if model.fresh_batches else seed)
        for i in range(steps)
    ]


def train(
    model: Model,
    steps: int,
    batch: int | None = None,
    size: int | None = None,
    lr: float | None = None,
    optimize: int = 2,
    seed: int = 0,
) -> TrainResult:
    batch, size, lr = batch or model.batch, size or model.size, lr or model.lr
    eager_module, symbolic_module = model.build(size, seed), model.build(size, seed)
    if not list(eager_module.parameters()):
        raise ValueError(
            f"{model.name} has no parameters, so there is nothing to train. "
            "Fix: pick a model with weights (`diptych models`)."
        )
    batches = global_batches(model, steps, batch, size, seed)
    with np.errstate(over="ignore", invalid="ignore"):  # diverging: `diverged` says so once
        eager_losses, eager_s = _timed_loop(eager_trainer(model, eager_module, lr), batches)
        start = time.perf_counter()
        step = compiled_trainer(model, symbolic_module, lr, batches[0], optimize)
        compile_s = time.perf_counter() - start
        symbolic_losses, symbolic_s = _timed_loop(step, batches)
        rel = weights_max_rel(symbolic_module.parameters(), eager_module.parameters())
    return TrainResult(
        model.name, steps, lr, eager_losses, symbolic_losses, eager_s, symbolic_s, compile_s, rel
    )


def weights_max_rel(symbolic: Iterable, eager: Iterable) -> float:
    """The largest difference between two models' parameters, relative to the second's."""
    return max(
        (
            float(np.max(np.abs(p.numpy() - q.numpy())) / max(np.max(np.abs(q.numpy())), 1e-30))
            for p, q in zip(symbolic, eager)
        ),
        default=0.0,
    )


def print_training(result: TrainResult) -> None:
    n = result.steps
    print(
        f"{result.model}: {n} SGD steps (lr {result.lr:g}) eagerly and as one compiled "
        "step, from the same initialization and the same batches\n"
    )
    print(f"{'step':>6} {'eager loss':>16} {'symbolic loss':>16}")
    for i in sorted({0, 1, 10, 50, 100, n // 2, n - 1} & set(range(n))):
        print(f"{i:>6} {result.eager_losses[i]:>16.6g} {result.symbolic_losses[i]:>16.6g}")
    print(f"\nlargest relative difference between the two loss curves: {result.curves_max_rel:.2e}")
    print(f"largest relative difference between the trained weights: {result.weights_max_rel:.2e}")
    ratio = result.eager_step_s / result.symbolic_step_s
    print(
        f"time per step (median): eager {1e6 * result.eager_step_s:.0f} us, compiled "
        f"{1e6 * result.symbolic_step_s:.0f} us ({ratio:.2f}x); compiling the step took "
        f"{1e3 * result.compile_s:.0f} ms"
    )
