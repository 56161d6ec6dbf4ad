"""Habits carried over from PyTorch and TF1 that both engines must honour (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common import optim
from common.nn.parameter import Parameter

# ---- item 3: a parameter the loss does not depend on is not moved -------------------------


def _params(seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [
        Parameter(rng.standard_normal((3, 2)).astype(np.float32), name="w"),
        Parameter(rng.standard_normal((2,)).astype(np.float32), name="unused"),
    ]


def _batches(n: int) -> list:
    rng = np.random.default_rng(1)
    return [
        (
            rng.standard_normal((4, 3)).astype(np.float32),
            rng.standard_normal((4, 2)).astype(np.float32),
        )
        for _ in range(n)
    ]


TORCH = {
    "sgd_momentum_decay": lambda ps, torch: torch.optim.SGD(
        ps, lr=0.1, momentum=0.9, weight_decay=0.01
    ),
    "adam": lambda ps, torch: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01),
}
OPTIMIZERS = {
    "sgd_momentum_decay": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
}


def _torch_weights(kind: str) -> list:
    torch = pytest.importorskip("torch")
    params = [torch.tensor(p.data, requires_grad=True) for p in _params()]
    opt = TORCH[kind](params, torch)
    for xb, tb in _batches(5):
        loss = torch.nn.functional.mse_loss(torch.tensor(xb) @ params[0], torch.tensor(tb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_an_unused_parameter_stays_put_in_both_engines(kind):
    make = OPTIMIZERS[kind]
    eager_params, symbolic_params = _params(), _params()
    unused_before = eager_params[1].data.copy()
    batches = _batches(5)

    opt = make(eager_params)
    for xb, tb in batches:
        loss = F.mse_loss(E.tensor(xb) @ eager_params[0], E.tensor(tb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eager_params[1].grad is None

    x, t = S.placeholder((4, 3), name="x"), S.placeholder((4, 2), name="t")
    loss = F.mse_loss(x @ symbolic_params[0], t)
    sopt = make(symbolic_params)
    updates = S.optimizer_updates(sopt, S.grad(loss, sopt.params))
    assert all(k is not symbolic_params[1] for k in updates)  # a Parameter's == is elementwise
    step = S.compile(loss, inputs=[x, t], updates=updates)
    for xb, tb in batches:
        step(xb, tb)

    np.testing.assert_array_equal(eager_params[1].data, unused_before)
    np.testing.assert_array_equal(symbolic_params[1].data, unused_before)
    np.testing.assert_allclose(symbolic_params[0].data, eager_params[0].data, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(eager_params[0].data, _params()[0].data)  # the used one moved
    expected = _torch_weights(kind)  # torch: the oracle; it skips a parameter whose grad is None
    np.testing.assert_array_equal(expected[1], unused_before)
    np.testing.assert_allclose(eager_params[0].data, expected[0], rtol=1e-5, atol=1e-6)


def test_optimizer_updates_accepts_none_for_a_parameter_without_gradient():
    w, unused = _params()
    x = S.placeholder((4, 3), name="x")
    loss = F.sum(x @ w)
    opt = optim.SGD([w, unused], lr=0.1, momentum=0.9)
    updates = S.optimizer_updates(opt, [S.grad(loss, w), None])
    assert len([k for k in updates if isinstance(k, Parameter)]) == 1


# ---- item 4: one dtype rule for both engines (docs/dtypes.md) -----------------------------

CREATION = {  # value -> the dtype torch.tensor gives it, which both engines follow
    "float64 array": (np.arange(3.0), "float64"),
    "float16 array": (np.arange(3.0, dtype=np.float16), "float16"),
    "int32 array": (np.arange(3, dtype=np.int32), "int32"),
    "float64 scalar": (np.float64(1.5), "float64"),
    "python float": (1.5, "float32"),
    "list of floats": ([1.0, 2.0], "float32"),
    "list of ints": ([1, 2], "int64"),
    "list of bools": ([True, False], "bool"),
}
MAKERS = {"E.tensor": E.tensor, "S.constant": S.constant, "S.variable": S.variable}


@pytest.mark.parametrize("maker", MAKERS)
@pytest.mark.parametrize("case", CREATION)
def test_creation_dtype_is_the_same_in_both_engines_and_torch(case, maker):
    value, expected = CREATION[case]
    assert MAKERS[maker](value).dtype == np.dtype(expected)
    assert MAKERS[maker](value, dtype="float32").dtype == np.float32  # dtype= wins
    torch = pytest.importorskip("torch")
    assert str(torch.tensor(value).dtype) == f"torch.{expected}"


PROMOTIONS = [
    ("float32", "int64"),
    ("float32", "float64"),
    ("int32", "int64"),
    ("float16", "float32"),
    ("bool", "float32"),
    ("int64", "bool"),
]


@pytest.mark.parametrize("op", ["add", "mul", "pow"])
@pytest.mark.parametrize("left, right", PROMOTIONS)
def test_tensor_tensor_promotion_is_numpy2_in_both_engines(left, right, op):
    a, b = np.array([1, 2], left), np.array([1, 1], right)
    expected = np.result_type(a, b)  # numpy 2: float32 ** int64 -> float64 (torch: float32)
    if op == "pow" and expected == np.bool_:
        return
    apply = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y, "pow": lambda x, y: x**y}[op]
    assert apply(E.tensor(a), E.tensor(b)).dtype == expected
    x, y = S.placeholder((2,), left, name="x"), S.placeholder((2,), right, name="y")
    out = apply(x, y)
    assert out.dtype == expected
    assert S.compile(out, inputs=[x, y])(a, b).dtype == expected


@pytest.mark.parametrize("scalar", [2, 2.0, True])
@pytest.mark.parametrize("dtype", ["float16", "float32", "int32", "int64"])
def test_python_scalars_are_weak_in_both_engines(dtype, scalar):
    a = np.array([1, 2], dtype)
    expected = (a * scalar).dtype  # numpy 2's weak scalars: f32 * 2.0 -> f32, i64 * 2.0 -> f64
    assert (E.tensor(a) * scalar).dtype == expected
    x = S.placeholder((2,), dtype, name="x")
    assert (x * scalar).dtype == expected
    assert S.compile(x * scalar, inputs=[x])(a).dtype == expected


# ---- item 6: feeding placeholders by the names they were assigned to ----------------------


def test_placeholders_are_named_after_their_variables():
    a = S.placeholder()
    b = S.placeholder()  # noqa: E702  (the README's own line)
    c = (a**2 + b**2) ** 0.5
    assert (a.name, b.name) == ("a", "b")
    assert c(a=3, b=4) == 5.0
    assert c(b=4, a=3) == 5.0
    assert c(3, b=4) == 5.0


def test_names_from_tuple_unpacking_annotations_and_long_calls():
    x, t = S.placeholder((3,)), S.placeholder((3,), "int64")
    h: S.Symbol = S.placeholder(
        (2, 2),
        "float32",
    )
    assert (x.name, t.name, h.name) == ("x", "t", "h")


def test_an_explicit_name_wins_and_unnamed_ones_get_a_fixed_name():
    a = S.placeholder(name="alpha")
    doubled = S.placeholder() * 2  # the placeholder is not what `doubled` holds
    (source,) = [n for n in doubled.node.inputs if isinstance(n, S.Node)]
    assert a.name == "alpha"
    assert source.name == f"p{source.source.split(':')[1]}"  # its line: the same every run
    assert (a + 1)(alpha=1.0) == 2.0


def _make_pair():
    left = S.placeholder()
    right = S.placeholder()
    return left, right


def test_names_are_deterministic():
    assert [s.name for s in _make_pair()] == [s.name for s in _make_pair()] == ["left", "right"]


def test_an_unknown_keyword_lists_the_names_that_exist():
    a = S.placeholder()
    b = S.placeholder()  # noqa: E702
    c = a * b
    with pytest.raises(S.FeedError, match=r"no placeholder is named 'z'.*a f32\[\?\], b f32"):
        c(z=3, b=4)


def test_a_name_shared_by_two_placeholders_is_refused_not_guessed():
    xs = []
    for _ in range(2):
        x = S.placeholder()
        xs.append(x)
    total = xs[0] - xs[1]
    with pytest.raises(S.FeedError, match=r"2 placeholders are named 'x'.*ambiguous"):
        total(x=1.0)
    assert total(5.0, 2.0) == 3.0  # by position, still fine
