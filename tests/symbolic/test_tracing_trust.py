"""S.function can be trusted: a graph follows the module's train/eval mode, the report shows
what was frozen from Python, concurrent first calls trace once, the cache is bounded and
says so, and deeply nested control flow and long chains trace without RecursionError."""

import gc
import sys
import threading
import time
import weakref

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import nn

HERE = "test_tracing_trust.py"


# ---- module mode is part of the signature --------------------------------------------------


def _dropout_model() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))


def test_eval_after_a_train_mode_trace_retraces_without_dropout(rng):
    model = _dropout_model()
    fast = S.function(model, optimize=0)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    trained = fast(x)
    assert (trained == 0).any()  # dropout was on
    model.eval()
    np.testing.assert_array_equal(fast(x), model(E.tensor(x)).numpy())
    assert fast.retraces == 1
    assert "train -> eval" in fast.explanations[-1]
    assert "Sequential" in fast.explanations[-1] and "1 (Dropout)" in fast.explanations[-1]
    model.train()
    fast(x)  # back to the first graph: cached per mode
    assert (fast.traces, fast.retraces) == (2, 1)


def test_a_function_that_calls_a_model_follows_its_mode(rng):
    model = _dropout_model()

    @S.function
    def double(x):
        return 2 * model(x)

    x = rng.normal(size=(4, 6)).astype(np.float32)
    double(x)
    model[1].eval()  # only the submodule the function reaches through the model
    np.testing.assert_allclose(double(x), 2 * model(E.tensor(x)).numpy(), rtol=1e-6)
    assert double.retraces == 1 and "train -> eval" in double.explanations[-1]


# ---- the report lists what was frozen from Python ------------------------------------------

SCALE = 3.0
OFFSET = np.array([1.0, 2.0], np.float32)


def _scaled(x):
    return x * SCALE + OFFSET  # a global float and a global array, frozen when traced


def test_report_lists_python_values_baked_in_with_their_lines():
    f = S.function(_scaled)
    np.testing.assert_array_equal(f(np.ones(2, np.float32)), [4.0, 5.0])
    line = f"{HERE}:{_scaled.__code__.co_firstlineno + 1}: return x * SCALE + OFFSET"
    text = str(f.report)
    assert "3.0 (a Python float) in mul" in text and line in text
    assert any("[1., 2.]" in c and line in c for c in f.report.constants)
    assert any("3.0" in v and line in v for v in f.report.python_values)


def test_report_lists_python_values_baked_into_control_flow_bodies():
    x = S.placeholder((2,), name="x")
    out = F.cond(F.sum(x) > 0, lambda v: v * SCALE, lambda v: v + OFFSET, x)
    report = S.compile(out, inputs=[x], optimize=0).report
    assert any(v.startswith("3.0 (a Python float) in mul") for v in report.python_values)
    assert any("[1., 2.]" in c for c in report.constants)


def test_report_before_the_first_call_says_to_call_first():
    with pytest.raises(AttributeError, match="call it first"):
        _ = S.function(_scaled).report


# ---- concurrent first calls ----------------------------------------------------------------


def _slow_square(x):
    _slow_square.runs += 1  # Python runs only while tracing
    time.sleep(0.05)  # keeps the threads' traces overlapping
    return x * x


def _call_together(fn, inputs: list) -> list:
    start = threading.Barrier(len(inputs))
    results: list = [None] * len(inputs)

    def worker(i: int) -> None:
        start.wait()
        results[i] = fn(inputs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_first_calls_of_one_signature_trace_once():
    _slow_square.runs = 0
    square = S.function(_slow_square, optimize=0)
    inputs = [np.full(3, float(i), np.float32) for i in range(8)]
    for x, got in zip(inputs, _call_together(square, inputs)):
        np.testing.assert_array_equal(got, x * x)
    assert (_slow_square.runs, square.traces, square.retraces, len(square.cache)) == (1, 1, 0, 1)


def test_concurrent_first_calls_of_different_signatures_each_trace(rng):
    _slow_square.runs = 0
    square = S.function(_slow_square, optimize=0, warn_after=100)
    inputs = [rng.normal(size=(n + 1,)).astype(np.float32) for n in range(8)]
    for x, got in zip(inputs, _call_together(square, inputs)):
        np.testing.assert_array_equal(got, x * x)
    assert (_slow_square.runs, square.traces, square.retraces, len(square.cache)) == (8, 8, 7, 8)
    assert len(square.explanations) == 7


# ---- the cache is bounded ------------------------------------------------------------------


def test_cache_keeps_at_most_max_cache_graphs_and_says_why_it_filled():
    step = S.function(lambda x, lr: x * lr, optimize=0, warn_after=10**6)
    x = np.ones(2, np.float32)
    step(x, 0.0)
    first = weakref.ref(next(iter(step.cache.values())))
    for i in range(1, 300):
        np.testing.assert_allclose(step(x, i / 300), [i / 300] * 2, rtol=1e-6)
    assert len(step.cache) == S.tracing.DEFAULT_MAX_CACHE == 64
    assert (step.traces, step.retraces) == (300, 299)
    gc.collect()
    assert first() is None  # an evicted graph is freed
    assert "the cache is full (max_cache=64)" in step.explanations[-1]
    assert "64 of them differ only in argument lr, a Python float" in step.explanations[-1]
    assert "pass it as an array" in step.explanations[-1]


def test_max_cache_is_per_function_and_least_recently_used_goes_first():
    scale = S.function(lambda x, k: x * k, optimize=0, max_cache=2, warn_after=100)
    x = np.ones(2, np.float32)
    scale(x, 1)
    scale(x, 2)
    scale(x, 1)  # 1 is now the most recently used
    scale(x, 3)  # evicts 2
    assert [key[0][1][2] for key in scale.cache] == [1, 3]
    scale(x, 2)
    assert "was traced before, but its graph had been dropped" in scale.explanations[-1]


# ---- deep nesting and long chains ----------------------------------------------------------

DEPTH = 150


def _nested_cond(x, depth: int):
    if depth == 0:
        return x + 1
    return F.cond(F.sum(x) > -1e9, lambda v: _nested_cond(v, depth - 1), lambda v: v - 1, x)


def _nested_scan(x, depth: int):
    if depth == 0:
        return x + 1
    step = lambda c, s: (_nested_scan(c, depth - 1) + s, None)  # noqa: E731
    carry, _ = F.scan(step, x, F.expand_dims(x * 0, 0))
    return carry


@pytest.mark.parametrize("optimize", [0, 2])
@pytest.mark.parametrize("nested", [_nested_cond, _nested_scan], ids=["cond", "scan"])
def test_control_flow_nested_150_deep_traces_like_eager(nested, optimize):
    x0 = np.arange(3, dtype=np.float32)
    want = nested(x0, DEPTH)  # eager: plain Python recursion
    x = S.placeholder((3,), name="x")
    f = S.compile(nested(x, DEPTH), inputs=[x], optimize=optimize)
    np.testing.assert_array_equal(f(x0), want)


def test_nested_control_flow_restores_the_recursion_limit():
    limit = sys.getrecursionlimit()
    _nested_cond(S.placeholder((3,)), 20)
    assert sys.getrecursionlimit() == limit


def test_a_10000_node_chain_compiles_runs_and_differentiates():
    x = S.placeholder((3,), name="x")
    y = x
    for _ in range(10_000):
        y = y + 1
    x0 = np.zeros(3, np.float32)
    # fusion grows a group one member per sweep (quadratic: 40 s for this chain), and the
    # test suite fuses even 3-element arrays; users' small arrays skip fusion
    for optimize in (0, 2):
        f = S.compile(y, inputs=[x], optimize=optimize, disable="fusion")
        np.testing.assert_array_equal(f(x0), [10_000.0] * 3)
    (g,) = S.grad(F.sum(y), [x])
    np.testing.assert_array_equal(S.compile(g, inputs=[x], optimize=0)(x0), [1.0] * 3)
