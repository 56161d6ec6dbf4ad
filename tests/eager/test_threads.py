"""Grad mode, the engine scope and the graph recorders belong to each thread (as torch's grad
mode does): eight threads are forced to overlap (a Barrier, a tiny switch interval) and each
must see only its own state."""

import sys
import threading

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import nn

THREADS = 8


@pytest.fixture(autouse=True)
def frequent_switches():
    """Switch threads every microsecond, so that unprotected shared state shows up at once."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def run_threads(work, count: int = THREADS) -> list:
    """work(index) in `count` threads started together; their results, in index order.
    An exception in any thread is raised here (the first, by index)."""
    results, errors = [None] * count, [None] * count
    start = threading.Barrier(count)

    def body(index: int) -> None:
        start.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:  # handed to the main thread below
            errors[index] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


class Turns:
    """Lets threads 0, 1, 2, ... run one step each, one at a time, in index order."""

    def __init__(self) -> None:
        self._next = 0
        self._changed = threading.Condition()

    def take(self, index: int, step) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._next == index)
            step()
            self._next += 1
            self._changed.notify_all()


# ---- grad mode -----------------------------------------------------------------------------


def test_concurrent_backward_on_independent_graphs():
    """backward() switches grad mode off while it runs; other threads must keep recording."""

    def work(index: int) -> None:
        rng = np.random.default_rng(index)
        for _ in range(20):
            x = E.tensor(rng.normal(size=4), requires_grad=True)
            ((x * x).sum() * (index + 1)).backward()
            np.testing.assert_allclose(x.grad.numpy(), 2 * (index + 1) * x.numpy(), rtol=1e-6)

    run_threads(work)
    assert E.is_grad_enabled()


@pytest.mark.parametrize("shared", [False, True], ids=["own-instance", "shared-instance"])
def test_no_grad_in_some_threads_leaves_the_others_recording(shared):
    """Even threads enter no_grad one after another and leave in the same (not nested)
    order; odd threads never enter it and must record throughout."""
    common_guard = E.no_grad()
    entering, leaving = Turns(), Turns()
    all_inside = threading.Barrier(THREADS)
    all_outside = threading.Barrier(THREADS)

    def work(index: int) -> tuple:
        guard = common_guard if shared else E.no_grad()
        x = E.tensor([1.0, 2.0], requires_grad=True)
        inside = index % 2 == 0
        if inside:
            entering.take(index // 2, guard.__enter__)
        all_inside.wait()
        while_inside = (x * 2).requires_grad
        all_inside.wait()
        if inside:
            leaving.take(index // 2, lambda: guard.__exit__(None, None, None))
        all_outside.wait()
        return while_inside, (x * 2).requires_grad, E.is_grad_enabled()

    results = run_threads(work)
    assert results == [(index % 2 == 1, True, True) for index in range(THREADS)]
    assert E.is_grad_enabled() and (E.tensor([1.0], requires_grad=True) * 2).requires_grad


def records() -> bool:
    """Whether an op on a leaf that requires grad was recorded."""
    return (E.tensor([1.0], requires_grad=True) * 2).requires_grad


def test_one_no_grad_decorator_used_by_many_threads():
    """Even threads call a @no_grad() function, odd threads record, all at once."""
    silent = E.no_grad()(records)
    results = run_threads(
        lambda index: {(silent if index % 2 == 0 else records)() for _ in range(200)}
    )
    assert results == [{index % 2 == 1} for index in range(THREADS)]
    assert E.is_grad_enabled()


# ---- tracing in one thread, eager calls in others ------------------------------------------


class Gated(nn.Module):
    """A layer whose forward waits at `gate` (when set) before and after its parameter-only
    op: every thread is then inside forward at once, tracers inside their engine scope."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
        self.gate: threading.Barrier | None = None

    def forward(self, x):
        self._wait()
        scaled = self.weight * 2.0  # parameters alone: the engine scope decides who runs it
        y = F.tanh(x @ scaled)
        self._wait()
        return y

    def _wait(self) -> None:
        if self.gate is not None:
            self.gate.wait()


def test_tracing_in_some_threads_while_others_run_the_model_eagerly():
    """Threads 0 and 4 trace the model, 1 and 5 compile it (S.function), the others call it
    eagerly on arrays or tensors: each gets its own kind of result, with the right values."""
    model = Gated()
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    expected = np.tanh(x @ (model.weight.numpy() * 2.0))
    reference = sorted(n.op_name for n in S.trace(model, x).nodes)
    model.gate = threading.Barrier(THREADS)

    def work(index: int):
        if index % 4 == 0:
            return sorted(n.op_name for n in S.trace(model, x).nodes)
        if index % 4 == 1:
            return S.function(model)(x)
        return model(x if index % 2 else E.tensor(x))

    results = run_threads(work)
    for index, result in enumerate(results):
        if index % 4 == 0:
            assert result == reference  # only this thread's nodes were recorded
        else:
            assert isinstance(result, np.ndarray if index % 4 == 1 else E.Tensor), index
            np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-6)
