"""f.to_dask: a compiled graph lowered onto Dask by blocks of batch rows equals the local call
for every zoo model whose graph splits by batch (forward graphs, and gradient steps whose
weight gradients become tree reductions); what cannot split is named, op and line. These run
on Dask's threads; tests/compare/test_distributed.py runs a lowered step on a cluster."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from compare import zoo
from compare.pictures import compile_model
from symbolic.distributed import SplitError, Tree

BATCH, ROWS = 10, 4  # blocks of 4, 4 and 2 rows: the last block is short
UNSPLITTABLE = {"rnn_varlen": "scan"}  # its scan runs a graph of its own over the sequence


def _batched(inputs: dict) -> dict:
    """Rows per block for the inputs that lead with the batch."""
    return {k: ROWS for k, v in inputs.items() if np.ndim(v) and len(v) == BATCH}


def _assert_equal_results(lowered, f, inputs: dict) -> None:
    got, want = lowered.compute(*inputs.values()), f(*inputs.values())
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert np.asarray(a).shape == np.asarray(b).shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_every_zoo_forward_graph_that_splits_equals_the_local_call(name):
    model = zoo.get(name)
    f = compile_model(model, "forward", batch=BATCH, size=model.test_sizes[1])
    inputs = model.make_inputs(BATCH, model.test_sizes[1], 0)
    if name in UNSPLITTABLE:
        with pytest.raises(SplitError, match=rf"{UNSPLITTABLE[name]} cannot run") as error:
            f.to_dask(_batched(inputs))
        assert f"{name}.py:" in str(error.value)  # the user's line
        return
    lowered = f.to_dask(_batched(inputs))
    arrays = lowered(*inputs.values())
    assert arrays[1].numblocks[0] == math.ceil(BATCH / ROWS)  # the outputs run by blocks
    _assert_equal_results(lowered, f, inputs)


@pytest.mark.parametrize("name", ["neuron", "two_layer_net", "mlp_digits", "gelu_chain"])
def test_gradient_steps_lower_with_their_weight_gradients_as_tree_reductions(name):
    model = zoo.get(name)
    f = compile_model(model, "grad", batch=BATCH, size=model.test_sizes[1])
    inputs = model.make_inputs(BATCH, model.test_sizes[1], 0)
    lowered = f.to_dask(_batched(inputs))
    trees = [step for step in lowered.plan if isinstance(step.how, Tree)]
    assert len(trees) >= len(list(model.build(model.test_sizes[1], 0).parameters()))
    _assert_equal_results(lowered, f, inputs)


def test_a_fused_group_runs_its_member_ops_on_each_block():
    x = S.placeholder((256, 512), name="x")  # large enough for the fusion pass
    f = S.compile(F.tanh(x * 2.0 + 1.0) * x, inputs=[x])
    assert any(n.op_name.startswith("fused") for n in f.graph.ops)
    value = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    want = np.tanh(value * 2.0 + 1.0) * value  # (not f(value): building its kernel is slow)
    np.testing.assert_allclose(f.to_dask({x: 100}).compute(value), want, rtol=1e-6)


def test_weights_are_read_when_the_lowered_function_is_called():
    x = S.placeholder((6, 3), name="x")
    w = S.variable(np.ones((3, 2), np.float32), name="w")
    f = S.compile(F.sum(x @ w), inputs=[x])
    lowered = f.to_dask({"x": 2})
    value = np.arange(18, dtype=np.float32).reshape(6, 3)
    w.node.value.data[...] = 2.0  # training moved the weights after lowering
    assert lowered.compute(value) == f(value) == 2 * 2 * value.sum()


def test_a_node_that_mixes_rows_is_named_with_its_line():
    x = S.placeholder((8, 4), name="x")
    mixed = F.reshape(x, (4, 8))  # rows of the batch end up side by side
    f = S.compile(F.sum(mixed * 2.0, axis=1), inputs=[x])
    with pytest.raises(SplitError, match=r"reshape cannot run .*mixes batch rows") as error:
        f.to_dask({"x": 2})
    assert "test_to_dask.py" in str(error.value) and "mixed = F.reshape" in str(error.value)


def test_a_whole_input_that_spans_the_batch_and_an_argmax_over_it_are_refused():
    x = S.placeholder((8, 4), name="x")
    offsets = S.constant(np.ones((8, 4), np.float32))
    with pytest.raises(SplitError, match="spans the batch axis"):
        S.compile(x + offsets, inputs=[x]).to_dask({"x": 2})
    with pytest.raises(SplitError, match="argmax over the batch has no tree reduction"):
        S.compile(F.argmax(x, axis=0), inputs=[x]).to_dask({"x": 2})


def test_chunks_must_name_placeholders_with_one_batch_size():
    x, t = S.placeholder((8, 4), name="x"), S.placeholder((6, 1), name="t")
    f = S.compile([F.sum(x), F.sum(t)], inputs=[x, t])
    with pytest.raises(SplitError, match="'y', which is not a placeholder"):
        f.to_dask({"y": 2})
    with pytest.raises(SplitError, match="the same known batch size"):
        f.to_dask({"x": 2, "t": 2})
    with pytest.raises(SplitError, match="positive int"):
        f.to_dask({"x": 0})
