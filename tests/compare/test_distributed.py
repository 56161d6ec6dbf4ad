"""Data-parallel training on a LocalCluster started here (two worker processes, loopback
only): 20 steps equal one process's training, with compiled and with eager replicas; a worker
killed in the middle of a step costs no weight; a failing shard changes no weight; a lowered
gradient step runs on the cluster; `diptych train --scheduler` joins it."""

from __future__ import annotations

import os
import signal

import dask
import numpy as np
import pytest

from compare import zoo
from compare.cli import main
from compare.distributed import (
    DataParallel,
    EagerReplicas,
    StepFailed,
    open_cluster,
    split_batch,
)
from compare.pictures import compile_model
from compare.train import compiled_trainer, global_batches, weights_max_rel

BATCH, SIZE = 32, 16  # small: the steps are about orchestration, not compute
TOLERANCE = 1e-5  # float32: the shards' gradients are summed in another order


@pytest.fixture(scope="module")
def client():
    with open_cluster(workers=2) as client:
        yield client


def _one_process(model: zoo.Model, batches: list[dict]) -> object:
    """The model trained in one process on the global batches: the reference."""
    module = model.build(SIZE, 0)
    step = compiled_trainer(model, module, model.lr, batches[0], optimize=2)
    for inputs in batches:
        step(inputs)
    return module


@pytest.mark.parametrize(("name", "kind"), [("mlp_digits", "compiled"), ("two_layer_net", "eager")])
def test_twenty_steps_on_two_workers_equal_one_process(client, name, kind):
    model = zoo.get(name)
    batches = global_batches(model, 20, BATCH, SIZE, seed=0)
    module = model.build(SIZE, 0)
    replicas = EagerReplicas(model, SIZE) if kind == "eager" else None
    trainer = DataParallel(client, model, module, model.lr, replicas, shards=2)
    for inputs in batches:
        trainer.step(inputs)
    assert trainer.shards == 2 and len(trainer.times) == 20
    assert trainer.reduction == ("mean" if name == "mlp_digits" else "sum")
    assert weights_max_rel(module.parameters(), _one_process(model, batches).parameters()) < (
        TOLERANCE
    )
    assert all(t.compute_s > 0 and t.wall_s >= t.compute_s for t in trainer.times)


def test_a_worker_killed_in_the_middle_of_a_step_costs_no_weight(client):
    model = zoo.get("mlp_digits")
    batches = global_batches(model, 6, BATCH, SIZE, seed=1)
    module = model.build(SIZE, 0)
    trainer = DataParallel(client, model, module, model.lr)
    for inputs in batches[:3]:
        trainer.step(inputs)
    client.wait_for_workers(2, timeout=60)
    victim = sorted(client.run(os.getpid).values())[0]
    pending = trainer.submit(batches[3])  # one shard is meant for the victim
    os.kill(victim, signal.SIGKILL)
    trainer.finish(pending)  # the lost shard runs again on the worker that remains
    for inputs in batches[4:]:
        trainer.step(inputs)
    client.wait_for_workers(2, timeout=60)  # the nanny started a new worker
    assert victim not in client.run(os.getpid).values()
    assert weights_max_rel(module.parameters(), _one_process(model, batches).parameters()) < (
        TOLERANCE
    )


def test_a_failing_shard_changes_no_weight(client):
    model = zoo.get("mlp_digits")
    good = global_batches(model, 2, BATCH, SIZE, seed=2)
    bad = dict(good[0], labels=np.full(BATCH, 99))  # one_hot fails on the workers
    module = model.build(SIZE, 0)
    trainer = DataParallel(client, model, module, model.lr)
    trainer.step(good[0])
    before = trainer.weights
    momentum = [dict(s) for s in trainer.optimizer.state]
    with pytest.raises(StepFailed, match="(?s)step 2 failed .*one_hot.*those after step 1"):
        trainer.finish(trainer.submit(bad))
    assert all(np.array_equal(before[k], v) for k, v in trainer.weights.items())
    assert all(
        np.array_equal(a["momentum"], b["momentum"])
        for a, b in zip(momentum, trainer.optimizer.state)
    )
    trainer.step(good[1])  # and training goes on as if the bad batch had never come
    assert weights_max_rel(module.parameters(), _one_process(model, good).parameters()) < TOLERANCE


def test_a_lowered_gradient_step_runs_on_the_cluster(client):
    model = zoo.get("mlp_digits")
    f = compile_model(model, "grad", batch=BATCH, size=SIZE)
    inputs = model.make_inputs(BATCH, SIZE, 0)
    lowered = f.to_dask({"x": BATCH // 4, "labels": BATCH // 4})
    assert dask.config.get("scheduler") == "dask.distributed"  # the client is the default
    for got, want in zip(lowered.compute(*inputs.values()), f(*inputs.values())):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert any(client.run(lambda: "symbolic.distributed" in __import__("sys").modules).values())


def test_split_batch_cuts_rows_evenly_and_refuses_a_batch_not_on_axis_0():
    batch = {"x": np.arange(10), "y": np.arange(10) * 2}
    shards = split_batch(batch, 3)
    assert [len(s["x"]) for s in shards] == [3, 4, 3]
    assert np.array_equal(np.concatenate([s["y"] for s in shards]), batch["y"])
    with pytest.raises(ValueError, match="not axis 0"):
        split_batch({"xs": np.zeros((4, 3)), "y": np.zeros((3, 1))}, 2)


def test_the_train_command_joins_a_running_cluster(client, capsys):
    argv = ["train", "mlp_digits", "--steps", "4", "--batch", "16", "--size", "16"]
    assert main([*argv, "--scheduler", client.scheduler.address]) == 0
    out = capsys.readouterr().out
    assert "compiled replicas" in out and "eager replicas" in out and "orchestration" in out
    assert client.scheduler.address in out
    assert main([*argv, "--workers", "2", "--plot", "x.png"]) == 2
    assert "--plot draws one process's training" in capsys.readouterr().err
