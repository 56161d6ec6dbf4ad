"""The cupy backend against numpy, op by op from the registry, eagerly and compiled.
Skipped where cupy or a CUDA GPU is absent (CI has neither)."""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common.backend import cuda_available
from common.dispatch import apply
from common.ops import OPS

pytestmark = pytest.mark.skipif(not cuda_available(), reason="needs cupy and a CUDA GPU")

CASES = [(name, i) for name, op in sorted(OPS.items()) if op.samples and op.kind != "control"
         for i in range(len(op.samples(np.random.default_rng(0))))]


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
