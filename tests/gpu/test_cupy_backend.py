"""The cupy backend against numpy, op by op from the registry, eagerly and compiled.
Skipped where cupy or a CUDA GPU is absent (CI has neither)."""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common.backend import cuda_available
from common.dispatch import apply
from common.ops import OPS

pytestmark = pytest.mark.skipif(not cuda_available(), reason="needs cupy and a CUDA GPU")

CASES = [
    (name, i)
    for name, op in sorted(OPS.items())
    if op.samples and op.kind != "control"
    for i in range(len(op.samples(np.random.default_rng(0))))
]


def _sample(name, i):
    args, params = OPS[name].samples(np.random.default_rng(0))[i]
    return args, params


@pytest.mark.parametrize("name, i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_eager_on_the_gpu_matches_numpy(name, i):
    args, params = _sample(name, i)
    cpu = apply(OPS[name], *[E.tensor(a) for a in args], **params)
    gpu = apply(OPS[name], *[E.tensor(a, device="cuda") for a in args], **params)
    assert gpu.device == "cuda"
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_compiled_on_the_gpu_matches_numpy(name, i):
    args, params = _sample(name, i)
    holders = [S.placeholder(np.shape(a), np.asarray(a).dtype.name) for a in args]
    out = apply(OPS[name], *holders, **params)
    want = S.compile(out, inputs=holders, optimize=0)(*args)
    got = S.compile(out, inputs=holders, optimize=0, backend="cuda")(*args)
    np.testing.assert_allclose(got.get(), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_gradients_on_the_gpu_match_numpy():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    grads = []
    for device in ("cpu", "cuda"):
        xt = E.tensor(x, device=device, requires_grad=True)
        wt = E.tensor(w, device=device, requires_grad=True)
        (xt @ wt.T).tanh().sum().backward()
        grads.append((xt.grad.numpy(), wt.grad.numpy()))
    for cpu, gpu in zip(*grads):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5)


EXPRESSIONS = {
    "pythagoras": lambda x, y: (x * x + y * y) ** 0.5,
    "gelu": lambda x, y: 0.5 * x * (1 + (0.7978845608 * (x + 0.044715 * x**3)).tanh()),
    "where and clamp": lambda x, y: F.where(x > y, x.clamp(min=0.2), y.sigmoid()),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_fused_kernels_on_the_gpu_match_numpy(name):
    rng = np.random.default_rng(2)
    a, b = rng.random((300, 1000), np.float32), rng.random((300, 1000), np.float32)
    x, y = S.placeholder(a.shape), S.placeholder(b.shape)
    out = EXPRESSIONS[name](x, y)
    want = S.compile(out, inputs=[x, y], optimize=0)(a, b)
    gpu = S.compile(out, inputs=[x, y], optimize=2, backend="cuda")
    assert any(n.op.name.startswith("fused") for n in gpu.graph.ops)
    np.testing.assert_allclose(gpu(a, b).get(), want, rtol=1e-5, atol=1e-6)


def test_a_training_step_on_the_gpu_matches_numpy():
    from common import nn

    results = []
    for backend in ("numpy", "cuda"):
        E.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
        params = list(model.parameters())
        x, t = S.placeholder((16, 20)), S.placeholder((16,), "int64")
        loss = F.cross_entropy(model(x), t)
        grads = S.grad(loss, params)
        step = S.compile(
            loss,
            inputs=[x, t],
            backend=backend,
            updates={p: p - 0.1 * g for p, g in zip(params, grads)},
        )
        rng = np.random.default_rng(3)
        xs, ts = rng.random((16, 20), np.float32), rng.integers(0, 4, 16)
        results.append([float(step(xs, ts)) for _ in range(5)])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5)
