"""Custom Functions with several outputs (torch.autograd.Function's contract), and the way
to write a custom op that works in both engines: an `OpDef`, declared once."""

from __future__ import annotations

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from common.dispatch import apply
from common.ops.core import OPS, Aval, OpDef, declare
from tests.eager.test_autograd import Clamp01

torch = pytest.importorskip("torch")

X = np.array([0.3, -1.2, 2.0, 0.7])


class SinCos(E.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.sin(x), F.cos(x)

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (x,) = ctx.saved_tensors
        return g_sin * F.cos(x) - g_cos * F.sin(x)


class TorchSinCos(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (x,) = ctx.saved_tensors
        return g_sin * x.cos() - g_cos * x.sin()


LOSSES = {  # how the outputs are used: both, one (the other gets a zero gradient), twice
    "both": lambda s, c: (s * c * 3.0).sum(),
    "sin only": lambda s, c: (s * s).sum(),
    "cos only": lambda s, c: c.sum(),
    "sin twice": lambda s, c: (s + s * c).sum(),
}


@pytest.mark.parametrize("use", LOSSES)
def test_several_outputs_get_one_gradient_each_as_in_torch(use):
    x = E.tensor(X, requires_grad=True)
    s, c = SinCos.apply(x)
    LOSSES[use](s, c).backward()

    tx = torch.tensor(X, requires_grad=True)
    LOSSES[use](*TorchSinCos.apply(tx)).backward()
    np.testing.assert_allclose(s.numpy(), np.sin(X))
    np.testing.assert_allclose(c.numpy(), np.cos(X))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_several_outputs_with_create_graph_give_second_derivatives():
    x = E.tensor(X, requires_grad=True)
    s, c = SinCos.apply(x)
    (g,) = E.grad((s + c).sum(), [x], create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(g.numpy(), np.cos(X) - np.sin(X))
    np.testing.assert_allclose(x.grad.numpy(), -np.sin(X) - np.cos(X))


class MaxWithIndex(E.Function):
    """An integer output beside a float one: nothing flows through the integer."""

    @staticmethod
    def forward(ctx, x):
        index = int(np.argmax(x.numpy()))
        ctx.save_for_backward(x)
        ctx.index = index
        return x.max(), E.tensor(index)

    @staticmethod
    def backward(ctx, g_max, g_index):
        (x,) = ctx.saved_tensors
        assert not g_index.numpy().any()
        mask = np.zeros(x.shape, x.dtype)
        mask[ctx.index] = 1.0
        return g_max * E.tensor(mask)


def test_an_integer_output_carries_no_gradient():
    x = E.tensor(X, requires_grad=True)
    top, index = MaxWithIndex.apply(x)
    assert index.dtype == np.int64 and not index.requires_grad and top.requires_grad
    (top * 2.0).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 2.0, 0.0])


def test_without_grad_the_outputs_are_returned_as_forward_made_them():
    s, c = SinCos.apply(E.tensor(X))
    assert not s.requires_grad and not c.requires_grad


def test_forward_returning_something_else_is_refused():
    class Bad(E.Function):
        @staticmethod
        def forward(ctx, x):
            return x.numpy(), x

    with pytest.raises(
        TypeError,
        match=r"Bad.forward must return a Tensor or a tuple of "
        r"Tensors, got ndarray, Tensor",
    ):
        Bad.apply(E.tensor(X, requires_grad=True))


# ---- one custom op for both engines ---------------------------------------------------


def test_a_function_applied_to_a_symbol_says_how_to_declare_an_op():
    with pytest.raises(
        TypeError,
        match=r"Clamp01.apply got a symbol.*eager-only.*"
        r"declare\(OpDef.*docs/custom_ops.md",
    ):
        Clamp01.apply(S.placeholder((4,), name="x"))


@pytest.fixture
def clamp01_op():
    """The op of docs/custom_ops.md, declared for one test and removed after it (the
    registry-walking tests must not meet it)."""
    op = declare(
        OpDef(
            "clamp01_example",
            "elementwise",
            kernel=lambda xp, x: xp.clip(x, 0, 1),
            abstract=lambda x: Aval(x.shape, x.dtype),
            vjp=(lambda g, out, x: g * ((x >= 0) & (x <= 1)),),
        )
    )
    yield lambda x: apply(op, x)
    del OPS[op.name]


@pytest.mark.parametrize("optimize", [0, 2])
def test_a_declared_op_works_in_both_engines(clamp01_op, optimize):
    values = np.array([-0.5, 0.25, 0.75, 1.5])
    x = E.tensor(values, requires_grad=True)
    (clamp01_op(x) * x).sum().backward()

    xs = S.placeholder((4,), "float64", name="xs")
    y = (clamp01_op(xs) * xs).sum()
    f = S.compile([y, S.grad(y, xs)], inputs=[xs], optimize=optimize)
    value, grad = f(values)

    tx = torch.tensor(values, requires_grad=True)
    (tx.clamp(0, 1) * tx).sum().backward()
    np.testing.assert_allclose(value, (np.clip(values, 0, 1) * values).sum())
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(grad, tx.grad.numpy())
