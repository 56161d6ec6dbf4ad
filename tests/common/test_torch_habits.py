"""PyTorch habits that carry over (issue 11, item 5), each against torch itself.

Functions and methods run in every engine (eager, compiled at O0 and O2) through the
oracle's harness: values and the gradients of every float input, in float64. What only an
eager tensor can do (write in place, through a mask) is checked eagerly against torch, with
the symbolic engine's error naming the out-of-place alternative; then the errors torch
raises too (an in-place change of a leaf that requires grad, of a value saved for backward).
"""

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import nn
from common.ops import OpError, ShapeError

torch = pytest.importorskip("torch", reason="torch not installed: the oracle comparison needs it")

from tests.common.test_torch_oracle import (  # noqa: E402 (after the skip)
    ENGINES,
    TF,
    Case,
    assert_matches_torch,
    const,
    divisors,
    labels,
    normal,
    probabilities,
    same,
)

# ---- functions and methods, in every engine ---------------------------------------------


def _add_in_place(x):
    y = x * 2
    y += 1  # torch and eager: in place on a non-leaf; a symbol rebinds y to y + 1
    return y


def _arithmetic_in_place(x, w):
    y = x * w
    y *= x
    y -= w
    y /= 2.0
    return y


def _write_through_mask(x):  # torch's way; the symbolic spelling is F.where below
    y = x * 2
    y[y > 1] = 0.0
    return y


def _write_column(x):
    y = x * 2
    y[:, 1] = 0.0
    return y


def _modules(name, make, makers) -> Case:
    """A case applying a module made by `make(library)`: ours from nn, torch's from torch.nn."""
    return Case(name, lambda *args: make(nn)(*args), lambda *args: make(torch.nn)(*args), makers)


HABITS = [
    same("clone", lambda x: x.clone() * x, [normal(3, 4)]),
    same("t", lambda x: x.t() @ x, [normal(3, 4)]),
    same("t-of-a-vector", lambda x: x.t() * 2.0, [normal(4)]),
    same("T", lambda x: x.T @ x, [normal(3, 4)]),
    same("mask-read", lambda x: x[x < 0] * 3.0, [normal(4, 5)]),
    same("sin-cos-methods", lambda x: x.sin() * x.cos(), [normal(3, 4)]),
    same("std-var-methods", lambda x: x.std() + x.var(), [normal(3, 4)]),
    same("in-place-add-on-a-non-leaf", _add_in_place, [normal(3, 4)]),
    same("in-place-arithmetic-on-a-non-leaf", _arithmetic_in_place, [normal(3, 4), normal(4)]),
    Case(
        "mask-write-as-where",
        lambda x: F.where(x * 2 > 1, 0.0, x * 2),
        _write_through_mask,
        [normal(4, 5)],
    ),
    Case(
        "mask-write-as-masked_fill",
        lambda x: (x * 2).masked_fill(x * 2 > 1, 0.0),
        _write_through_mask,
        [normal(4, 5)],
    ),
    Case(
        "column-write-as-setitem",
        lambda x: F.setitem(x * 2, (slice(None), 1), 0.0),
        _write_column,
        [normal(3, 4)],
    ),
    Case(
        "binary_cross_entropy-at-saturated-probabilities",
        F.binary_cross_entropy,
        TF.binary_cross_entropy,
        [const([0.0, 1.0, 0.5, 1.0]), const([1.0, 0.0, 0.25, 1.0])],
    ),
    _modules("nn.Flatten", lambda lib: lib.Flatten(), [normal(2, 3, 4, 5)]),
    _modules("nn.Flatten-0-1", lambda lib: lib.Flatten(0, 1), [normal(2, 3, 4)]),
    _modules("nn.GELU-tanh", lambda lib: lib.GELU(approximate="tanh"), [normal(3, 4)]),
    _modules("nn.MSELoss", lambda lib: lib.MSELoss(), [normal(3, 4), normal(3, 4)]),
    _modules(
        "nn.MSELoss-sum", lambda lib: lib.MSELoss(reduction="sum"), [normal(3, 4), normal(3, 4)]
    ),
    _modules(
        "nn.CrossEntropyLoss-none",
        lambda lib: lib.CrossEntropyLoss(reduction="none"),
        [normal(6, 5), labels(5, 6)],
    ),
    _modules(
        "nn.NLLLoss",
        lambda lib: lib.NLLLoss(),
        [lambda rng: np.log(rng.dirichlet(np.ones(4), size=5)), labels(4, 5)],
    ),
    _modules(
        "nn.BCELoss-sum",
        lambda lib: lib.BCELoss(reduction="sum"),
        [probabilities(3, 4), probabilities(3, 4)],
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", HABITS, ids=lambda case: case.name)
def test_habit_matches_torch(case, engine, rng):
    arrays = [make(rng) for make in case.makers]
    assert_matches_torch(case.ours, case.theirs, arrays, engine, rng)


def _compiled_value(fn, arrays, optimize):
    inputs = [S.placeholder(a.shape, a.dtype) for a in arrays]
    return S.compile(fn(*inputs), inputs=inputs, optimize=optimize)(*arrays)


def _values_everywhere(fn, arrays) -> dict:
    """fn's value eagerly and compiled at O0 and O2 (for results with no gradient)."""
    values = {"eager": fn(*(E.tensor(a) for a in arrays)).numpy()}
    values.update({f"compiled-O{o}": _compiled_value(fn, arrays, o) for o in (0, 2)})
    return values


INTEGER_RESULTS = {
    "argmax": (lambda x: F.argmax(x), lambda x: torch.argmax(x)),
    "argmax-axis": (lambda x: F.argmax(x, 1), lambda x: torch.argmax(x, 1)),
    "argmax-keepdims": (lambda x: x.argmax(0, keepdims=True), lambda x: x.argmax(0, True)),
    "argmax-negative-axis": (lambda x: x.argmax(-1), lambda x: x.argmax(-1)),
    "argmax-all-keepdims": (
        lambda x: x.argmax(keepdims=True),
        lambda x: x.argmax(dim=None, keepdim=True),
    ),
    "argmin-axis": (lambda x: x.argmin(1), lambda x: x.argmin(1)),
}


@pytest.mark.parametrize("name", INTEGER_RESULTS)
def test_argmax_gives_torch_indices_as_int64_in_every_engine(name, rng):
    ours, theirs = INTEGER_RESULTS[name]
    x = rng.integers(-2, 3, size=(4, 5)).astype(np.float64)  # ties: the first one wins
    want = theirs(torch.tensor(x)).numpy()
    for engine, got in _values_everywhere(ours, [x]).items():
        np.testing.assert_array_equal(got, want, strict=True, err_msg=engine)


def test_argmax_and_floor_division_carry_no_gradient():
    x = E.tensor([[1.0, 3.0], [4.0, 2.0]], requires_grad=True)
    for out in (x.argmax(1), x // 2.0):
        assert not out.requires_grad and out.grad_fn is None


def test_floor_division_matches_torch_in_every_engine(rng):
    x, y = 4.0 * rng.normal(size=(3, 4)), divisors(3, 4)(rng)
    want = torch.floor_divide(torch.tensor(x), torch.tensor(y)).numpy()
    for engine, got in _values_everywhere(lambda a, b: a // b, [x, y]).items():
        np.testing.assert_array_equal(got, want, strict=True, err_msg=engine)


def test_binary_cross_entropy_of_a_saturated_float32_sigmoid_stays_finite_as_in_torch():
    """A float32 sigmoid is exactly 0 or 1 far out; log(0) clamps to -100, and the gradient
    is torch's, not 0 * inf = nan."""
    logits, target = np.array([20.0, -120.0, 0.5], np.float32), np.array([0.0, 1.0, 1.0])
    x, t = E.tensor(logits, requires_grad=True), E.tensor(target, dtype="float32")
    loss = F.binary_cross_entropy(F.sigmoid(x), t)
    loss.backward()
    x_ref = torch.tensor(logits, requires_grad=True)
    want = TF.binary_cross_entropy(torch.sigmoid(x_ref), torch.tensor(target, dtype=torch.float32))
    want.backward()
    np.testing.assert_allclose(loss.numpy(), want.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), x_ref.grad.numpy(), rtol=1e-5, atol=1e-7)


# ---- eager only: conversions, constructors, writes in place -----------------------------


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # torch's
def test_a_parameter_converts_to_python_numbers_as_torch_does():
    ours, theirs = nn.Parameter(np.array([2.5])), torch.nn.Parameter(torch.tensor([2.5]))
    assert (ours.item(), float(ours), int(ours)) == (theirs.item(), float(theirs), int(theirs))
    matrix = np.arange(6.0).reshape(2, 3)
    assert nn.Parameter(matrix).tolist() == torch.nn.Parameter(torch.tensor(matrix)).tolist()
    with pytest.raises(ValueError, match=r"shape \(2, 3\), not one element"):
        nn.Parameter(matrix).item()


@pytest.mark.parametrize("args", [(0, 1, 5), (-2.0, 3.0, 7), (1, 1, 1), (5, -5, 4)])
def test_linspace_matches_torch(args):
    ours, theirs = E.linspace(*args), torch.linspace(*args)
    assert ours.dtype == np.float32 and ours.is_leaf and not ours.requires_grad
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    leaf = E.linspace(0, 1, 3, dtype="float64", requires_grad=True)
    assert leaf.dtype == np.float64 and leaf.requires_grad


def test_a_mask_write_changes_the_tensor_as_in_torch():
    values = np.array([[1.5, -2.0, 0.0], [-0.5, 3.0, -1.0]])
    ours, theirs = E.tensor(values), torch.tensor(values)
    for x in (ours, theirs):
        x[x < 0] = 0.0
        x[0] = x[0] * 10
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours._version == 2


def test_a_clone_owns_its_memory_as_in_torch():
    for engine in (E, torch):
        x = engine.tensor([1.0, 2.0])
        copy = x.clone()
        copy[0] = 5.0
        assert x.tolist() == [1.0, 2.0] and copy.tolist() == [5.0, 2.0]


def _write_a_tensor_into_the_mask(x, v):
    y = x * 2
    y[y > 1] = v  # v (0-d) requires grad: the gradient reaches it through the mask
    return y


EAGER_WRITES = [
    same("mask write", _write_through_mask, [normal(4, 5)]),
    same("column write", _write_column, [normal(4, 5)]),
    same(
        "mask write of a value that requires grad",
        _write_a_tensor_into_the_mask,
        [normal(4, 5), lambda rng: np.array(-3.0)],
    ),
]


@pytest.mark.parametrize("case", EAGER_WRITES, ids=lambda case: case.name)
def test_writes_into_a_recorded_tensor_give_torchs_gradients(case, rng):
    arrays = [make(rng) for make in case.makers]
    assert_matches_torch(case.ours, case.theirs, arrays, "eager", rng)


def test_writing_a_tensor_that_requires_grad_into_a_plain_one_records_it():
    w = E.tensor([1.0, 2.0], requires_grad=True)
    a = E.zeros(2, dtype="float64")
    a += w * 3
    assert not a.is_leaf and a.requires_grad  # torch: a now has AddBackward
    (a * a).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 18 * w.numpy())


def test_a_symbol_cannot_be_written_and_the_error_names_the_alternatives():
    x = S.placeholder((3, 4))
    with pytest.raises(TypeError, match=r"F\.where\(mask, value, x\).*F\.setitem"):
        x[x < 0] = 0.0


# ---- errors torch raises too ------------------------------------------------------------


def _leaf(engine):
    return engine.tensor([1.0, -2.0, 3.0], requires_grad=True)


LEAF_WRITES = {
    "+=": lambda x: x.__iadd__(1.0),
    "mask write": lambda x: x.__setitem__(x < 0, 0.0),
    "fill_": lambda x: x.fill_(2.0),
}


@pytest.mark.parametrize("name", LEAF_WRITES)
def test_an_in_place_change_of_a_leaf_that_requires_grad_raises_as_in_torch(name):
    write = LEAF_WRITES[name]
    with pytest.raises(RuntimeError, match="leaf"):
        write(_leaf(torch))
    x = _leaf(E)
    with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*no_grad"):
        write(x)
    np.testing.assert_array_equal(x.numpy(), [1.0, -2.0, 3.0])  # unchanged
    assert x._version == 0
    with E.no_grad():  # the training-step habit: allowed, and counted
        write(x)
    assert x._version == 1


def _saved_then_written(engine, write):
    """y is saved by y * y, then written in place: backward must refuse."""
    x = engine.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    z = (y * y).sum()
    write(y)
    z.backward()


SAVED_WRITES = {
    "+=": lambda y: y.__iadd__(1.0),
    "mask write": lambda y: y.__setitem__(y > 0, 0.0),
    "copy_": lambda y: y.copy_(y * 0),
}


@pytest.mark.parametrize("name", SAVED_WRITES)
def test_a_value_saved_for_backward_then_written_in_place_raises_at_backward(name):
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _saved_then_written(torch, SAVED_WRITES[name])
    with pytest.raises(RuntimeError, match="modified in place"):
        _saved_then_written(E, SAVED_WRITES[name])


def test_a_constant_saved_for_backward_then_masked_raises_at_backward():
    x, a = E.tensor([1.0, 2.0], requires_grad=True), E.tensor([3.0, -4.0])
    y = (x * a).sum()
    a[a < 0] = 0.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_an_in_place_change_of_a_recorded_view_is_refused_with_the_fix():
    """torch rebases the viewed tensor's history (CopySlices); diptych refuses instead of
    giving the base a wrong gradient."""
    y = E.tensor([1.0, 2.0], requires_grad=True) * 2
    view = y[0:1]
    with pytest.raises(RuntimeError, match=r"view.*clone"):
        view *= 3
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])


BAD_CALLS = {
    "gelu approximate": (lambda x: F.gelu(x, approximate="fast"), OpError, "'none' or 'tanh'"),
    "loss reduction": (lambda x: F.mse_loss(x, x, reduction="avg"), OpError, "'mean', 'sum'"),
    "t() of 3-d": (lambda x: x.reshape(1, 3, 4).t(), OpError, r"\.transpose\(dim0, dim1\)"),
    "argmax over two axes": (lambda x: F.argmax(x, (0, 1)), OpError, "one int"),
    "flatten backwards": (lambda x: F.flatten(x, 1, 0), ShapeError, "start_dim <= end_dim"),
    "setitem too large": (lambda x: F.setitem(x, 0, np.ones(5)), ShapeError, "does not fit"),
}


@pytest.mark.parametrize("name", BAD_CALLS)
@pytest.mark.parametrize("make", [E.zeros, S.placeholder], ids=["eager", "symbolic"])
def test_a_bad_argument_says_how_to_fix_it(name, make):
    call, error, fix = BAD_CALLS[name]
    with pytest.raises(error, match=fix):
        call(make((3, 4)))
