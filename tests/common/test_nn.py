"""Module registration, state dicts, layers' shapes, and eager training of the digits MLP."""

import numpy as np
import pytest

import eager as E
from common import data, nn, optim
from common import functional as F


def mlp(seed=0):
    E.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def test_attribute_assignment_registers_parameters_and_submodules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 4)
            self.scale = nn.Parameter(np.ones(4))
            self.note = "not a parameter"

    names = [name for name, _ in Net().named_parameters()]
    assert names == ["scale", "body.weight", "body.bias"]


def test_a_shared_parameter_is_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2


def test_state_dict_round_trip_restores_every_value():
    a, b = mlp(0), mlp(1)
    b.load_state_dict(a.state_dict())
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)


def test_bad_state_dict_names_the_problem_and_changes_nothing():
    model = mlp()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = model.state_dict()
    state["0.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"0\.weight has shape \(3, 3\)"):
        model.load_state_dict(state)
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict({"0.weight": before["0.weight"]})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_train_and_eval_switch_dropout():
    E.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5))
    x = E.ones(1000)
    dropped = model(x).numpy()
    assert 0.3 < (dropped == 0).mean() < 0.7
    assert set(np.unique(dropped)) <= {0.0, 2.0}  # survivors are scaled by 1/(1-p)
    np.testing.assert_array_equal(model.eval()(x).numpy(), x.numpy())


@pytest.mark.parametrize(
    "layer, shape_in, shape_out",
    [
        (nn.Linear(5, 3), (2, 5), (2, 3)),
        (nn.Conv2d(1, 4, 3, padding=1), (2, 1, 8, 8), (2, 4, 8, 8)),
        (nn.Conv2d(2, 3, 3, stride=2), (1, 2, 7, 7), (1, 3, 3, 3)),
        (nn.MaxPool2d(2), (2, 3, 8, 8), (2, 3, 4, 4)),
        (nn.AvgPool2d(2), (2, 3, 8, 8), (2, 3, 4, 4)),
        (nn.Flatten(), (2, 3, 4, 4), (2, 48)),
        (nn.LayerNorm(6), (2, 6), (2, 6)),
    ],
)
def test_layer_output_shapes(layer, shape_in, shape_out):
    assert layer(E.randn(*shape_in)).shape == shape_out


def test_rnn_cell_and_embedding_shapes():
    cell = nn.RNNCell(3, 5)
    assert cell(E.randn(2, 3), E.zeros(2, 5)).shape == (2, 5)
    emb = nn.Embedding(10, 4)
    assert emb(np.array([[1, 2], [3, 9]])).shape == (2, 2, 4)


def test_layer_norm_normalizes_the_last_axis():
    y = nn.LayerNorm(8)(E.randn(4, 8) * 3 + 1).numpy()
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)


def test_linear_initialization_follows_torch_bounds():
    layer = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.9 * bound


def test_seeding_repeats_initialization():
    np.testing.assert_array_equal(mlp(3)[0].weight.numpy(), mlp(3)[0].weight.numpy())


def test_parameters_receive_gradients_from_eager_backward():
    model = mlp()
    x = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    F.cross_entropy(model(x), np.array([1, 2, 3, 4])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name


def test_mlp_trains_on_digits_to_95_percent():
    ds = data.digits()
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(10):
        for xb, yb in data.batches(ds.x_train, ds.y_train, 64, generator=0):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    with E.no_grad():
        accuracy = (model(ds.x_test).numpy().argmax(1) == ds.y_test).mean()
    assert accuracy >= 0.95
