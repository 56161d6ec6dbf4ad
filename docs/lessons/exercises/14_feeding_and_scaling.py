"""Exercises for lesson 14 (docs/lessons/14_feeding_and_scaling.py). Fill in each function,
then run `python docs/lessons/14_feeding_and_scaling.py --check` (or `diptych lesson 14
--check`)."""

import hashlib
import tempfile
from pathlib import Path

import dask
import numpy as np
from dask.callbacks import Callback

import eager as E
import symbolic as S
from common import functional as F
from common import nn
from compare.distributed import run_saved_step


def exercise_1(module, inputs):
    """`module` is a `common.nn` module whose forward takes the arrays in the dict `inputs`
    (in order, as positional arguments) and returns a scalar loss. Return the bytes of a saved
    graph (`f.save`) whose inputs are placeholders shaped like `inputs` and named by its keys,
    and whose outputs are the loss, then the gradient of each parameter in
    `module.parameters()` order; no updates. Name the parameters first with
    `symbolic.tracing.name_parameters(module)`: the weights a worker receives are keyed by
    those names."""
    raise NotImplementedError("your code here")


def exercise_2(losses, grads, rows, reduction):
    """Shard i of a global batch had `rows[i]` rows, loss `losses[i]` (a float) and gradients
    `grads[i]` (a list of arrays, one per parameter). Return `(loss, gradients)` of the whole
    batch: `reduction` is "mean" when the loss averages over rows, "sum" when it adds them."""
    raise NotImplementedError("your code here")


def exercise_3(f, arrays, rows):
    """`f` is a compiled function; `arrays` are its inputs, in order, each leading with the
    same batch. Run it on Dask in blocks of `rows` rows of every input (`f.to_dask`) and return
    its results as a list of numpy arrays, equal to `f(*arrays)`."""
    raise NotImplementedError("your code here")


# ---- checks ------------------------------------------------------------------------------


class _Regression(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2, generator=np.random.default_rng(0))

    def forward(self, x, t):
        return F.mse_loss(F.tanh(self.layer(x)), t)


def _batch(rows: int, seed: int) -> dict:
    generator = np.random.default_rng(seed)
    return {
        "x": generator.standard_normal((rows, 3)).astype(np.float32),
        "t": generator.standard_normal((rows, 2)).astype(np.float32),
    }


def _eager(module, inputs: dict, reduce: bool = False) -> tuple:
    """The loss and gradients eagerly; `reduce=True`: of the summed loss over rows."""
    for p in module.parameters():
        p.grad = None
    loss = module(*(E.tensor(v) for v in inputs.values()))
    loss = loss * len(inputs["x"]) if reduce else loss
    loss.backward()
    return float(loss.item()), [p.grad.numpy().copy() for p in module.parameters()]


def check_1(exercise_1):
    module, inputs = _Regression(), _batch(4, 1)
    blob = exercise_1(module, inputs)
    assert isinstance(blob, bytes), f"return the file's bytes, not a {type(blob).__name__}"
    weights = {name: p.data.copy() for name, p in module.named_parameters()}
    loss, grads, _ = run_saved_step(
        hashlib.sha256(blob).hexdigest(), blob, weights, list(inputs.values())
    )
    want_loss, want_grads = _eager(module, inputs)
    assert np.isclose(loss, want_loss, rtol=1e-5), "the first output should be the loss"
    assert len(grads) == len(want_grads), "one gradient per parameter, after the loss"
    for got, want in zip(grads, want_grads):
        assert np.allclose(got, want, rtol=1e-5, atol=1e-6), (
            "a gradient differs from eager's: S.grad(loss, list(module.parameters()))"
        )
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "step.dip").write_bytes(blob)
        updates = S.load(Path(folder) / "step.dip").graph.updates
    assert not updates, "a replica's step has no updates: the driver applies them once"


def check_2(exercise_2):
    module, batch = _Regression(), _batch(10, 2)
    shards = [{k: v[a:b] for k, v in batch.items()} for a, b in ((0, 3), (3, 7), (7, 10))]
    rows = [3, 4, 3]
    for reduce in (False, True):
        parts = [_eager(module, shard, reduce) for shard in shards]
        want_loss, want_grads = _eager(module, batch, reduce)
        reduction = "sum" if reduce else "mean"
        loss, grads = exercise_2([p[0] for p in parts], [p[1] for p in parts], rows, reduction)
        assert np.isclose(loss, want_loss, rtol=1e-5), (
            f"the {reduction} loss of the whole batch is not {loss:.6g}: how does each shard "
            "count in it?"
        )
        for got, want in zip(grads, want_grads):
            assert np.allclose(got, want, rtol=1e-5, atol=1e-6), (
                f"the gradients of a {reduction} loss combine as its shards' losses do"
            )


class _CountTasks(Callback):
    def __init__(self):
        super().__init__()
        self.ran = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.ran += 1


def check_3(exercise_3):
    x, w = S.placeholder((12, 3), name="x"), S.variable(np.ones((3, 2), np.float32), name="w")
    f = S.compile([F.sum(F.tanh(x @ w)), F.relu(x @ w)], inputs=[x])
    value = np.random.default_rng(3).standard_normal((12, 3)).astype(np.float32)
    with _CountTasks() as counter, dask.config.set(scheduler="sync"):
        got = exercise_3(f, [value], 4)
    want = f(value)
    assert counter.ran >= 6, "Dask ran too few tasks: did the blocks run on Dask (to_dask)?"
    assert len(got) == 2, "return every result of f, in a list"
    for a, b in zip(got, want):
        assert np.allclose(np.asarray(a), b, rtol=1e-5), "a result differs from f(*arrays)"
