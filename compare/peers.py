"""Peer frameworks for reference rows: PyTorch eager, `torch.compile` and `jax.jit`.

A zoo model with a `peer(m, params, *inputs)` function is written once against a small op
namespace `m` (relu, tanh, cross_entropy; operators do the rest), which each peer fills in.
A missing framework is a note in the report, never a crash.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

PEERS = ("torch", "jax")  # what --peers accepts


@dataclass
class PeerStep:
    mode: str  # the row's name
    step: Callable[[], Any]  # one forward and backward; returns [loss, *grads]
    to_numpy: Callable[[Any], list[np.ndarray]]
    compile_s: float | None  # None: compiled lazily, inside the first call
    note: str = ""


def load(name: str) -> tuple[Any, str]:
    """The framework's module, or None and why not."""
    try:
        return importlib.import_module(name), ""
    except ImportError as exc:  # also a module set to None in sys.modules (the tests do)
        return None, f"{name} is not installed ({exc}); its rows are left out"


def version_line(name: str) -> str:
    module, why = load(name)
    return why or f"{name} {module.__version__}"


# ---- torch -------------------------------------------------------------------------------


def _torch_ops(torch: Any) -> SimpleNamespace:
    return SimpleNamespace(
        relu=torch.relu, tanh=torch.tanh, cross_entropy=torch.nn.functional.cross_entropy
    )


def torch_steps(
    torch: Any,
    peer: Callable,
    params: list[np.ndarray],
    inputs: dict[str, np.ndarray],
    wrt: tuple[str, ...],
) -> list[PeerStep]:
    """torch eager and torch.compile: the loss, then torch.autograd.grad."""
    ops = _torch_ops(torch)
    leaves = [torch.from_numpy(p.copy()).requires_grad_() for p in params]
    feeds = [torch.from_numpy(np.array(v)).requires_grad_(k in wrt) for k, v in inputs.items()]
    targets = leaves + [t for k, t in zip(inputs, feeds) if k in wrt]

    def loss_fn(*args: Any) -> Any:
        return peer(ops, list(args[: len(leaves)]), *args[len(leaves) :])

    def make(fn: Callable) -> Callable[[], Any]:
        def step() -> list:
            loss = fn(*leaves, *feeds)
            return [loss, *torch.autograd.grad(loss, targets)]

        return step

    def to_numpy(values: list) -> list[np.ndarray]:
        return [v.detach().numpy() for v in values]

    return [
        PeerStep("torch eager", make(loss_fn), to_numpy, None),
        PeerStep(
            "torch.compile",
            make(torch.compile(loss_fn, dynamic=False)),
            to_numpy,
            None,
            "torch.compile compiles inside its first call",
        ),
    ]


# ---- jax ---------------------------------------------------------------------------------


def jax_ops(jax: Any) -> SimpleNamespace:
    jnp = jax.numpy

    def cross_entropy(logits: Any, labels: Any) -> Any:
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))

    return SimpleNamespace(relu=jax.nn.relu, tanh=jnp.tanh, cross_entropy=cross_entropy)


def jax_steps(
    jax: Any,
    peer: Callable,
    params: list[np.ndarray],
    inputs: dict[str, np.ndarray],
    wrt: tuple[str, ...],
) -> list[PeerStep]:
    """jax.jit of value_and_grad, lowered and compiled ahead of the first call."""
    ops = jax_ops(jax)
    names = list(inputs)
    arrays = {
        k: jax.numpy.asarray(v.astype(np.int32) if v.dtype == np.int64 else v)
        for k, v in inputs.items()
    }
    diff = ([jax.numpy.asarray(p) for p in params], [arrays[k] for k in names if k in wrt])
    rest = [arrays[k] for k in names if k not in wrt]

    def loss(diff: tuple, rest: list) -> Any:
        given, others = iter(diff[1]), iter(rest)
        feeds = [next(given) if k in wrt else next(others) for k in names]
        return peer(ops, diff[0], *feeds)

    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(diff, rest).compile()
    compile_s = time.perf_counter() - start

    def step() -> Any:
        return jax.block_until_ready(compiled(diff, rest))

    def to_numpy(result: Any) -> list[np.ndarray]:
        value, (grad_params, grad_inputs) = result
        return [np.asarray(v) for v in [value, *grad_params, *grad_inputs]]

    return [PeerStep("jax.jit", step, to_numpy, compile_s)]


def peer_steps(
    name: str,
    peer: Callable,
    params: list[np.ndarray],
    inputs: dict[str, np.ndarray],
    wrt: tuple[str, ...],
) -> tuple[list, str]:
    """The rows of peer `name` for one model, or none and a note saying why."""
    module, why = load(name)
    if module is None:
        return [], why
    make = torch_steps if name == "torch" else jax_steps
    try:
        return make(module, peer, params, inputs, wrt), ""
    except Exception as exc:  # a peer that cannot build its step is reported, not fatal
        return [], f"{name}: could not build the step ({type(exc).__name__}: {exc})"


# ---- onnxruntime: the same graph, exported ----------------------------------------------


def compare_with_onnxruntime(
    f: Any,
    inputs: list,
    opset: int = 17,
    target_ms: float = 20,
    repeats: int = 5,
    threads: int = 1,
) -> tuple[float, float]:
    """(diptych seconds, onnxruntime seconds): the median time per call of `f` and of its
    exported graph in onnxruntime, fed the same inputs, raced interleaved
    (`compare.timing.race`), each on `threads` threads (BLAS's for diptych)."""
    from compare.timing import race, thread_limit
    from symbolic.serialize.onnx import (
        onnxruntime_session,
        to_onnx,
    )  # the `export` extra, used here only

    session = onnxruntime_session(to_onnx(f, opset), threads)
    feeds = {i.name: np.asarray(v) for i, v in zip(session.get_inputs(), inputs)}
    with thread_limit(threads):
        stats = race(
            {"diptych": lambda: f(*inputs), "onnxruntime": lambda: session.run(None, feeds)},
            target_ns=int(target_ms * 1e6),
            repeats=repeats,
            warmup=1,
        )
    return stats["diptych"].median / 1e9, stats["onnxruntime"].median / 1e9
