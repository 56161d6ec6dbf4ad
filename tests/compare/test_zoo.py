"""Every zoo model, written once, gives eager's results when compiled: bit for bit at
optimize=0, within 1e-4 relative at every optimized level (small sizes, so it is fast)."""

import numpy as np
import pytest

import eager as E
from compare import zoo
from compare.harness import CLOSE, Case, Settings, differences, judge
from symbolic.passes import PIPELINES

MODELS = list(zoo.MODELS.values())


def small(model: zoo.Model, **kwargs) -> Case:
    batch, size = model.test_sizes
    return Case(model, Settings(batch=batch, size=size, **kwargs))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_eager_and_every_optimize_level_agree(model):
    case = small(model)
    eager = case.eager()
    want = eager.to_numpy(eager.step())
    assert np.ndim(want[0]) == 0 and np.isfinite(want[0]), "the loss is one finite number"
    for level in sorted(PIPELINES):
        compiled = case.symbolic(level)
        got = compiled.to_numpy(compiled.step())
        judge(compiled.row, got, want, exact=model.eager_forward is None)
        assert compiled.row.verdict in ("exact", "ok"), (
            f"{model.name} at optimize={level}: max abs {compiled.row.max_abs:.2e}, "
            f"max rel {compiled.row.max_rel:.2e}"
        )
        if level == 0 and model.eager_forward is None:
            assert compiled.row.verdict == "exact"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_gradients_are_not_trivially_zero(model):
    case = small(model)
    eager = case.eager()
    results = eager.to_numpy(eager.step())
    n_grads = len(case.params) + len(model.wrt)
    assert any(np.abs(g).max() > 0 for g in results[-n_grads:])


def test_the_rnn_scan_is_the_same_program_eagerly_and_compiled():
    """rnn_varlen's eager row is a loop per example; its F.scan form, run eagerly, is the
    graph's program exactly, so optimize=0 matches it bit for bit."""
    model = zoo.get("rnn_varlen")
    case = small(model)
    tensors = [E.tensor(v) for v in case.inputs.values()]
    results = model.loss_and_outputs(case.module, tensors)  # forward, not the loop
    want = case.to_numpy(results + list(E.grad(results[0], case.params)))
    got = case.symbolic(0)
    assert differences(got.to_numpy(got.step()), want) == (0.0, 0.0)
    loop = case.eager()
    assert differences(loop.to_numpy(loop.step()), want)[1] < CLOSE


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_inputs_follow_batch_size_and_seed(model):
    batch, size = model.test_sizes
    first = model.make_inputs(batch, size, 0)
    again = model.make_inputs(batch, size, 0)
    other = model.make_inputs(batch, size, 1)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[k], other[k]) for k in first)
    assert set(model.wrt) <= set(first)


def test_an_unknown_model_names_the_zoo():
    with pytest.raises(zoo.UnknownModelError, match="mlp_digits"):
        zoo.get("resnet")
