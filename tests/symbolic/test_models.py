"""Whole models, written once, run eagerly and as compiled graphs: same losses, same
gradients, same trained weights (the parameters are shared storage, DESIGN.md)."""

import copy

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import data, nn, optim
from common import functional as F

# ---- the seeds' Pythagoras example -------------------------------------------------------


def test_pythagoras_as_in_the_design():
    """The first thing a reader of DESIGN.md types: a symbol is callable and runs its graph."""
    a = S.placeholder()
    b = S.placeholder()
    c = (a**2 + b**2) ** 0.5
    assert callable(c)
    assert c(3, 4) == 5.0


def test_pythagoras_feeds_by_placeholder_name():
    a, b = S.placeholder(name="a"), S.placeholder(name="b")
    c = (a**2 + b**2) ** 0.5
    assert c(a=3, b=4) == 5.0
    assert c(b=4, a=3) == 5.0  # keywords, not positions
    assert c(3, b=4) == 5.0


def test_pythagoras_gradients():
    """dc/da = a/c, dc/db = b/c."""
    a, b = S.placeholder(name="a"), S.placeholder(name="b")
    c = (a**2 + b**2) ** 0.5
    da, db = S.grad(c, [a, b])
    f = S.compile([da, db], inputs=[a, b])
    np.testing.assert_allclose(f(3.0, 4.0), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(da(3.0, 4.0), 0.6, rtol=1e-6)  # a gradient symbol is callable too


# ---- a single neuron ----------------------------------------------------------------------


def test_neuron_gradients_match_eager(rng):
    """tanh(w*x + b): value and gradients w.r.t. x, w and b, compiled vs eager (float64)."""
    x0, w0, b0 = rng.normal(size=(5,)), rng.normal(size=(5,)), rng.normal(size=())
    x = S.placeholder((5,), "float64", name="x")
    w = S.variable(w0, name="w", dtype="float64")
    b = S.variable(b0, name="b", dtype="float64")
    out = F.tanh(w * x + b).sum()
    compiled = S.compile([out, *S.grad(out, [x, w, b])], inputs=[x])(x0)

    leaves = [E.tensor(v, requires_grad=True) for v in (x0, w0, b0)]
    xe, we, be = leaves
    out_e = F.tanh(we * xe + be).sum()
    want = [out_e.numpy()] + [g.numpy() for g in E.grad(out_e, leaves)]
    for got, expected in zip(compiled, want, strict=True):
        np.testing.assert_array_equal(got, expected)  # same kernels, same rules: same bits
    np.testing.assert_allclose(compiled[1], w0 * (1 - np.tanh(w0 * x0 + b0) ** 2))


# ---- PyTorch's two-layer network (the "learning PyTorch with examples" tutorial) ---------

N, D_IN, H, D_OUT = 64, 1000, 100, 10
LR = 1e-6


def _two_layer_eager(x0, y0, w1_0, w2_0, steps):
    x, y = E.tensor(x0), E.tensor(y0)
    w1 = E.tensor(w1_0.copy(), requires_grad=True)
    w2 = E.tensor(w2_0.copy(), requires_grad=True)
    losses = []
    for _ in range(steps):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with E.no_grad():
            w1 -= LR * w1.grad
            w2 -= LR * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return losses, (w1.numpy(), w2.numpy())


def test_two_layer_net_trains_the_same_both_ways():
    """One compiled step with updates= replaces the whole eager loop body."""
    rng = np.random.default_rng(0)
    x0, y0 = (rng.standard_normal(s).astype(np.float32) for s in [(N, D_IN), (N, D_OUT)])
    w1_0, w2_0 = (rng.standard_normal(s).astype(np.float32) for s in [(D_IN, H), (H, D_OUT)])
    eager_losses, eager_weights = _two_layer_eager(x0, y0, w1_0, w2_0, steps=50)

    x, y = S.placeholder((N, D_IN), name="x"), S.placeholder((N, D_OUT), name="y")
    w1, w2 = S.variable(w1_0, name="w1"), S.variable(w2_0, name="w2")
    loss = (x.mm(w1).clamp(min=0).mm(w2) - y).pow(2).sum()
    g1, g2 = S.grad(loss, [w1, w2])
    step = S.compile(loss, inputs=[x, y], updates={w1: w1 - LR * g1, w2: w2 - LR * g2})
    losses = [float(step(x0, y0)) for _ in range(50)]

    assert losses[-1] < 0.01 * losses[0]  # it does learn
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for var, want in zip([w1, w2], eager_weights):
        np.testing.assert_allclose(var.node.value.data, want, rtol=1e-5, atol=1e-6)


# ---- the digits MLP: eager training vs a compiled training step --------------------------

BATCH = 64


def _digits_mlp() -> nn.Module:
    """Seeded: the accuracy bar must not depend on which tests drew random numbers first."""
    gen = np.random.default_rng(0)
    return nn.Sequential(
        nn.Linear(64, 128, generator=gen),
        nn.ReLU(),
        nn.Linear(128, 64, generator=gen),
        nn.ReLU(),
        nn.Linear(64, 10, generator=gen),
    )


def _fixed_batches(ds, epochs: int) -> list:
    """The same batches for both engines: shuffled once per epoch from a fixed seed."""
    gen = np.random.default_rng(1)
    return [
        b
        for _ in range(epochs)
        for b in data.batches(ds.x_train, ds.y_train, BATCH, generator=gen, drop_last=True)
    ]


def _train_eager(model, batches) -> list:
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for xb, yb in batches:
        loss = F.cross_entropy(model(E.tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _symbolic_train_step(model) -> S.CompiledFunction:
    """loss, S.grad and the optimizer's pure rule, with the momentum held in variables."""
    x = S.placeholder((BATCH, 64), name="x")
    labels = S.placeholder((BATCH,), "int64", name="labels")
    loss = F.cross_entropy(model(x), labels)
    params = list(model.parameters())
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    return S.compile(
        loss, inputs=[x, labels], updates=S.optimizer_updates(opt, S.grad(loss, params))
    )


def _accuracy(model, ds) -> float:
    return float((model(ds.x_test).numpy().argmax(axis=1) == ds.y_test).mean())


def test_digits_mlp_trains_the_same_eagerly_and_compiled():
    ds = data.digits()
    eager_model, symbolic_model = _digits_mlp(), _digits_mlp()
    symbolic_model.load_state_dict(copy.deepcopy(eager_model.state_dict()))
    storages = [p.data for p in symbolic_model.parameters()]
    batches = _fixed_batches(ds, epochs=10)

    eager_losses = _train_eager(eager_model, batches[:100])
    step = _symbolic_train_step(symbolic_model)
    losses = [float(step(xb, yb)) for xb, yb in batches[:100]]
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5, atol=1e-5)
    for p, q in zip(symbolic_model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-4, atol=1e-5, err_msg=p.name)

    for xb, yb in batches[100:]:  # a few more epochs, compiled only
        step(xb, yb)
    assert all(p.data is s for p, s in zip(symbolic_model.parameters(), storages)), (
        "the compiled step must write the parameters' own storage"
    )
    assert _accuracy(symbolic_model, ds) >= 0.95


# ---- an Elman RNN over variable-length sequences -----------------------------------------

T, B, D, HIDDEN = 6, 4, 3, 5
LENGTHS = np.array([6, 2, 4, 1])


def _padded_sequences(rng):
    """Time-major (T, B, D) inputs, zero past each sequence's length, and the (T, B, 1) mask."""
    mask = (np.arange(T)[:, None] < LENGTHS[None, :])[..., None]
    xs = rng.standard_normal((T, B, D)).astype(np.float32) * mask
    return xs, mask


def _rnn_eager(cell, xs, cotangent):
    """A Python loop per example, over its true length only."""
    finals = []
    for b, length in enumerate(LENGTHS):
        h = E.zeros(1, HIDDEN)
        for t in range(length):
            h = cell(E.tensor(xs[t, b : b + 1]), h)
        finals.append(h)
    h_final = F.concat(finals, axis=0)
    grads = E.grad((h_final * cotangent).sum(), list(cell.parameters()))
    return [h_final.numpy()] + [g.numpy() for g in grads]


def _rnn_symbolic(cell, xs, mask, cotangent):
    """One scan over the padded batch; finished sequences keep their state (masking)."""
    x = S.placeholder((T, B, D), name="xs")
    m = S.placeholder((T, B, 1), "bool", name="mask")

    def step(h, inputs):
        x_t, m_t = inputs
        return F.where(m_t, cell(x_t, h), h), None

    h_final, ys = F.scan(step, S.constant(np.zeros((B, HIDDEN), np.float32)), (x, m))
    assert ys is None
    grads = S.grad((h_final * cotangent).sum(), list(cell.parameters()))
    return S.compile([h_final, *grads], inputs=[x, m])(xs, mask)


def test_rnn_scan_with_masking_matches_a_loop_per_example(rng):
    cell = nn.RNNCell(D, HIDDEN, generator=1)
    xs, mask = _padded_sequences(rng)
    cotangent = rng.standard_normal((B, HIDDEN)).astype(np.float32)
    want = _rnn_eager(cell, xs, cotangent)
    got = _rnn_symbolic(cell, xs, mask, cotangent)
    names = ["h_final"] + [name for name, _ in cell.named_parameters()]
    for name, g, w in zip(names, got, want, strict=True):
        assert g.dtype == np.float32, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("length", [1, T])
def test_rnn_scan_of_a_single_sequence_equals_its_loop(length, rng):
    """No masking at all when every step is real: the scan is the loop, unrolled at run time."""
    cell = nn.RNNCell(D, HIDDEN, generator=2)
    xs0 = rng.standard_normal((length, 1, D)).astype(np.float32)
    h = E.zeros(1, HIDDEN)
    for t in range(length):
        h = cell(E.tensor(xs0[t]), h)
    x = S.placeholder((length, 1, D), name="xs")
    h_final, _ = F.scan(
        lambda h, x_t: (cell(x_t, h), None), S.constant(np.zeros((1, HIDDEN), np.float32)), x
    )
    np.testing.assert_allclose(h_final(xs0), h.numpy(), rtol=1e-6, atol=1e-7)
