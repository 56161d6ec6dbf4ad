"""f.save / S.load: every zoo model and a training step round-trip through a file into a
fresh process bit for bit; eager models with cond and scan go through S.trace to a file;
the file is a plain safetensors file; and what the format cannot hold is refused at save."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from common import nn, optim
from compare import zoo
from compare.harness import Case, Settings
from symbolic.serialize import SaveError
from symbolic.serialize.format import read_file
from symbolic.tracing import name_parameters
from tests.helpers import assert_identical

ROOT = Path(__file__).resolve().parents[2]


def fresh_python(code: str, *args: str) -> str:
    """Run `code` in a new interpreter (argv: args), in the repository; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---- every zoo model -----------------------------------------------------------------------

CHECK_ZOO = """
import sys, numpy as np, symbolic as S
for path in sys.argv[1:]:
    saved = np.load(path + ".npz")
    inputs = [saved[f"in{i}"] for i in range(int(saved["n_in"]))]
    got = S.load(path)(*inputs)
    for i, value in enumerate(got):
        want = saved[f"out{i}"]
        assert value.dtype == want.dtype and np.array_equal(value, want), (path, i)
    print(path, len(got))
"""


def test_every_zoo_model_round_trips_into_a_fresh_process(tmp_path):
    """Loss, outputs and gradients of each model, compiled at optimize=2: the copy loaded in
    another process gives the same bits; in this one, it generates the same plan."""
    paths = []
    for model in zoo.MODELS.values():
        batch, size = model.test_sizes
        case = Case(model, Settings(batch=batch, size=size))
        fn = case.compile(2)
        inputs = list(case.inputs.values())
        path = str(tmp_path / f"{model.name}.dip")
        fn.save(path)
        assert S.load(path).source == fn.source, model.name
        outputs = {f"out{i}": np.asarray(v) for i, v in enumerate(fn(*inputs))}
        np.savez(
            path + ".npz",
            n_in=len(inputs),
            **outputs,
            **{f"in{i}": v for i, v in enumerate(inputs)},
        )
        paths.append(path)
    checked = fresh_python(CHECK_ZOO, *paths).splitlines()
    assert len(checked) == len(zoo.MODELS)


# ---- a training step -----------------------------------------------------------------------

GO_ON_TRAINING = """
import json, sys, numpy as np, symbolic as S
step_file, batch_file, again_file = sys.argv[1:]
step = S.load(step_file)
batch = np.load(batch_file)
losses = [float(step(*(batch[k] for k in batch.files))) for _ in range(10)]
step.save(again_file)
print(json.dumps(losses))
"""


@pytest.mark.parametrize("name", ["mlp_digits", "rnn_varlen"])
def test_a_loaded_training_step_goes_on_training_the_saved_weights(name, tmp_path):
    """Three steps here, save; ten more here and ten in a fresh process from the file: the
    same losses and the same weights (momentum buffers included), bit for bit."""
    model = zoo.get(name)
    module = model.build(model.size, 0)
    name_parameters(module)  # '0.weight', ...: one tensor name each
    batch = model.make_inputs(model.batch, model.size, 0)
    feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in batch.items()]
    loss = model.loss_and_outputs(module, feeds)[0]
    params = list(module.parameters())
    opt = optim.SGD(params, lr=model.lr, momentum=0.9)
    step = S.compile(loss, inputs=feeds, updates=S.optimizer_updates(opt, S.grad(loss, params)))
    for _ in range(3):
        step(*batch.values())
    step.save(tmp_path / "step.dip")
    np.savez(tmp_path / "batch.npz", **batch)
    out = fresh_python(
        GO_ON_TRAINING, *(str(tmp_path / f) for f in ("step.dip", "batch.npz", "again.dip"))
    )
    losses = [float(step(*batch.values())) for _ in range(10)]
    assert json.loads(out) == losses
    _, tensors = read_file(tmp_path / "again.dip")
    trained_there = {k: v for k, v in tensors.items() if k.startswith("variables/")}
    trained_here = {f"variables/{n.name}": n.value.data for n in step.graph.variables}
    assert len(trained_here) == 2 * len(params)  # each weight and its momentum
    assert trained_there.keys() == trained_here.keys()
    for key, weights in trained_here.items():
        assert_identical(trained_there[key], weights, key)


def test_loaded_variables_are_new_storages_holding_the_weights_at_save_time(tmp_path):
    w = S.variable(np.arange(3, dtype=np.float32), name="w")
    x = S.placeholder((3,), "float32", name="x")
    step = S.compile(F.sum(w * x), inputs=[x], updates={w: w + x})
    step.save(tmp_path / "step.dip")
    step(np.ones(3, np.float32))  # after the save: not in the file
    loaded = S.load(tmp_path / "step.dip")
    loaded(np.full(3, 10, np.float32))
    (node,) = loaded.graph.variables
    assert node.value is not w.node.value
    assert_identical(node.value.data, np.arange(3, dtype=np.float32) + 10, "loaded weights")
    assert_identical(w.value, np.arange(3, dtype=np.float32) + 1, "the original's")


# ---- from eager code to a file -------------------------------------------------------------


class Gated(nn.Module):
    """Eager-style code with both control-flow forms: a scan over time, then a cond."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.RNNCell(3, 4, generator=np.random.default_rng(0))

    def forward(self, xs, threshold):
        def step(h, x):
            return self.cell(x, h), F.sum(h)

        h, sums = F.scan(step, np.zeros((xs.shape[1], 4), np.float32), xs)
        return F.cond(F.sum(h) > threshold, lambda a: a * 2.0, lambda a: F.tanh(a), h), sums


@pytest.mark.parametrize("threshold", [-100.0, 100.0])
def test_a_traced_eager_model_with_scan_and_cond_saves_and_loads(threshold, tmp_path):
    import eager as E

    model = Gated()
    xs = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    limit = np.float32(threshold)
    S.save(S.trace(model, xs, limit), tmp_path / "gated.dip")
    loaded = S.load(tmp_path / "gated.dip")
    want = model(E.tensor(xs), E.tensor(limit))
    for got, eager in zip(loaded(xs, limit), want):
        np.testing.assert_allclose(got, eager.numpy(), rtol=1e-6, atol=1e-7)


def test_control_flow_and_unusual_params_round_trip_bit_for_bit(tmp_path):
    """cond, while_loop (with its tape), a bounded while_loop, a gradient through them,
    fancy and reversed indexing, an inf literal and a strong NumPy scalar."""
    x = S.placeholder((5,), "float64", name="x")
    p = S.placeholder((), "bool", name="p")
    y = F.cond(p, lambda a: a * np.float64(2.0), lambda a: F.minimum(a, float("inf")) - 1, x)
    grows = F.while_loop(lambda v: F.sum(v) < 100.0, lambda v: v * 1.5 + 1, x)
    bounded = F.while_loop(lambda v: F.sum(v) < 100.0, lambda v: v * 1.5, x, max_iterations=4)
    picked = x[np.array([0, 2, 4])][::-1][..., None]
    loss = F.sum(y) + F.sum(grows) + F.sum(bounded) + F.sum(picked)
    (g,) = S.grad(loss, [x])
    fn = S.compile([loss, g, picked], inputs=[x, p])
    fn.save(tmp_path / "flow.dip")
    loaded = S.load(tmp_path / "flow.dip")
    for pred in (True, False):
        for got, want in zip(
            loaded(np.linspace(0.1, 1, 5), pred), fn(np.linspace(0.1, 1, 5), pred)
        ):
            assert_identical(got, want, f"pred={pred}")


def test_the_pass_options_are_saved(tmp_path):
    x = S.placeholder((4,), name="x")
    fn = S.compile(F.exp(x) + F.exp(x) * 0.0, inputs=[x], optimize=1, disable=["cse"])
    fn.save(tmp_path / "f.dip")
    stages = [s.stage for s in S.load(tmp_path / "f.dip").report.stages]
    assert (
        stages
        == [s.stage for s in fn.report.stages]
        == ["trace", "constant_folding", "simplify", "dce"]
    )


def test_the_file_is_a_safetensors_file_any_reader_opens(tmp_path):
    from safetensors import safe_open

    w = S.variable(np.ones((2, 3), np.float32), name="w")
    x = S.placeholder((3,), name="x")
    S.compile(w @ x + S.constant([1.0, 2.0]), inputs=[x]).save(tmp_path / "f.dip")
    with safe_open(str(tmp_path / "f.dip"), framework="numpy") as f:
        metadata, names = f.metadata(), sorted(f.keys())
    graph = json.loads(metadata["graph"])
    assert (metadata["format"], metadata["version"]) == ("diptych.graph", "1")
    assert names == ["constants/1", "variables/w"] == sorted(graph["tensors"])
    assert [n["op"] for n in graph["nodes"]] == [  # in creation order
        "variable",
        "placeholder",
        "matmul",
        "constant",
        "add",
    ]
    assert graph["nodes"][2]["source"].endswith(
        'S.compile(w @ x + S.constant([1.0, 2.0]), inputs=[x]).save(tmp_path / "f.dip")'
    )


# ---- what cannot be saved ------------------------------------------------------------------


def test_a_fused_graph_is_refused_at_save_with_the_op_named(tmp_path):
    x = S.placeholder((1 << 17,), name="x")
    fn = S.compile(F.tanh(x * 2.0 + 1.0), inputs=[x])
    assert any(n.op_name.startswith("fused_") for n in fn.graph.ops)
    fn.save(tmp_path / "ok.dip")  # the traced graph: fused again on load
    assert S.load(tmp_path / "ok.dip").source == fn.source
    with pytest.raises(SaveError, match=r"'fused_1' is not a registered op"):
        S.save(fn.graph, tmp_path / "fused.dip")


def test_complex_weights_are_refused_at_save(tmp_path):
    w = S.variable(np.ones(2, np.complex64), name="w")
    with pytest.raises(SaveError, match=r"variables 'w': a complex64 array"):
        S.compile(w * 2.0).save(tmp_path / "c.dip")
    assert not list(tmp_path.iterdir())  # nothing half-written
