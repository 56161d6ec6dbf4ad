"""Exercises for lesson 12 (docs/lessons/12_a_graph_without_its_python.py). Fill in each
function, then run `python docs/lessons/12_a_graph_without_its_python.py --check` (or
`diptych lesson 12 --check`)."""

import tempfile
from pathlib import Path

import numpy as np

import eager as E
import symbolic as S
from common import functional as F
from common import nn, optim


def exercise_1(path):
    """`path` is a `.dip` file. Return a dict mapping each op name in its graph ("add",
    "placeholder", "scan", ...) to the number of nodes of that op, reading the file with
    `safetensors.safe_open` and `json` alone: no diptych function."""
    raise NotImplementedError("your code here")


def exercise_2(model, x, path):
    """`model` is a `common.nn` module whose `forward` takes one array; `x` is an example
    input. Save the model, traced on `x`, to `path`, so that `S.load(path)(x)` computes
    `model(E.tensor(x))`. Return nothing."""
    raise NotImplementedError("your code here")


def exercise_3(path, batches):
    """`path` is a saved training step (it returns the loss and updates its weights).
    Load it and train on: one call per batch in `batches` (each a tuple of arrays, fed in
    order). Return the losses, as a list of Python floats."""
    raise NotImplementedError("your code here")


# ---- checks ------------------------------------------------------------------------------


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="lesson12_check_"))


def check_1(exercise_1):
    x = S.placeholder((4,), name="x")
    w = S.variable(np.ones(4, np.float32), name="w")
    path = _folder() / "f.dip"
    S.compile(F.exp(x * w) + F.exp(x) * 2.0, inputs=[x]).save(path)
    got = exercise_1(path)
    want = {"placeholder": 1, "variable": 1, "mul": 2, "exp": 2, "add": 1}
    assert isinstance(got, dict), f"return a dict of op name -> count, not a {type(got).__name__}"
    assert got == want, (
        f"counted {got}: look at every entry of the graph's 'nodes' list, "
        "whose 'op' field names its op"
    )


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        generator = np.random.default_rng(0)
        self.hidden = nn.Linear(3, 5, generator=generator)
        self.out = nn.Linear(5, 2, generator=generator)

    def forward(self, x):
        return F.softmax(self.out(F.tanh(self.hidden(x))), axis=-1)


def check_2(exercise_2):
    model = _Net()
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    path = _folder() / "net.dip"
    exercise_2(model, x, path)
    assert path.exists(), "nothing was written at `path`: S.save(graph, path) writes a graph"
    loaded = S.load(path)
    got = np.asarray(loaded(x))
    want = model(E.tensor(x)).numpy()
    assert got.shape == want.shape, f"the loaded function returns shape {got.shape}"
    assert np.allclose(got, want, atol=1e-6), "the loaded function computes something else"
    assert len(loaded.graph.variables) == 4, "the weights should be variables, not constants"


def _saved_step(path: Path) -> tuple:
    """A linear regression's SGD step saved at `path`, its batches, and the losses training
    on with the step itself gives."""
    generator = np.random.default_rng(2)
    layer = nn.Linear(3, 1, generator=generator)
    x, t = S.placeholder((8, 3), name="x"), S.placeholder((8, 1), name="t")
    loss = F.mse_loss(layer(x), t)
    params = list(layer.parameters())
    updates = S.optimizer_updates(optim.SGD(params, lr=0.1), S.grad(loss, params))
    step = S.compile(loss, inputs=[x, t], updates=updates)
    step(generator.standard_normal((8, 3)).astype(np.float32), np.ones((8, 1), np.float32))
    step.save(path)
    batches = [
        (generator.standard_normal((8, 3)).astype(np.float32), np.ones((8, 1), np.float32))
        for _ in range(4)
    ]
    return batches, [float(step(*batch)) for batch in batches]


def check_3(exercise_3):
    path = _folder() / "step.dip"
    batches, want = _saved_step(path)
    got = exercise_3(path, batches)
    assert isinstance(got, list) and len(got) == len(batches), "one loss per batch, in a list"
    assert all(type(v) is float for v in got), "losses as Python floats (float(...))"
    assert got == want, (
        "the losses differ from training on with the original step: call the loaded "
        "step once per batch, feeding each batch's arrays in order"
    )
