"""Eager against compiled (optimize=0), bit for bit: both engines call the same kernels and
the same VJP rules, so an unoptimized graph must reproduce eager results exactly (DESIGN.md).

Driven from the op registry (every op with samples), then from random expression graphs.
"""

from typing import Callable, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eager as E
import symbolic as S
from common import functional as F
from common.dispatch import apply
from tests.common.test_ops_registry import (
    SAMPLES,
    _as_dtype,
    _cotangent,
    _first_grads,
    _values,
)
from tests.helpers import assert_identical, is_float_array

# Control ops run on symbols only and stateful ops draw fresh numbers: neither has an
# eager twin to equal bit for bit.
CASES = [c for c in SAMPLES if c.values[0].kind != "control" and not c.values[0].stateful]
CASES_WITH_VJP = [c for c in CASES if c.values[0].vjp is not None]


def _placeholders(args: tuple) -> list:
    """One placeholder per array argument, with its shape and dtype."""
    return [
        S.placeholder(np.shape(a), np.asarray(a).dtype, name=f"arg{i}") for i, a in enumerate(args)
    ]


def test_the_differential_covers_every_op_family():
    """A registry filter that went wrong would make every parametrized test vacuous."""
    assert {c.values[0].kind for c in CASES} >= {
        "elementwise",
        "reduction",
        "shape",
        "linalg",
        "nn",
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op, args, params", CASES)
def test_compiled_forward_equals_eager(op, args, params, dtype):
    args = _as_dtype(args, dtype)
    inputs = _placeholders(args)
    compiled = S.compile(apply(op, *inputs, **params), inputs=inputs, optimize=0)
    eager = apply(op, *[E.tensor(a) for a in args], **params)
    assert_identical(compiled(*args), eager.numpy(), f"{op.name} in {dtype}")


@pytest.mark.parametrize("op, args, params", CASES_WITH_VJP)
def test_compiled_gradient_equals_eager(op, args, params, rng):
    """S.grad builds nodes from the VJP rules E.grad runs: same rules, same kernels."""
    cotangent = _cotangent(op, args, params, rng)
    wrt, grads = _first_grads(op, args, params, cotangent, create_graph=False)
    inputs = _placeholders(args)
    floats = [p for p, a in zip(inputs, args) if is_float_array(a)]
    symbolic = S.grad((apply(op, *inputs, **params) * cotangent).sum(), floats)
    compiled = S.compile(symbolic, inputs=inputs, optimize=0)(*args)
    assert len(compiled) == len(wrt)
    for i, (got, want) in enumerate(zip(compiled, _values(grads, wrt))):
        assert_identical(got, want, f"d/d(float input {i}) of {op.name}")


# ---- random expression graphs ----------------------------------------------------------

UNARY = {
    "neg": F.neg,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "relu": F.relu,
    "abs": F.abs,
    "exp(tanh)": lambda x: F.exp(F.tanh(x)),  # bounded, so nothing overflows
    "log(1+x^2)": lambda x: F.log(1.0 + x * x),  # inside the domain for every x
    "sqrt(1+x^2)": lambda x: F.sqrt(1.0 + x * x),
}
BINARY = {
    "add": F.add,
    "sub": F.sub,
    "mul": F.mul,
    "maximum": F.maximum,
    "minimum": F.minimum,
    "div": lambda x, y: x / (1.0 + y * y),  # a denominator that is never 0
}
REDUCTIONS = {"sum": F.sum, "mean": F.mean, "max": F.max, "min": F.min}


class Step(NamedTuple):
    """One instruction: values.append(fn(*(values[i] for i in args)))."""

    label: str
    args: tuple
    fn: Callable


class Program(NamedTuple):
    shapes: list
    dtype: str
    steps: list


def run(program: Program, inputs: list):
    """Interpret the program on eager tensors or on symbols (the engine is the only change)."""
    values = list(inputs)
    for step in program.steps:
        values.append(step.fn(*(values[i] for i in step.args)))
    return values[-1]


def _broadcastable(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def _matmul_partners(shapes: list, i: int) -> list:
    """Values y for which x @ y.T is defined: same last axis, batch axes that broadcast."""
    x = shapes[i]
    return [
        j
        for j, y in enumerate(shapes)
        if len(x) >= 1 and len(y) >= 2 and y[-1] == x[-1] and _broadcastable(x[:-2], y[:-2])
    ]


def _draw_step(draw, shapes: list) -> Step:
    """A step whose operands fit; falls back to a unary op when the drawn kind has none."""
    i = draw(st.integers(0, len(shapes) - 1))
    ndim = len(shapes[i])
    kind = draw(st.sampled_from(["unary", "binary", "reduce", "reshape", "permute", "matmul"]))
    if kind == "binary":
        j = draw(st.sampled_from([j for j, s in enumerate(shapes) if _broadcastable(shapes[i], s)]))
        name = draw(st.sampled_from(sorted(BINARY)))
        return Step(name, (i, j), BINARY[name])
    if kind == "reduce" and ndim:
        name = draw(st.sampled_from(sorted(REDUCTIONS)))
        axis = draw(
            st.none()
            | st.integers(-ndim, ndim - 1)
            | st.lists(st.integers(0, ndim - 1), min_size=1, unique=True).map(tuple)
        )
        keepdims = draw(st.booleans())
        return Step(
            f"{name}(axis={axis}, keepdims={keepdims})",
            (i,),
            lambda x: REDUCTIONS[name](x, axis, keepdims),
        )
    if kind == "reshape" and ndim:
        shape = draw(st.sampled_from([(-1,), shapes[i][::-1], (1, *shapes[i]), (*shapes[i], 1)]))
        return Step(f"reshape{shape}", (i,), lambda x: x.reshape(shape))
    if kind == "permute" and ndim >= 2:
        dims = tuple(draw(st.permutations(range(ndim))))
        return Step(f"permute{dims}", (i,), lambda x: F.permute(x, dims))
    if kind == "matmul" and _matmul_partners(shapes, i):
        j = draw(st.sampled_from(_matmul_partners(shapes, i)))
        return Step("x @ y.T", (i, j), lambda x, y: x @ F.transpose(y))
    name = draw(st.sampled_from(sorted(UNARY)))
    return Step(name, (i,), UNARY[name])


@st.composite
def programs(draw) -> Program:
    """1-3 inputs whose shapes broadcast together (each a suffix of one base shape, some
    axes set to 1), then 1-6 steps, the shape of each value found by running the step on
    numpy arrays."""
    base = draw(st.lists(st.integers(1, 3), max_size=3))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        suffix = base[draw(st.integers(0, len(base))) :]
        shapes.append(tuple(1 if draw(st.booleans()) else d for d in suffix))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    ghosts = [np.ones(s) for s in shapes]
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        step = _draw_step(draw, [g.shape for g in ghosts])
        steps.append(step)
        ghosts.append(np.asarray(step.fn(*(ghosts[i] for i in step.args))))
    return Program(shapes, dtype, steps)


def both_ways(program: Program, seed: int) -> tuple[list, list, list, list]:
    """Random inputs; eager's output and gradients of sum(out); the same program on
    placeholders with S.grad: (arrays, placeholders, symbolic outputs, eager values)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s).astype(program.dtype) for s in program.shapes]
    leaves = [E.tensor(a, requires_grad=True) for a in arrays]
    out = run(program, leaves)
    grads = E.grad(F.sum(out), leaves, allow_unused=True)
    # an input the output ignores has a zero gradient of its own dtype (E.grad says None)
    want = [out.numpy()] + [
        np.zeros(x.shape, x.dtype) if g is None else g.numpy() for g, x in zip(grads, leaves)
    ]
    inputs = _placeholders(arrays)
    out_symbol = run(program, inputs)
    return arrays, inputs, [out_symbol, *S.grad(F.sum(out_symbol), inputs)], want


@settings(max_examples=60, deadline=None)
@given(program=programs(), seed=st.integers(0, 2**32 - 1))
def test_random_expression_graphs_compile_to_eager_bits(program, seed):
    """Forward value and the gradient of sum(out) w.r.t. every input, eager vs compiled."""
    arrays, inputs, outputs, want = both_ways(program, seed)
    got = S.compile(outputs, inputs=inputs, optimize=0)(*arrays)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_identical(g, w, "output" if k == 0 else f"gradient of input {k - 1}")
