"""Eager autograd behaviour, by hand: accumulation, graph lifetime, grad modes, custom
Functions, and errors that say what to do while leaving every tensor as it was."""

import numpy as np
import pytest

import eager as E
from common import functional as F
from common.backend import DeviceError
from common.ops import DTypeError, ShapeError


def leaf(*values: float) -> E.Tensor:
    """A float64 leaf that requires grad (float64 keeps the expected values exact)."""
    return E.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def snapshot(*tensors: E.Tensor) -> list:
    """Copies of each tensor's data and grad, to prove that a failed call changed nothing."""
    return [(t.numpy().copy(), None if t.grad is None else t.grad.numpy().copy()) for t in tensors]


def assert_unchanged(before: list, *tensors: E.Tensor) -> None:
    for (data, grad), t in zip(before, tensors, strict=True):
        np.testing.assert_array_equal(t.numpy(), data)
        if grad is None:
            assert t.grad is None
        else:
            np.testing.assert_array_equal(t.grad.numpy(), grad)


# ---- accumulation and graph lifetime ----------------------------------------------------


def test_backward_accumulates_over_calls():
    """Two backward passes add up in .grad (as in torch), they do not overwrite it."""
    x = leaf(1.0, 2.0, 3.0)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)


def test_retain_graph_allows_a_second_backward():
    x = leaf(1.0, -2.0)
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 3 * x.numpy() ** 2)


def test_second_backward_explains_retain_graph_and_keeps_grads():
    x, w = leaf(1.0, 2.0, 3.0), leaf(0.5, -1.0, 2.0)
    y = (x * w).sum()
    y.backward()
    before = snapshot(x, w)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    assert_unchanged(before, x, w)


def test_partly_freed_graph_fails_before_touching_any_grad():
    """A fresh branch next to a freed one must not half-run: no leaf gets a partial grad."""
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    h = x * w
    h.sum().backward()
    before = snapshot(x, w)
    z = (h * 2).sum() + (x * x).sum()
    with pytest.raises(RuntimeError, match="retain_graph"):
        z.backward()
    assert_unchanged(before, x, w)


def test_grad_frees_the_graph_too():
    x = leaf(1.0, 2.0)
    y = (x * x).sum()
    E.grad(y, [x])
    with pytest.raises(RuntimeError, match="retain_graph"):
        E.grad(y, [x])
    assert x.grad is None  # E.grad returns gradients; it never stores them


# ---- seeds: non-scalar outputs ----------------------------------------------------------


def test_backward_on_non_scalar_names_shape_and_fix():
    x = E.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        (x * 2).backward()
    message = str(info.value)
    assert "(2, 3)" in message
    assert ".sum()" in message and "grad=" in message
    assert x.grad is None


def test_backward_on_non_scalar_with_grad():
    x = leaf(1.0, 2.0, 3.0)
    seed = np.array([1.0, -2.0, 0.5])
    (x * x).backward(grad=seed)
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * seed)


def test_default_seed_is_one_even_for_an_infinite_output():
    """d(sum x)/dx is 1 everywhere; an overflowing loss must not turn the seed into nan."""
    x = leaf(np.inf, 1.0)
    x.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


# ---- higher order, grad modes, detach, retain_grad ---------------------------------------


def test_create_graph_gives_higher_derivatives():
    x = leaf(-1.5, 0.5, 2.0)
    (first,) = E.grad((x**3).sum(), [x], create_graph=True)
    np.testing.assert_allclose(first.numpy(), 3 * x.numpy() ** 2)
    (second,) = E.grad(first.sum(), [x], create_graph=True)
    np.testing.assert_allclose(second.numpy(), 6 * x.numpy())
    (third,) = E.grad(second.sum(), [x])
    np.testing.assert_allclose(third.numpy(), np.full(3, 6.0))


def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf(1.0, 2.0)
    with E.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert (x * 2).requires_grad


def test_no_grad_restores_the_mode_after_an_exception():
    x = leaf(1.0)
    with pytest.raises(KeyError), E.no_grad():
        raise KeyError("boom")
    assert (x * 2).requires_grad


def test_no_grad_as_a_decorator():
    x = leaf(1.0, 2.0)

    @E.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert (x * 2).requires_grad


def test_no_grad_decorator_is_reentrant():
    """A recursive function under @no_grad() must leave grad mode as it found it."""
    x = leaf(1.0)

    @E.no_grad()
    def depth(n: int) -> int:
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(2) == 2
    assert (x * 2).requires_grad, "grad mode is still off after the decorated call returned"


@pytest.mark.parametrize("detach", [E.Tensor.detach, F.detach], ids=["method", "F.detach"])
def test_detach_cuts_the_graph(detach):
    x = leaf(1.0, 2.0, 3.0)
    d = detach(x)
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), x.numpy())
    (x * detach(x)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x.numpy())  # x, not 2x: one factor is constant


def test_tensor_of_a_tensor_is_a_copy():
    """E.tensor promises a copy: updating the new leaf must not write through to the old."""
    original = E.tensor([1.0, 2.0])
    copy = E.tensor(original, requires_grad=True)
    with E.no_grad():
        copy += 1.0
    np.testing.assert_array_equal(original.numpy(), [1.0, 2.0])


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf(1.0, 2.0, 3.0)
    h = (x * 2).retain_grad()
    u = x + 1  # a non-leaf without retain_grad: no .grad
    (h * h + u).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 4 * h.numpy() + 1)
    assert u.grad is None


# ---- broadcasting: gradients come back in each input's shape ----------------------------

BROADCASTING = [
    # f, input shapes, expected grads of f(a, b).sum() as numpy functions of a and b
    pytest.param(
        lambda a, b: a + b,
        [(3, 4), (4,)],
        lambda a, b: [np.ones_like(a), np.full(b.shape, 3.0)],
        id="add-row",
    ),
    pytest.param(
        lambda a, b: a * b,
        [(3, 4), (3, 1)],
        lambda a, b: [np.broadcast_to(b, a.shape), a.sum(1, keepdims=True)],
        id="mul-column",
    ),
    pytest.param(
        lambda a, b: a - b,
        [(2, 3), ()],
        lambda a, b: [np.ones_like(a), np.array(-6.0)],
        id="sub-0d",
    ),
    pytest.param(
        lambda a, b: a.sum(axis=1, keepdims=True) * b,
        [(3, 4), (3, 4)],
        lambda a, b: [
            np.broadcast_to(b.sum(1, keepdims=True), a.shape),
            np.broadcast_to(a.sum(1, keepdims=True), b.shape),
        ],
        id="sum-keepdims",
    ),
    pytest.param(
        lambda a, b: a.mean(axis=0, keepdims=True) * b,
        [(3, 4), (2, 4)],
        lambda a, b: [np.broadcast_to(b.sum(0) / 3, a.shape), np.broadcast_to(a.mean(0), b.shape)],
        id="mean-keepdims",
    ),
]


@pytest.mark.parametrize("f, shapes, expected", BROADCASTING)
def test_broadcast_gradients_are_reduced_to_input_shape(f, shapes, expected, rng):
    arrays = [rng.normal(size=shape) for shape in shapes]
    a, b = (E.tensor(x, requires_grad=True) for x in arrays)
    f(a, b).sum().backward()
    for t, want in zip((a, b), expected(*arrays)):
        np.testing.assert_allclose(t.grad.numpy(), want, strict=True)


# ---- in-place updates -------------------------------------------------------------------


def test_inplace_update_under_no_grad():
    w = leaf(1.0, 2.0, 3.0)
    (w * w).sum().backward()
    grad = w.grad.numpy().copy()
    same = w
    with E.no_grad():
        w -= 0.1 * w.grad
    assert w is same and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.numpy(), np.array([1.0, 2.0, 3.0]) - 0.1 * grad)
    np.testing.assert_array_equal(w.grad.numpy(), grad)
    w.grad.zero_()
    (w * w).sum().backward()  # still trainable, from the new values
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.numpy())


def _isub(t):
    t -= 0.1


def _imul(t):
    t *= 2.0


INPLACE = [
    pytest.param(_isub, id="-="),
    pytest.param(_imul, id="*="),
    pytest.param(lambda t: t.zero_(), id="zero_"),
    pytest.param(lambda t: t.fill_(7.0), id="fill_"),
    pytest.param(lambda t: t.copy_(np.zeros(3)), id="copy_"),
]


@pytest.mark.parametrize("update", INPLACE)
def test_inplace_update_while_recording_names_no_grad(update):
    """Every in-place method refuses a tensor that requires grad while the tape records."""
    w = leaf(1.0, 2.0, 3.0)
    (w * w).sum().backward()
    before = snapshot(w)
    with pytest.raises(RuntimeError, match="no_grad"):
        update(w)
    assert_unchanged(before, w)


def test_inplace_change_of_a_saved_tensor_is_not_silent():
    """The tape keeps `a` for mul's VJP; changing it afterwards must not give a wrong grad
    silently (torch raises at backward; refusing the in-place change would be safe too)."""
    x, a = leaf(1.0, 2.0), E.tensor(np.array([3.0, 4.0]))
    y = (x * a).sum()
    try:
        a += 1.0
    except RuntimeError:
        return
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None


# ---- custom Functions -------------------------------------------------------------------


class Cube(E.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * g * x * x


class Scale(E.Function):
    """Two inputs, one of them not differentiable: backward returns None for it."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.save_for_backward(factor)
        return x * factor

    @staticmethod
    def backward(ctx, g):
        (factor,) = ctx.saved_tensors
        return g * factor, None


class Clamp01(E.Function):
    """The example in eager/function.py's docstring, verbatim."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ((x >= 0) & (x <= 1))


def _function_value(function, cotangent, *fixed):
    """sum(function(x, *fixed) * cotangent) as a plain function of an array, for differences."""
    return lambda x: float((function.apply(E.tensor(x), *fixed) * cotangent).sum())


@pytest.mark.parametrize(
    "function, fixed",
    [(Cube, ()), (Scale, (np.array([2.0, -0.5, 3.0]),)), (Clamp01, ())],
    ids=["cube", "scale", "clamp01"],
)
def test_custom_function_matches_finite_differences(function, fixed, rng, numeric_grad):
    x = E.tensor(np.array([-0.7, 0.4, 1.6]), requires_grad=True)
    cotangent = rng.normal(size=3)
    (function.apply(x, *fixed) * cotangent).sum().backward()
    expected = numeric_grad(_function_value(function, cotangent, *fixed), [x.numpy()])
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6, atol=1e-8)


def test_custom_function_output_is_on_the_tape_only_when_needed():
    with_grad = Cube.apply(leaf(2.0))
    assert with_grad.requires_grad and with_grad.grad_fn is not None
    assert not Cube.apply(E.tensor([2.0])).requires_grad


# ---- errors: what went wrong and how to fix it, with no state changed -------------------


class TwoGradients(E.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g, g


class SummedSecondGradient(E.Function):
    """x * y whose backward sums y's gradient to a scalar: a shape bug to be caught."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, (g * x).sum()


class HalfGradient(E.Function):
    """Returns a float gradient, which an integer input cannot hold."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 0.5


def _inplace_add(a, other):
    with E.no_grad():
        a += other


ERRORS = [
    # action on a (3, 4) leaf with a grad, expected error type, fragments of its message
    pytest.param(
        lambda a: a @ E.ones(5, 2),
        ShapeError,
        ["matmul: shapes (3, 4) and (5, 2) do not align: 4 != 5", "Fix:"],
        id="matmul-misaligned",
    ),
    pytest.param(
        lambda a: a + E.ones(5),
        ShapeError,
        ["add: cannot broadcast (3, 4) with (5,)", "Fix:"],
        id="add-broadcast",
    ),
    pytest.param(
        lambda a: _inplace_add(a, np.ones(5)),
        ShapeError,
        ["add: cannot broadcast", "Fix:"],
        id="inplace-add-broadcast",
    ),
    pytest.param(
        lambda a: _inplace_add(a, np.ones((2, 3, 4))),
        ValueError,
        ["(2, 3, 4)", "(3, 4)", "Fix:"],
        id="inplace-add-grows",
    ),
    pytest.param(
        lambda a: a.reshape(5, -1),
        ShapeError,
        ["cannot reshape (3, 4)", "Fix:"],
        id="reshape-count",
    ),
    pytest.param(
        lambda a: F.mse_loss(a, [1.0, 2.0]),
        ShapeError,
        ["mse_loss", "(3, 4)", "Fix:"],
        id="mse-loss-target-shape",
    ),
    pytest.param(
        lambda a: (a * 2).backward(), RuntimeError, ["(3, 4)", "Fix:"], id="backward-non-scalar"
    ),
    pytest.param(
        lambda a: (a * 2).backward(grad=np.ones(4)),
        RuntimeError,
        ["(4,)", "(3, 4)", "Fix:"],
        id="backward-grad-shape",
    ),
    pytest.param(
        lambda a: (TwoGradients.apply(a) + a).sum().backward(),
        RuntimeError,
        ["returned 2 gradients for 1 inputs", "Fix:"],
        id="function-gradient-count",
    ),
    pytest.param(
        lambda a: SummedSecondGradient.apply(E.ones(3, 4), a).sum().backward(),
        RuntimeError,
        ["SummedSecondGradient.backward", "input 1", "shape ()", "(3, 4)", "Fix:"],
        id="function-gradient-shape",
    ),
    pytest.param(
        lambda a: E.grad((a * 2).sum(), [E.ones(3)]),
        RuntimeError,
        ["does not require grad", "Fix:"],
        id="grad-wrt-constant",
    ),
    pytest.param(
        lambda a: E.tensor(["a"]), DTypeError, ["unsupported dtype", "Fix:"], id="tensor-bad-dtype"
    ),
    pytest.param(
        lambda a: E.tensor([1.0], device="tpu"),
        DeviceError,
        ["'tpu'", "cpu", "cuda"],
        id="tensor-unknown-device",
    ),
]


def test_function_gradient_of_a_dtype_its_input_cannot_hold_is_refused():
    x = E.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        HalfGradient.apply(x).sum().backward()
    for fragment in ["HalfGradient.backward", "input 0", "float64", "int64", "Fix:"]:
        assert fragment in str(info.value)
    assert x.grad is None


def test_function_gradient_is_summed_down_and_cast_as_torch_does():
    """A gradient that the input's shape broadcasts to is summed down, and cast to the
    input's dtype (torch accepts both)."""

    class Broadcasting(E.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return np.broadcast_to(np.asarray(g.numpy() * 2, np.float64), (2, 3))

    x = E.tensor(np.ones(3, np.float32), requires_grad=True)
    Broadcasting.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 4, np.float32), strict=True)


@pytest.mark.parametrize("action, error, fragments", ERRORS)
def test_error_explains_and_changes_nothing(action, error, fragments, rng):
    a = E.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    (a * a).sum().backward()
    before = snapshot(a)
    with pytest.raises(error) as info:
        action(a)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert_unchanged(before, a)
    assert (a * 2).requires_grad  # grad mode survives the failure
