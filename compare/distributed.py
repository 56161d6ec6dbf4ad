"""Data-parallel training on Dask: each step's global batch is cut into shards, each worker
computes the loss and gradients of its shard, and the driver combines the gradients and
applies the optimizer once, so the weights follow single-process training on the same batches.

    with open_cluster(workers=2) as client:          # a LocalCluster, or scheduler="tcp://..."
        trainer = DataParallel(client, zoo.get("mlp_digits"), module, lr=0.1)
        for batch in batches:
            trainer.step(batch)                      # -> the loss; trainer.times: per step

Two kinds of replica, the issue's contrast: a compiled replica receives the gradient step as
a saved graph (`f.save`'s bytes, loaded with `S.load`): no model code travels, and the worker
never imports the model's module. An eager replica builds the model from the zoo by name, so
the model's Python must be on every worker, and runs eager forward and backward.

A worker that dies in the middle of a step loses nothing: Dask runs its shard again on the
workers that remain, and the weights change only once every shard has returned; a step that
cannot finish raises `StepFailed` and leaves the weights of the last completed step.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import symbolic as S
from common import optim
from common.processes import main_hidden
from symbolic.tracing import name_parameters

if TYPE_CHECKING:  # the model's module is imported where it is built, never by a worker
    from compare.zoo import Model

STEP_TIMEOUT_S = 120.0  # a step still waiting this long has lost its workers for good


class StepFailed(RuntimeError):
    """A training step that could not finish: says why; no weight was changed."""


@contextlib.contextmanager
def open_cluster(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A `distributed.Client`: joined to the scheduler at `scheduler` ("tcp://host:port"), or
    to a `LocalCluster` of `workers` processes, one thread each, on this machine's loopback.
    Workers start as fresh interpreters (multiprocessing's spawn), which would run the calling
    script again to find `__main__`; they need nothing from it, so it is hidden from them."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="10s") as client:
            yield client
        return
    with main_hidden(), contextlib.ExitStack() as stack:
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=workers or 1,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            )
        )
        yield stack.enter_context(Client(cluster))


# ---- on the workers -----------------------------------------------------------------------

_kept: dict = {}  # what one worker process keeps between steps: loaded steps, eager replicas


def run_saved_step(digest: str, blob: bytes, weights: dict, arrays: list) -> tuple:
    """A compiled replica's shard: the saved gradient step (loaded once per worker), the
    driver's weights written into its variables, run on the shard. Returns the loss, the
    gradients and the seconds the step itself took."""
    step = _kept.get(digest)
    if step is None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "step.dip"
            path.write_bytes(blob)
            step = _kept[digest] = S.load(path)
    for variable in step.graph.variables:
        np.copyto(variable.value.data, weights[variable.name])
    start = time.perf_counter()
    loss, *grads = step(*arrays)
    seconds = time.perf_counter() - start
    return float(loss), [np.array(g) for g in grads], seconds  # copies: plans reuse buffers


def run_eager_step(model_name: str, size: int, weights: dict, arrays: list) -> tuple:
    """An eager replica's shard: the zoo's model, built once per worker from its Python, the
    driver's weights copied in, eager forward and backward on the shard."""
    import eager as E
    from compare import zoo

    model = zoo.get(model_name)
    module = _kept.get((model_name, size))
    if module is None:
        module = _kept[model_name, size] = model.build(size, 0)
    for name, param in module.named_parameters():
        np.copyto(param.data, weights[name])
        param.grad = None
    start = time.perf_counter()
    loss = model.loss_and_outputs(module, [E.tensor(a) for a in arrays], eager=True)[0]
    loss.backward()
    seconds = time.perf_counter() - start
    return float(loss.item()), [np.array(p.grad.data) for p in module.parameters()], seconds


# ---- on the driver ------------------------------------------------------------------------


def grad_step_file(model: Model, module: Any, shard: dict, optimize: int = 2) -> bytes:
    """The gradient step of `model` for shards shaped like `shard`, as `f.save` writes it:
    the loss and the gradients of every parameter as outputs, no updates. Its variables are
    named by the parameters' paths ('layers.0.weight'), which the weights sent are keyed by."""
    name_parameters(module)
    feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in shard.items()]
    loss = model.loss_and_outputs(module, feeds)[0]
    params = list(module.parameters())
    step = S.compile([loss, *S.grad(loss, params)], inputs=feeds, optimize=optimize)
    with tempfile.TemporaryDirectory() as folder:
        return step.save(Path(folder) / "step.dip").read_bytes()


class CompiledReplicas:
    """Workers that run the saved gradient step: one file per shard shape, scattered once to
    every worker; each step sends only the weights and the shard."""

    kind = "compiled"

    def __init__(self, client: Any, model: Model, module: Any, optimize: int = 2) -> None:
        self.client, self.model, self.module, self.optimize = client, model, module, optimize
        self.files: dict[tuple, tuple[str, Any]] = {}  # shard shapes -> (digest, scattered)
        self.file_bytes = 0

    def task(self, shard: dict, weights: dict) -> tuple:
        shapes = tuple((k, v.shape, v.dtype.str) for k, v in shard.items())
        if shapes not in self.files:
            blob = grad_step_file(self.model, self.module, shard, self.optimize)
            self.file_bytes = len(blob)
            digest = hashlib.sha256(blob).hexdigest()
            self.files[shapes] = digest, self.client.scatter(blob, broadcast=True)
        return run_saved_step, (*self.files[shapes], weights, list(shard.values()))


class EagerReplicas:
    """Workers that build the model from the zoo by name and run it eagerly."""

    kind = "eager"

    def __init__(self, model: Model, size: int) -> None:
        self.model, self.size = model, size

    def task(self, shard: dict, weights: dict) -> tuple:
        return run_eager_step, (self.model.name, self.size, weights, list(shard.values()))


@dataclass
class StepTime:
    wall_s: float  # the driver's whole step: cut, send, wait, combine, update
    compute_s: float  # the slowest shard's gradient step, timed on its worker
    PARTS = ("wall_s", "compute_s", "orchestration_s")

    @property
    def orchestration_s(self) -> float:
        """Everything but the workers' compute: Python on the driver, Dask's scheduling,
        pickling, the loopback network, combining the gradients, the update."""
        return max(self.wall_s - self.compute_s, 0.0)


@dataclass
class Pending:
    """A step whose shards are on their way: `DataParallel.finish` collects it."""

    futures: list
    rows: list[int]
    started: float


@dataclass
class DataParallel:
    """Training on a Dask cluster, `shards` shards a step (default: one per worker)."""

    client: Any
    model: Model
    module: Any  # the driver's model: its parameters are the weights being trained
    lr: float
    replicas: Any = None  # CompiledReplicas (default) or EagerReplicas
    shards: int | None = None
    losses: list[float] = field(default_factory=list)
    times: list[StepTime] = field(default_factory=list)
    reduction: str | None = None  # "mean" or "sum": how shard losses add up (first step)

    def __post_init__(self) -> None:
        self.params = list(self.module.parameters())
        self.names = [name for name, _ in self.module.named_parameters()]
        self.optimizer = optim.SGD(self.params, lr=self.lr, momentum=self.model.momentum)
        self.replicas = self.replicas or CompiledReplicas(self.client, self.model, self.module)
        self.shards = self.shards or len(self.client.scheduler_info()["workers"])

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return {name: p.data.copy() for name, p in zip(self.names, self.params)}

    def median(self, part: str) -> float:
        """Median seconds per step of `part` ("wall_s", "compute_s", "orchestration_s"), the
        first step (compiling, the workers' imports and loading) left out."""
        return float(np.median([getattr(t, part) for t in self.times[1:] or self.times]))

    def step(self, batch: dict) -> float:
        """One step on the global `batch`: the combined loss, after the update."""
        return self.finish(self.submit(batch))

    def submit(self, batch: dict) -> Pending:
        started = time.perf_counter()
        shards = split_batch(batch, self.shards)
        if self.reduction is None:
            self.reduction = loss_reduction(self.model, self.module, batch, shards)
        weights = self.weights
        workers = list(self.client.scheduler_info()["workers"])
        futures = []
        for i, shard in enumerate(shards):
            function, args = self.replicas.task(shard, weights)
            futures.append(
                self.client.submit(
                    function,
                    *args,
                    pure=False,
                    workers=[workers[i % len(workers)]] if workers else None,
                    allow_other_workers=True,  # a dead worker's shard runs elsewhere
                )
            )
        return Pending(futures, [len(next(iter(s.values()))) for s in shards], started)

    def finish(self, pending: Pending) -> float:
        """Wait for every shard, then combine and update: never before all have returned."""
        from distributed import wait

        try:
            wait(pending.futures, timeout=STEP_TIMEOUT_S)
            results = self.client.gather(pending.futures)
        except Exception as error:  # noqa: BLE001 (whatever went wrong, the step did not happen)
            self.client.cancel(pending.futures)
            raise StepFailed(
                f"step {len(self.losses) + 1} failed ({type(error).__name__}: {error}); no "
                f"weight was changed: they are those after step {len(self.losses)}."
            ) from error
        total = sum(pending.rows)
        scale = [r / total if self.reduction == "mean" else 1.0 for r in pending.rows]
        losses, grads, seconds = zip(*results)
        for i, param in enumerate(self.params):
            param.grad = sum(w * g[i] for w, g in zip(scale, grads))
        self.optimizer.step()
        self.losses.append(sum(w * loss for w, loss in zip(scale, losses)))
        self.times.append(StepTime(time.perf_counter() - pending.started, max(seconds)))
        return self.losses[-1]


def split_batch(batch: dict, shards: int) -> list[dict]:
    """`batch` cut along axis 0 into `shards` runs of rows, sizes differing by at most one."""
    sizes = {len(v) for v in batch.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"data-parallel training cuts every input along axis 0, but the inputs have "
            f"{sorted(sizes)} rows there: the batch is not axis 0 of each. Fix: a model "
            "whose inputs all lead with the batch."
        )
    rows = sizes.pop()
    cuts = [round(b) for b in np.linspace(0, rows, min(shards, rows) + 1)]
    return [{k: v[a:b] for k, v in batch.items()} for a, b in zip(cuts, cuts[1:])]


def loss_reduction(model: Model, module: Any, batch: dict, shards: list[dict]) -> str:
    """How the shards' losses (and so their gradients) add up to the batch's: "mean" (each
    weighted by its share of rows) or "sum". Checked once, eagerly, on this batch; a loss that
    is neither mixes rows, and splitting the batch would change it."""
    import eager as E

    def loss(inputs: dict) -> float:
        with E.no_grad():
            tensors = [E.tensor(v) for v in inputs.values()]
            return float(model.loss_and_outputs(module, tensors, eager=True)[0].item())

    whole, parts = loss(batch), [loss(s) for s in shards]
    rows = [len(next(iter(s.values()))) for s in shards]
    for reduction, scale in (("mean", [r / sum(rows) for r in rows]), ("sum", [1.0] * len(rows))):
        if math.isclose(whole, sum(w * p for w, p in zip(scale, parts)), rel_tol=1e-4):
            return reduction
    raise ValueError(
        f"{model.name}'s loss on the whole batch ({whole:.6g}) is neither the mean nor the sum "
        f"of its shards' ({parts}): it mixes rows, so data-parallel training would change it."
    )


# ---- `diptych train MODEL --workers N`: both kinds of replica beside one process ----------


@dataclass
class ReplicaRun:
    kind: str  # "compiled" or "eager"
    trainer: DataParallel
    weights_max_rel: float  # the trained weights against one process's


@dataclass
class DistributedResult:
    model: str
    steps: int
    batch: int
    shards: int
    scheduler: str
    one_process_losses: list[float]
    one_process_step_s: float
    runs: list[ReplicaRun]


def train_data_parallel(
    client: Any,
    model: Model,
    steps: int,
    batch: int | None = None,
    size: int | None = None,
    lr: float | None = None,
    optimize: int = 2,
    seed: int = 0,
    shards: int | None = None,
) -> DistributedResult:
    """`model` trained on the same global batches three ways, from the same initialization:
    in one process (the whole SGD step compiled, as `diptych train`), and data-parallel on
    the cluster with compiled replicas, then with eager replicas."""
    from compare.train import compiled_trainer, global_batches, weights_max_rel

    batch, size, lr = batch or model.batch, size or model.size, lr or model.lr
    batches = global_batches(model, steps, batch, size, seed)
    alone = model.build(size, seed)
    step = compiled_trainer(model, alone, lr, batches[0], optimize)
    alone_losses, alone_times = [], []
    for inputs in batches:
        start = time.perf_counter()
        alone_losses.append(step(inputs))
        alone_times.append(time.perf_counter() - start)
    runs = []
    for kind in ("compiled", "eager"):
        module = model.build(size, seed)
        replicas = (
            CompiledReplicas(client, model, module, optimize)
            if kind == "compiled"
            else EagerReplicas(model, size)
        )
        trainer = DataParallel(client, model, module, lr, replicas, shards)
        for inputs in batches:
            trainer.step(inputs)
        runs.append(
            ReplicaRun(kind, trainer, weights_max_rel(module.parameters(), alone.parameters()))
        )
    return DistributedResult(
        model.name,
        steps,
        batch,
        trainer.shards,
        client.scheduler.address,
        alone_losses,
        float(np.median(alone_times[1:] or alone_times)),
        runs,
    )


def print_data_parallel(result: DistributedResult) -> None:
    compiled, eager = result.runs
    print(
        f"{result.model}: {result.steps} SGD steps on global batches of {result.batch}, cut "
        f"into {result.shards} shards on the cluster at {result.scheduler}, beside one process "
        "(the same batches and initialization)\n"
    )
    print(f"{'step':>6} {'one process':>14} {'compiled replicas':>18} {'eager replicas':>15}")
    n = result.steps
    for i in sorted({0, 1, 10, n // 2, n - 1} & set(range(n))):
        print(
            f"{i:>6} {result.one_process_losses[i]:>14.6g} {compiled.trainer.losses[i]:>18.6g} "
            f"{eager.trainer.losses[i]:>15.6g}"
        )
    print(
        f"\nlargest relative difference from one process's trained weights: compiled replicas "
        f"{compiled.weights_max_rel:.1e}, eager replicas {eager.weights_max_rel:.1e}"
    )
    print(f"\ntime per step (median, ms) {'total':>8} {'worker compute':>15} {'orchestration':>14}")
    print(
        f"{'one process, compiled':<26} {1e3 * result.one_process_step_s:>8.2f} {'':>15} {'':>14}"
    )
    for run in result.runs:
        ms = {part: 1e3 * run.trainer.median(part) for part in StepTime.PARTS}
        print(
            f"{run.kind + ' replicas':<26} {ms['wall_s']:>8.2f} {ms['compute_s']:>15.2f} "
            f"{ms['orchestration_s']:>14.2f}"
        )
    print(
        f"\ncompiled replicas received the gradient step once, as a "
        f"{compiled.trainer.replicas.file_bytes:,}-byte "
        "saved graph; eager replicas built the model from its Python, which every worker needs."
    )
    print(
        "orchestration: the driver's Python, Dask's scheduling, pickling the weights and "
        "shards, the network, combining gradients and the update."
    )
