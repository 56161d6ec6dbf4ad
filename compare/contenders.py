"""What `diptych bench` and benchmarks/ race: the digits MLP's SGD step written five ways
(diptych eager and compiled, torch, jax.jit, numpy by hand), the MLP forward by hand, and
elementwise chains by hand (numba) or compiled by jax and torch, with the bandwidth probe."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

import eager as E
import symbolic as S
from common import data, nn, optim
from common import functional as F
from compare import peers, zoo

NOT_INSTALLED = "not installed"


def peer(name: str) -> tuple[Any, str]:
    """The module, or None and the status its rows show."""
    module, _ = peers.load(name)
    return module, "" if module is not None else NOT_INSTALLED


# ---- the contenders: the digits step every way (rows 1, 2, 7) -----------------------------

SIZES = (64, 128, 64, 10)  # 64 pixels -> 128 -> 64 -> 10 classes
BATCH, LR = 64, 0.1
LOSS_TOLERANCE = 1e-4


def build_mlp(nn_module: Any, sizes: tuple[int, ...] = SIZES) -> Any:
    """The same ReLU MLP from diptych's `nn` or `torch.nn` (they share Linear/ReLU/Sequential)."""
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn_module.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn_module.ReLU())
    return nn_module.Sequential(*layers)


def training_setup() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A digits batch and the initial weights (diptych's init, seed 0) every contender uses."""
    digits = data.digits()
    E.manual_seed(0)
    weights = [p.numpy().copy() for p in build_mlp(nn).parameters()]
    return digits.x_train[:BATCH], digits.y_train[:BATCH], weights


def framework_step(model: Any, opt: Any, cross_entropy: Callable, x: Any, y: Any) -> Any:
    """One eager training step, written as a user of diptych or torch writes it."""
    opt.zero_grad()
    loss = cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def make_diptych_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Callable:
    model = build_mlp(nn)
    for p, w in zip(model.parameters(), weights, strict=True):
        p.copy_(w)
    opt = optim.SGD(model.parameters(), lr=LR)
    return partial(framework_step, model, opt, F.cross_entropy, E.from_numpy(x), y)


def make_torch_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Callable:
    import torch

    model = build_mlp(torch.nn)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(torch.from_numpy(w))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    cross_entropy = torch.nn.functional.cross_entropy
    x_t, y_t = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    return partial(framework_step, model, opt, cross_entropy, x_t, y_t)


def _softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple:
    """Mean loss and its gradient w.r.t. the logits, stable by max-subtraction."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s).mean() - z[rows, y].mean()
    grad = e / s
    grad[rows, y] -= 1
    grad /= len(y)
    return loss, grad


def numpy_step(layers: list[tuple], x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Any:
    """Forward, backpropagation and SGD in place, by hand (ReLU between layers)."""
    acts = [x]
    for i, (w, b) in enumerate(layers):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0, out=z) if i < len(layers) - 1 else z)
    loss, grad = _softmax_cross_entropy(acts[-1], y, rows)
    for i in reversed(range(len(layers))):
        w, b = layers[i]
        below = grad @ w if i > 0 else None  # before w changes
        gw, gb = grad.T @ acts[i], grad.sum(axis=0)
        if below is not None:
            grad = below * (acts[i] > 0)  # ReLU: acts[i] = relu(z) > 0 exactly where z > 0
        w -= LR * gw
        b -= LR * gb
    return loss


def make_numpy_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Callable:
    copies = [w.copy() for w in weights]
    return partial(numpy_step, list(zip(copies[0::2], copies[1::2])), x, y, np.arange(len(y)))


def compile_training_step(weights: list[np.ndarray], optimize: int) -> S.CompiledFunction:
    """The digits MLP's whole SGD step as one compiled graph; it updates the model in place."""
    model = build_mlp(nn)
    for p, w in zip(model.parameters(), weights, strict=True):
        p.copy_(w)
    x = S.placeholder((BATCH, SIZES[0]), name="x")
    t = S.placeholder((BATCH,), "int64", name="t")
    loss = F.cross_entropy(model(x), t)
    params = list(model.parameters())
    updates = {p: p - LR * g for p, g in zip(params, S.grad(loss, params))}
    return S.compile(loss, inputs=[x, t], updates=updates, optimize=optimize)


def make_compiled_step(
    weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, optimize: int = 2
) -> Callable:
    return partial(compile_training_step(weights, optimize), x, y)


def make_jax_step(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> Callable:
    """value_and_grad and SGD jitted as one function, on the zoo's jax peer of mlp_digits."""
    import jax

    ops, loss_of = peers.jax_ops(jax), zoo.get("mlp_digits").peer

    def train(params: list, x: Any, y: Any) -> tuple:
        loss, grads = jax.value_and_grad(lambda p: loss_of(ops, p, x, y))(params)
        return [p - LR * g for p, g in zip(params, grads)], loss

    jitted, state = jax.jit(train), [[jax.numpy.asarray(w.copy()) for w in weights]]
    x_dev, y_dev = jax.numpy.asarray(x), jax.numpy.asarray(y.astype(np.int32))

    def step() -> Any:
        state[0], loss = jitted(state[0], x_dev, y_dev)
        return loss.block_until_ready()

    return step


def first_losses(steps: dict[str, Callable]) -> dict[str, list[float]]:
    """Each step's loss at steps 1 and 2 (so after one update), from the same start: steps
    that disagree are not doing the same work."""
    return {name: [float(step().item()) for _ in range(2)] for name, step in steps.items()}


# ---- the contenders: forward by hand, elementwise chains by hand (rows 3, 5, 6) -----------

FORWARD_SIZES = (784, 256, 256, 10)


def numpy_forward(layers: list[tuple], x: np.ndarray, transposed: bool = True) -> np.ndarray:
    """x @ W.T + b, ReLU between layers; `transposed`: the layers hold W.T (made contiguous
    once, ahead of time), not W."""
    for i, (w, b) in enumerate(layers):
        x = x @ (w if transposed else w.T) + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


def pythagoras(m: Any, x: Any, y: Any) -> Any:
    """Written once against a module `m`: diptych's F, numpy, torch or jax.numpy."""
    return m.sqrt(x * x + y * y)


def gelu(m: Any, x: Any) -> Any:
    return 0.5 * x * (1 + m.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


@functools.cache
def numba_by_hand() -> tuple[Callable, Callable]:
    """The triad b + s*c (STREAM's bandwidth probe) and sqrt(a*a+b*b), each one parallel loop
    writing into `out`: what a programmer writes with numba."""
    import numba

    @numba.njit(parallel=True)
    def triad(out: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:
        for i in numba.prange(out.size):
            out[i] = b[i] + s * c[i]

    @numba.njit(parallel=True)
    def hypot(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        for i in numba.prange(out.size):
            out[i] = np.sqrt(a[i] * a[i] + b[i] * b[i])

    return triad, hypot


def triad_probe(n: int) -> tuple[str, Callable[[], Any], int]:
    """(name, call, bytes each call moves) of the bandwidth probe on `n` float32: numba's
    parallel triad, or without numba a copy split over the cores by the fused kernels'
    thread pool (numpy releases the GIL)."""
    from common.fusion import _pool

    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    if peer("numba")[0] is not None:
        return "numba triad", partial(numba_by_hand()[0], a, b, c, np.float32(3)), 3 * a.nbytes
    cores = os.cpu_count() or 1
    blocks = [slice(i * n // cores, (i + 1) * n // cores) for i in range(cores)]

    def parallel_copy() -> None:
        list(_pool.map(lambda s: np.copyto(a[s], b[s]), blocks))

    return "parallel copy", parallel_copy, 2 * a.nbytes


def chain_peers(
    fn: Callable, arrays: list[np.ndarray], torch_compile: bool, missing: dict[str, str]
) -> dict[str, Callable[[], Any]]:
    """jax.jit and torch.compile of `fn(m, *arrays)`, compiled before any timing; `missing`
    gets why one is not there."""
    found = {}
    jax, missing["jax.jit"] = peer("jax")
    if jax is not None:
        jitted, xs = jax.jit(partial(fn, jax.numpy)), [jax.numpy.asarray(a) for a in arrays]
        found["jax.jit"] = lambda: jitted(*xs).block_until_ready()
    torch, missing["torch.compile"] = peer("torch")
    if torch is not None and not torch_compile:
        missing["torch.compile"] = "left out (--quick)"
    elif torch is not None:
        try:
            compiled, ts = torch.compile(partial(fn, torch)), [torch.from_numpy(a) for a in arrays]
            compiled(*ts)
            found["torch.compile"] = partial(compiled, *ts)
        except Exception as exc:  # noqa: BLE001 (a C++ compiler may be missing, say)
            missing["torch.compile"] = f"failed ({type(exc).__name__})"
    return found
