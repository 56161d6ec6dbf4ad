# %% [markdown]
# # 14. Feeding and scaling
#
# PyTorch's design notes end where a framework meets real work: worker processes that keep
# the model fed, and training spread over several processes and machines. They also note what
# a static graph buys there: a framework can plan the distribution before anything runs,
# where an eager program can only be orchestrated step by step. This lesson measures a
# DataLoader's worker processes, trains a model data-parallel on a Dask cluster started on
# this machine (`diptych train mlp_digits --workers 2` does the same from the command line),
# with compiled replicas that receive the gradient step as a saved graph and eager replicas
# that need the model's Python, then lowers a whole gradient step onto Dask ahead of time
# with `f.to_dask` and draws the task graph. This machine has 2 cores: the last section
# says what that can and cannot show.

# %%
import contextlib
import sys
import time

import dask
import numpy as np

from compare import distributed, lessons, zoo
from compare.pictures import compile_model
from compare.timing import thread_limit
from compare.train import compiled_trainer, global_batches, weights_max_rel
from symbolic.distributed import Tree

lessons.begin()  # `python docs/lessons/14_feeding_and_scaling.py --check`: the exercises
BATCH, HIDDEN = lessons.size(1024, 256), lessons.size(1024, 128)  # mlp_digits' rows, width
STEPS = lessons.size(12, 5)  # training steps per run; the first is a warm-up
model = zoo.get("mlp_digits")
batches = global_batches(model, STEPS, BATCH, HIDDEN, seed=0)

# %% [markdown]
# ## Feeding: a DataLoader with worker processes
#
# Reading and augmenting samples is Python work per sample. `data.DataLoader` runs it in
# worker processes, so batches are ready when the training loop asks (PyTorch's semantics:
# the same batches, in the same order, at any number of workers). The digits are enlarged to
# 28x28 and randomly rotated, shifted and distorted on every read (`data.Augmented`).

# %%
from common import data

digits = data.digits(images=True)
augmented = data.Augmented(digits.x_train, digits.y_train)
LOADER_BATCHES = lessons.size(40, 12)  # batches read per worker count
rates = {}
for workers in (0, 1, 2):
    loader = data.DataLoader(augmented, batch_size=64, shuffle=True, seed=0, num_workers=workers)
    start = time.perf_counter()
    with contextlib.closing(iter(loader)) as epoch:  # workers stop when the loop is done
        for _, _batch in zip(range(LOADER_BATCHES), epoch):
            pass
    rates[workers] = LOADER_BATCHES / (time.perf_counter() - start)
    print(f"{workers} workers: {rates[workers]:6.1f} batches per second (start-up included)")
b0, b1, b2 = rates[0], rates[1], rates[2]
lessons.claim(
    f"2 loader workers fed {b2:.1f} batches per second against {b0:.1f} for the training "
    f"process alone ({b2 / b0:.2f}x; 1 worker {b1:.1f}), the workers' start-up included",
    holds=b2 > b0,
)

# %% [markdown]
# ## A cluster on this machine
#
# Dask's `LocalCluster` starts a scheduler and worker processes on this machine (loopback
# only); given a scheduler's address the same code runs on a real cluster. Each worker is a
# fresh Python interpreter: its first task imports what it needs.

# %%
cluster = contextlib.ExitStack()  # closed at the end of the lesson
start = time.perf_counter()
client = cluster.enter_context(distributed.open_cluster(workers=2))
startup_s = time.perf_counter() - start
print(f"a scheduler and 2 worker processes started in {startup_s:.1f} s: {client}")

# %% [markdown]
# ## Data parallel, with compiled replicas
#
# Each step, the driver cuts the global batch into shards, one per worker. A compiled
# replica receives the gradient step once, as the bytes of `f.save` (the loss and the
# gradients of every parameter, no update), and each step the current weights and its
# shard. The driver combines the gradients, weighted by each shard's share of rows for a
# mean loss, and applies SGD once: the same arithmetic as one process, summed in another
# order. Below, one process without Dask, then the same training on 1 and on 2 workers.

# %%
alone = model.build(HIDDEN, 0)
alone_step = compiled_trainer(model, alone, model.lr, batches[0], optimize=2)
alone_s = []
with thread_limit(1):  # one BLAS thread, as each worker has
    for inputs in batches:
        start = time.perf_counter()
        alone_step(inputs)
        alone_s.append(time.perf_counter() - start)


def train(shards: int, replicas_kind: str) -> distributed.DataParallel:
    """The model trained data-parallel from the same start, on the same batches."""
    module = model.build(HIDDEN, 0)
    replicas = (
        distributed.EagerReplicas(model, HIDDEN)
        if replicas_kind == "eager"
        else distributed.CompiledReplicas(client, model, module)
    )
    trainer = distributed.DataParallel(client, model, module, model.lr, replicas, shards)
    for inputs in batches:
        trainer.step(inputs)
    return trainer


def median_ms(trainer: distributed.DataParallel, part: str) -> float:
    return 1e3 * trainer.median(part)  # the first step (imports, loading) left out


runs = {shards: train(shards, "compiled") for shards in (1, 2)}
first_step_s = runs[1].times[0].wall_s
alone_ms = 1e3 * float(np.median(alone_s[1:]))
print(f"{'':<24}{'ms per step':>12}{'samples/s':>11}{'worker compute':>16}{'orchestration':>15}")
print(f"{'one process, no Dask':<24}{alone_ms:>12.2f}{BATCH / alone_ms * 1e3:>11.0f}")
for shards, trainer in runs.items():
    wall = median_ms(trainer, "wall_s")
    print(
        f"{f'{shards} worker' + 's' * (shards > 1):<24}{wall:>12.2f}{BATCH / wall * 1e3:>11.0f}"
        f"{median_ms(trainer, 'compute_s'):>16.2f}{median_ms(trainer, 'orchestration_s'):>15.2f}"
    )

# %%
rel = max(weights_max_rel(t.module.parameters(), alone.parameters()) for t in runs.values())
lessons.claim(
    f"after {STEPS} steps on batches of {BATCH}, the weights trained on 1 and on 2 workers "
    f"differ from one process's by at most {rel:.1e} (relative, float32)",
    holds=rel < 1e-5,
)
throughput = {shards: BATCH / median_ms(t, "wall_s") * 1e3 for shards, t in runs.items()}
lessons.claim(
    f"2 workers trained faster than 1: {throughput[2]:,.0f} samples per second against "
    f"{throughput[1]:,.0f} ({throughput[2] / throughput[1]:.2f}x; one process without Dask "
    f"{BATCH / alone_ms * 1e3:,.0f})",
    holds=throughput[2] > throughput[1],
)
imported = client.run(lambda: "compare.zoo" in sys.modules)
lessons.claim(
    f"the workers ran the compiled step from a {runs[2].replicas.file_bytes:,}-byte file and "
    f"never imported the model's module (imported: {any(imported.values())})",
    holds=not any(imported.values()),
)

# %% [markdown]
# ## Compiled replicas against eager replicas
#
# An eager replica cannot be sent as data: each worker imports the zoo, builds the model by
# name, copies the weights in and runs eager forward and backward. The table splits a step
# into the workers' compute (timed on the workers) and orchestration (everything else: the
# driver's Python, Dask's scheduling, pickling weights and shards, combining gradients).

# %%
eager_run = train(2, "eager")
print(f"{'2 workers':<20}{'ms per step':>12}{'worker compute':>16}{'orchestration':>15}")
for kind, trainer in (("compiled replicas", runs[2]), ("eager replicas", eager_run)):
    print(
        f"{kind:<20}{median_ms(trainer, 'wall_s'):>12.2f}{median_ms(trainer, 'compute_s'):>16.2f}"
        f"{median_ms(trainer, 'orchestration_s'):>15.2f}"
    )

# %%
eager_rel = weights_max_rel(eager_run.module.parameters(), alone.parameters())
compute = {kind: median_ms(t, "compute_s") for kind, t in (("c", runs[2]), ("e", eager_run))}
lessons.claim(
    f"eager replicas trained the same weights (to {eager_rel:.1e}) with slower compute: "
    f"{compute['e']:.2f} ms a step on their workers against {compute['c']:.2f} ms for "
    f"compiled replicas, beside {median_ms(eager_run, 'orchestration_s'):.2f} and "
    f"{median_ms(runs[2], 'orchestration_s'):.2f} ms of orchestration",
    holds=eager_rel < 1e-5 and compute["c"] < compute["e"],
)

# %% [markdown]
# ## One step planned ahead: the Dask task graph
#
# Data parallelism above is orchestrated step by step by the driver. A compiled graph can
# also be handed to Dask whole: `f.to_dask(chunks={"x": rows})` decides for every node,
# before anything runs, how it splits over blocks of batch rows: a row-wise node becomes one
# task per block, a node that sums over the batch (a weight's gradient, a mean loss) a tree
# of partial sums. Below, the gradient step of the `neuron` model (tanh of x times w plus b)
# in 2 blocks: two lanes of row-wise tasks, and a tree per gradient and for the loss.

# %%
neuron = zoo.get("neuron")
step = compile_model(neuron, "grad", batch=8, size=4)
inputs = neuron.make_inputs(8, 4, 0)
lowered = step.to_dask(chunks={"x": 4})
trees = sum(isinstance(s.how, Tree) for s in lowered.plan)
outputs = lowered(*inputs.values())
tasks = len({key for array in outputs for key in array.__dask_graph__()})
path = lessons.figure("14_dask_step.svg")
dask.visualize(*outputs, filename=str(path), collapse_outputs=True, rankdir="LR")
lessons.show(path)
local = step(*inputs.values())
worst = max(float(np.max(np.abs(a - b))) for a, b in zip(lowered.compute(*inputs.values()), local))
lessons.claim(
    f"the lowered gradient step holds {tasks} Dask tasks for 2 blocks, {trees} of its nodes "
    f"reduced over the batch as trees, and on the cluster it equals the local call to {worst:.1e}",
    holds=worst < 1e-5,
)

# %% [markdown]
# ## What 2 cores can and cannot show
#
# Two cores hold the driver, Dask's scheduler and two workers at once. They can show that
# data-parallel training computes what one process computes, that a compiled step travels as
# a file while an eager replica needs its code, and what each step costs besides compute. They
# cannot show scaling: a second worker takes a core from the driver and the scheduler, and
# a step's compute here is small beside the fixed cost of a round trip through Dask. On a
# cluster, each worker has its own cores and the step's compute grows with the model.

# %%
orchestration = median_ms(runs[2], "orchestration_s")
lessons.claim(
    f"starting the cluster took {startup_s:.1f} s and the workers' first step "
    f"{first_step_s:.2f} s (imports, loading the file); after that a step on 2 workers spent "
    f"more time orchestrating than computing: {orchestration:.2f} ms against "
    f"{median_ms(runs[2], 'compute_s'):.2f} ms",
    holds=orchestration > median_ms(runs[2], "compute_s"),
)
cluster.close()

# %% [markdown]
# ## Exercises
#
# Fill in `docs/lessons/exercises/14_feeding_and_scaling.py`, then run
# `python docs/lessons/14_feeding_and_scaling.py --check` (or `diptych lesson 14 --check`).
#
# 1. `exercise_1(module, inputs)`: the gradient step of a `common.nn` module (its forward
#    returns the loss) for inputs shaped like `inputs`, as the bytes of a saved graph whose
#    outputs are the loss and the gradient of each parameter, with no updates: what a
#    compiled replica receives.
# 2. `exercise_2(losses, grads, rows, reduction)`: the global batch's loss and gradients from
#    its shards' (`reduction` says whether the loss is a "mean" or a "sum" over rows).
# 3. `exercise_3(f, arrays, rows)`: run the compiled function `f` on Dask in blocks of
#    `rows` rows of every input and return its results as numpy arrays.
