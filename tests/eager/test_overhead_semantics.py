"""The eager hot path's shortcuts keep its semantics: a ufunc kernel called directly gives what
the kernel gives (dtype rules and weak Python scalars included), one pass over the arguments
still records versions and grad needs, the backward walk's bookkeeping still catches in-place
changes, and the cheaper reads (owner, shape, dtype, optimizer checks) say what they said."""

import numpy as np
import pytest

import eager as E
from common import functional as F
from common import nn, optim
from common.dispatch import owner, owner_engine, run_kernel
from common.ops import elementwise as ew
from common.ops.core import OPS
from tests.helpers import assert_identical

UFUNC_OPS = [op for op in OPS.values() if op.numpy_ufunc is not None]
WEAK_SCALARS = [  # (tensor dtype, Python scalar): numpy 2 gives the array's dtype or promotes
    (np.float32, 1.5),
    (np.float16, 2),
    (np.int32, 1.5),
    (np.int8, 3),
    (np.bool_, 1),
    (np.float64, True),
]


def test_the_direct_ufunc_is_exactly_the_one_the_kernel_calls():
    assert len(UFUNC_OPS) > 10  # add, mul, exp, ...: the fast path is taken at all
    for op in OPS.values():
        name = getattr(op.kernel, "ufunc", None)
        assert op.numpy_ufunc is (None if name is None else getattr(np, name)), op.name


@pytest.mark.parametrize("op", UFUNC_OPS, ids=lambda op: op.name)
def test_the_direct_ufunc_call_gives_what_the_kernel_gives(op, rng):
    cases = [args for args, params in op.samples(rng) if not params]
    arity = len(cases[0])
    for dtype, scalar in WEAK_SCALARS:  # strong arrays of several dtypes, and weak scalars
        array = (rng.uniform(0.5, 2.0, size=(2, 3)) * 3).astype(dtype)
        cases += [(array,) * arity, (array, scalar)[:arity], (scalar, array)[-arity:]]
    for args in cases:
        what = f"{op.name}{tuple(np.asarray(a).dtype for a in args)}"
        with np.errstate(all="ignore"):
            try:
                want = op.kernel(np, *args)
            except Exception as exc:  # noqa: BLE001 (numpy has no loop for some dtypes)
                error = op.explain_failure(exc, args, {})
                with pytest.raises(type(error), match="."):
                    run_kernel(op, list(args), {})
                continue
            assert_identical(run_kernel(op, list(args), {}), want, what)


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize(("dtype", "scalar"), WEAK_SCALARS)
def test_python_scalars_stay_weak_on_the_fast_path(dtype, scalar, requires_grad):
    data = np.array([1, 2, 3], dtype=dtype)
    x = E.tensor(data, requires_grad=requires_grad and data.dtype.kind == "f")
    for got, want in [(x + scalar, data + scalar), (scalar * x, scalar * data)]:
        assert_identical(got.numpy(), want, f"{dtype.__name__} with {scalar!r}")
    with E.no_grad():
        assert (x - scalar).dtype == (data - scalar).dtype


def test_a_python_int_out_of_range_fails_as_in_numpy():
    with pytest.raises(OverflowError, match="out of bounds for uint8"):
        E.tensor(np.array([1, 2], np.uint8)) + 300


def test_a_dtype_numpy_has_no_loop_for_gets_an_error_naming_the_op():
    with pytest.raises(TypeError, match=r"^sign: .*did not contain a loop"):
        F.sign(E.tensor(np.array([True, False])))


def test_ops_with_params_or_without_a_ufunc_still_run_their_kernel():
    x = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    out = np.empty_like(x)
    assert run_kernel(ew.ADD, [x, x], {"out": out}) is out  # a param: the kernel takes it
    assert_identical(E.tensor(x).sum(axis=0).numpy(), x.sum(axis=0), "sum")


# ---- one pass over the arguments: versions, grad needs, grad mode ---------------------------


def test_a_node_saves_each_input_version_when_it_is_recorded():
    x = E.tensor([1.0, 2.0], requires_grad=True)
    a = E.tensor([3.0, 4.0])
    w = nn.Parameter(np.array([5.0, 6.0], np.float32))
    with E.no_grad():
        a += 1.0
        a += 1.0
        w -= 1.0
    assert (x * a).grad_fn.versions == [0, 2]
    assert (a * 2.0 + w).grad_fn.versions == [0, 1]  # a temporary, then the parameter


@pytest.mark.parametrize("position", [0, 1])
def test_an_input_changed_after_use_is_named_by_its_position(position):
    x = E.tensor([1.0, 2.0], requires_grad=True)
    a = E.tensor([3.0, 4.0])
    y = (x * a if position == 1 else a * x).sum()
    a += 1.0  # a does not require grad: allowed, but the saved value is stale now
    with pytest.raises(RuntimeError, match=rf"input {position} of mul .*version 0 -> 1"):
        y.backward()
    assert x.grad is None


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.__iadd__(1.0),
        lambda t: t.__setitem__(0, 5.0),
        lambda t: t.zero_(),
        lambda t: t.copy_(np.ones(2, np.float32)),
    ],
    ids=["iadd", "setitem", "zero_", "copy_"],
)
def test_every_in_place_change_bumps_the_version(change):
    t = E.tensor([1.0, 2.0])
    change(t)
    assert t._version == 1
    recorded = E.tensor([1.0, 2.0], requires_grad=True) * 1.0  # a non-leaf on the tape
    change(recorded)
    assert recorded._version == 1


def test_only_ops_with_a_gradient_record_and_only_in_grad_mode():
    x = E.tensor([1.0, -2.0], requires_grad=True)
    assert (x > 0).grad_fn is None and not (x > 0).requires_grad  # no VJP: nothing to record
    with E.no_grad():
        assert (x + 1.0).grad_fn is None
        with E.enable_grad():
            assert (x + 1.0).grad_fn.name == "add"
    assert (E.tensor([1.0]) + 1.0).grad_fn is None  # no input requires grad


def test_a_0d_result_is_an_array_not_a_numpy_scalar():
    y = E.tensor(2.0, requires_grad=True) * 3.0
    assert isinstance(y.data, np.ndarray) and y.shape == ()


# ---- the backward walk -----------------------------------------------------------------


def test_a_value_used_several_times_sums_its_gradients():
    x = E.tensor([0.5, -1.0], dtype=np.float64, requires_grad=True)
    (x * x + x.exp() - x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + np.exp(x.numpy()) - 1)


def test_a_deep_chain_backpropagates_without_recursion():
    x = E.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):  # deeper than Python's recursion limit
        y = -y
    y.sum().backward()
    assert x.grad.tolist() == [1.0]


def test_an_index_array_input_gets_no_gradient_but_target_and_value_do():
    """setitem's VJP has two formulas for three inputs (target, value, index array)."""
    target = E.tensor([1.0, 2.0, 3.0], requires_grad=True)
    value = E.tensor([10.0, 20.0], requires_grad=True)
    y = target * 1.0
    y[np.array([0, 2])] = value
    (y * E.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert target.grad.tolist() == [0.0, 2.0, 0.0]
    assert value.grad.tolist() == [1.0, 3.0]


# ---- cheaper reads --------------------------------------------------------------------------


def test_the_first_of_the_highest_priority_arguments_owns_an_op():
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))
    t, u = E.tensor([1.0]), E.tensor([2.0])
    assert owner([1.0, p, t, u]) is t
    assert owner([q, p]) is q
    assert owner([1.0, np.zeros(2)]) is None
    assert owner_engine([p, 2.0, u]) is E.Tensor
    assert owner_engine([]) is None


@pytest.mark.parametrize("make", [E.tensor, nn.Parameter], ids=["tensor", "parameter"])
def test_shape_dtype_and_ndim_follow_data_that_was_replaced(make):
    value = make(np.zeros(3, np.float32))
    value.data = np.zeros((2, 4), np.float64)
    assert (value.shape, value.dtype, value.ndim, value.numel()) == ((2, 4), np.float64, 2, 8)


def test_a_gradient_of_another_dtype_the_parameter_can_hold_still_updates_it():
    w = nn.Parameter(np.array([1.0, 2.0], np.float32))
    w.grad = np.array([1.0, 1.0], np.float64)  # float64 -> float32 is a same-kind cast
    optim.SGD([w], lr=0.5).step()
    assert_identical(w.data, np.array([0.5, 1.5], np.float32), "updated in place")
