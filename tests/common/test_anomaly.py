"""Anomaly mode (`common.detect_anomaly()`), both engines: a NaN or inf planted in the forward
and in the backward pass is reported at the user's line, with the op that produced it (in a
backward pass, the forward op whose gradient it was and that op's line); a compiled plan is
stepped node by node to find it, fused groups member by member."""

import importlib
import pathlib
import threading

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import anomaly, detect_anomaly
from common import functional as F
from common.anomaly import AnomalyError

THIS_FILE = pathlib.Path(__file__)
N = 256  # 65,536 elements: enough to be fused (fusion.MIN_ELEMENTS)
pytestmark = pytest.mark.filterwarnings("ignore:(divide by zero|invalid value):RuntimeWarning")


def _line(marker: str) -> str:
    """`test_anomaly.py:N: code` of the line of this file that ends with `# marker`."""
    lines = THIS_FILE.read_text().splitlines()
    number, text = next((i, t.strip()) for i, t in enumerate(lines, 1) if t.endswith(f"# {marker}"))
    return f"{THIS_FILE.name}:{number}: {text}"


def eager_engine_checks():
    """The eager engine's kernel runner wrapped to call `anomaly.check` after each kernel,
    as `Tensor._apply` is to do itself (its one-line hook); None once it does. The wrapper's
    code is marked as diptych's own, as the hook will be, so the user's line skips it."""
    tensor_module = importlib.import_module("eager.tensor")
    if any("anomaly" in name for name in tensor_module.Tensor._apply.__code__.co_names):
        return None
    run_kernel = tensor_module.run_kernel

    def checked(op, arrays, params):
        out = run_kernel(op, arrays, params)
        out = np.asarray(out) if isinstance(out, np.generic) else out
        if anomaly.active():
            anomaly.check(op, out, arrays)
        return out

    checked.__code__ = checked.__code__.replace(co_filename=anomaly.__file__)
    return checked


@pytest.fixture(autouse=True)
def _eager_hook(monkeypatch):
    checked = eager_engine_checks()
    if checked is not None:
        monkeypatch.setattr(importlib.import_module("eager.tensor"), "run_kernel", checked)


# ---- programs, with the lines the reports must name ----------------------------------------


def log_of(x):
    y = x * 2.0  # scale
    return F.log(y)  # log


def norm_of(v):
    s = F.sum(v * v)  # square
    return F.sqrt(s)  # sqrt


def _zero_at_corner(shape=(3,)) -> np.ndarray:
    x = np.ones(shape, np.float32)
    x.flat[0] = 0.0
    return x


def _raises(call) -> AnomalyError:
    with detect_anomaly(), pytest.raises(AnomalyError) as caught:
        call()
    return caught.value


# ---- eager ---------------------------------------------------------------------------------


def test_an_eager_forward_anomaly_names_the_op_and_the_users_line():
    error = _raises(lambda: log_of(E.tensor(_zero_at_corner())))
    assert isinstance(error, FloatingPointError)
    assert (error.op, error.line, error.backward_of) == ("log", _line("log"), "")
    assert "log produced -inf in 1 of 3 values from finite inputs" in str(error)
    assert "F.clamp(x, min=1e-12)" in str(error)  # the hint for log


def test_an_eager_backward_anomaly_names_the_forward_op_and_its_line():
    v = E.tensor(np.zeros(3, np.float32), requires_grad=True)
    with detect_anomaly():
        n = norm_of(v)  # forward: sqrt(0) = 0 is fine
    assert float(n.item()) == 0.0
    with detect_anomaly(), pytest.raises(AnomalyError) as caught:
        n.backward()  # backward call
    error = caught.value
    assert (error.op, error.backward_of, error.line) == ("div", "sqrt", _line("sqrt"))
    assert "in the backward pass of sqrt" in str(error)
    assert f"backward was called at {_line('backward call')}" in str(error)


def test_a_backward_pass_of_values_made_before_anomaly_mode_still_names_the_op():
    v = E.tensor(np.zeros(3, np.float32), requires_grad=True)
    n = norm_of(v)
    error = _raises(n.backward)
    assert (error.op, error.backward_of) == ("div", "sqrt")
    assert "a line not recorded" in str(error)


def test_an_input_that_already_holds_nan_is_reported_as_such():
    x = np.ones(3, np.float32)
    x[1] = np.nan
    error = _raises(lambda: log_of(E.tensor(x)))
    assert (error.op, error.line) == ("mul", _line("scale"))
    assert "got NaN or inf in input 0 (NaN in 1 of 3 values)" in str(error)
    assert "no op produced it" in str(error)


def test_large_finite_values_whose_sum_overflows_are_not_an_anomaly():
    huge = E.tensor(np.full(4, 3e38, np.float32))
    with detect_anomaly():
        assert np.isfinite((huge * 1.0).numpy()).all()


def test_outside_anomaly_mode_nan_passes_silently():
    assert np.isneginf(log_of(E.tensor(_zero_at_corner())).numpy()[0])


def test_anomaly_mode_is_per_thread_restored_on_exit_and_works_as_a_decorator():
    seen = []
    with detect_anomaly():
        with detect_anomaly():
            assert anomaly.active()
        assert anomaly.active()
        worker = threading.Thread(target=lambda: seen.append(anomaly.active()))
        worker.start()
        worker.join()
    assert seen == [False] and not anomaly.active()

    @detect_anomaly()
    def checked():
        return log_of(E.tensor(_zero_at_corner()))

    with pytest.raises(AnomalyError):
        checked()
    assert not anomaly.active()


# ---- compiled ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _numpy_fusion(monkeypatch):
    """Fused kernels run with numpy, whatever is installed: the debugger's unfused steps."""
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numpy")


@pytest.mark.parametrize("optimize", [0, 2])
def test_a_compiled_forward_anomaly_names_the_op_and_the_users_line(optimize):
    x = S.placeholder((N, N), name="x")
    f = S.compile(F.sum(log_of(x)), inputs=[x], optimize=optimize)
    if optimize:
        assert any(n.op_name.startswith("fused_") for n in f.graph.ops)  # log runs fused
    error = _raises(lambda: f(_zero_at_corner((N, N))))
    assert (error.op, error.line, error.backward_of) == ("log", _line("log"), "")
    assert f"log produced -inf in 1 of {N * N} values from finite inputs" in str(error)


@pytest.mark.parametrize("optimize", [0, 2])
def test_a_compiled_backward_anomaly_names_the_forward_op_and_its_line(optimize):
    v = S.variable(np.zeros(3, np.float32), name="v")
    n = norm_of(v)
    (g,) = S.grad(n, [v])
    step = S.compile(n, inputs=[], updates={v: v - 0.1 * g}, optimize=optimize)
    error = _raises(step)
    assert (error.op, error.backward_of, error.line) == ("div", "sqrt", _line("sqrt"))
    assert np.array_equal(v.node.value.data, np.zeros(3))  # the update was not written
    assert step.calls == 0


def test_a_nan_fed_to_a_compiled_function_is_reported_as_fed():
    x = S.placeholder((3,), name="x")
    f = S.compile(log_of(x), inputs=[x])
    fed = np.array([1.0, np.nan, 2.0], np.float32)
    error = _raises(lambda: f(fed))
    assert (error.op, error.line) == ("mul", _line("scale"))
    assert "input 0, placeholder 'x' (NaN in 1 of 3 values)" in str(error)


def test_a_clean_call_in_anomaly_mode_gives_the_plans_results_and_updates():
    w = S.variable(np.full(3, 2.0, np.float32), name="w")
    x = S.placeholder((3,), name="x")
    loss = F.sum(log_of(x * w))
    (g,) = S.grad(loss, [w])
    step = S.compile([loss, g], inputs=[x], updates={w: w - 0.1 * g}, optimize=2)
    feed = np.array([1.0, 2.0, 3.0], np.float32)
    with detect_anomaly():
        checked = step(feed)
    after_checked = np.array(w.node.value.data)
    w.node.value.data[...] = 2.0
    plain = step(feed)
    for got, want in zip(checked, plain):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(after_checked, w.node.value.data, rtol=1e-6)
    assert step.calls == 2


def test_a_traced_function_is_checked_too():
    fast = S.function(log_of)
    fast(np.ones(3, np.float32))
    error = _raises(lambda: fast(_zero_at_corner()))
    assert (error.op, error.line) == ("log", _line("log"))
