"""PyTorch as an oracle: the same float64 inputs through `F` and torch must give the same
outputs and the same gradients of sum(out * cotangent) for every float input, in every
engine: eager, and compiled from placeholders unoptimized (O0) and optimized (O2).

One table of cases (name, diptych function, torch function, input makers); integer and
boolean inputs (labels, indices, masks) go to both sides but are not differentiated.
"""

from typing import Callable, NamedTuple

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from tests.helpers import is_float_array

torch = pytest.importorskip("torch", reason="torch not installed: the oracle comparison needs it")
TF = torch.nn.functional

RTOL, ATOL = 1e-6, 1e-9  # float64 on both sides; ATOL for values that cancel to ~0


class Case(NamedTuple):
    name: str
    ours: Callable  # diptych, applied to eager tensors
    theirs: Callable  # torch, applied to torch tensors
    makers: list  # one maker per input: rng -> numpy array


def normal(*shape):
    return lambda rng: rng.normal(size=shape)


def positive(*shape):
    """Inputs for log, sqrt, fractional powers and denominators."""
    return lambda rng: rng.uniform(0.5, 2.0, size=shape)


def ties(*shape):
    """Small integer values: exact zeros, exact ties and values on clamp bounds."""
    return lambda rng: rng.integers(-2, 3, size=shape).astype(np.float64)


def labels(classes, *shape):
    return lambda rng: rng.integers(0, classes, size=shape)


def mask(*shape):
    return lambda rng: rng.random(shape) > 0.5


def probabilities(*shape):
    """Inside (0, 1), away from the ends where log clamps (binary cross-entropy)."""
    return lambda rng: rng.uniform(0.05, 0.95, size=shape)


def divisors(*shape):
    """Both signs, away from zero (remainder)."""
    return lambda rng: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def const(array):
    return lambda rng: np.asarray(array)


def same(name, fn, makers):
    """A case whose function is written once for both (operators and shared methods)."""
    return Case(name, fn, fn, makers)


# ---- elementwise ------------------------------------------------------------------------

ELEMENTWISE = [
    Case("add", F.add, torch.add, [normal(3, 4), normal(4)]),
    Case("sub", F.sub, torch.sub, [normal(2, 1, 3), normal(4, 1)]),
    Case("mul", F.mul, torch.mul, [normal(3, 4), normal(3, 1)]),
    Case("div", F.div, torch.div, [normal(3, 4), positive(4)]),
    Case("pow", F.pow, torch.pow, [positive(3, 4), normal(3, 4)]),
    Case("neg", F.neg, torch.neg, [normal(3, 4)]),
    Case("exp", F.exp, torch.exp, [normal(3, 4)]),
    Case("log", F.log, torch.log, [positive(3, 4)]),
    Case("sqrt", F.sqrt, torch.sqrt, [positive(3, 4)]),
    Case("abs", F.abs, torch.abs, [normal(3, 4)]),
    Case("abs-at-zero", F.abs, torch.abs, [ties(3, 4)]),
    Case("tanh", F.tanh, torch.tanh, [normal(3, 4)]),
    Case("sigmoid", F.sigmoid, torch.sigmoid, [normal(3, 4)]),
    Case("relu", F.relu, torch.relu, [normal(3, 4)]),
    Case("relu-at-zero", F.relu, torch.relu, [ties(3, 4)]),
    Case(
        "clamp",
        lambda x: F.clamp(x, -0.5, 0.7),
        lambda x: torch.clamp(x, -0.5, 0.7),
        [normal(3, 4)],
    ),
    Case(
        "clamp-on-bounds",
        lambda x: F.clamp(x, -1.0, 1.0),
        lambda x: torch.clamp(x, -1.0, 1.0),
        [ties(3, 4)],
    ),
    Case(
        "clamp-min", lambda x: F.clamp(x, min=0.0), lambda x: torch.clamp(x, min=0.0), [normal(5)]
    ),
    Case(
        "clamp-max", lambda x: F.clamp(x, max=0.3), lambda x: torch.clamp(x, max=0.3), [normal(5)]
    ),
    Case("maximum", F.maximum, torch.maximum, [normal(3, 4), normal(4)]),
    Case("maximum-ties", F.maximum, torch.maximum, [ties(3, 4), ties(3, 4)]),
    Case("minimum", F.minimum, torch.minimum, [normal(3, 4), normal(4)]),
    Case("minimum-ties", F.minimum, torch.minimum, [ties(3, 4), ties(3, 4)]),
    Case("where", F.where, torch.where, [mask(3, 4), normal(3, 4), normal(4)]),
    Case("log1p", F.log1p, torch.log1p, [lambda rng: rng.uniform(-0.9, 2.0, size=(3, 4))]),
    Case("sin", F.sin, torch.sin, [normal(3, 4)]),
    Case("cos", F.cos, torch.cos, [normal(3, 4)]),
    Case("erf", F.erf, torch.erf, [normal(3, 4)]),
    Case("clone", F.clone, torch.clone, [normal(3, 4)]),
    Case("remainder", F.remainder, torch.remainder, [normal(3, 4), divisors(3, 4)]),
    Case(
        "remainder-broadcast",
        F.remainder,
        torch.remainder,
        [lambda rng: 4.0 * rng.normal(size=(3, 4)), divisors(4)],
    ),
    same("remainder-operator", lambda x, y: x % y, [normal(3, 4), divisors(3, 4)]),
    same("remainder-by-negative-scalar", lambda x: x % -1.5, [normal(3, 4)]),
    Case(
        "rremainder-scalar",
        lambda y: 5.0 % y,  # torch has no gradient for `5.0 % y`
        lambda y: torch.remainder(torch.full_like(y, 5.0), y),
        [divisors(3, 4)],
    ),
]
POWERS = [
    same(f"pow-scalar-{k}", lambda x, k=k: x**k, [normal(3, 4) if k % 1 == 0 else positive(3, 4)])
    for k in (1, 2, 3, 4, -1, 0.5, 2.5)
] + [
    same("rpow-scalar", lambda x: 2.0**x, [normal(3, 4)]),
    same("pow-scalar-0-at-zero", lambda x: x**0, [ties(3, 4)]),  # torch: d(x**0)/dx = 0
    Case("pow-zero-base", F.pow, torch.pow, [const([0.0, 0.0, 1.0, 2.0]), positive(4)]),
]

# ---- reductions -------------------------------------------------------------------------


def _reduction(name, ours, theirs, axis, keepdims, maker):
    def torch_side(x):  # torch spells "all axes" as every axis
        return theirs(x, dim=tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims)

    return Case(
        f"{name}-axis{axis}-keepdims{keepdims}",
        lambda x: ours(x, axis=axis, keepdims=keepdims),
        torch_side,
        [maker],
    )


REDUCERS = [
    ("sum", F.sum, torch.sum),
    ("mean", F.mean, torch.mean),
    ("max", F.max, torch.amax),
    ("min", F.min, torch.amin),
]
AXES = [(None, False), (None, True), (1, False), (1, True), ((0, 2), False), (-1, True)]
SPREADS = [("var", F.var, torch.var), ("std", F.std, torch.std)]  # torch's correction=1
REDUCTIONS = [
    _reduction(name, ours, theirs, axis, keepdims, normal(2, 3, 4))
    for name, ours, theirs in REDUCERS + SPREADS
    for axis, keepdims in AXES
]
# torch.amax/amin share the gradient evenly between tied values, as diptych documents
REDUCTIONS += [
    _reduction(f"{name}-ties", ours, theirs, 1, False, ties(2, 5, 3))
    for name, ours, theirs in REDUCERS[2:]
]
REDUCTIONS += [
    Case(
        f"{name}-correction{c}",
        lambda x, f=ours, c=c: f(x, 1, correction=c),
        lambda x, f=theirs, c=c: f(x, 1, correction=c),
        [normal(3, 5)],
    )
    for name, ours, theirs in SPREADS
    for c in (0, 2)
] + [
    Case(
        "std-unbiased-false",
        lambda x: x.std(unbiased=False),
        lambda x: x.std(unbiased=False),
        [normal(3, 5)],
    ),
    Case(
        "var-method-keepdims",
        lambda x: x.var(0, keepdims=True),
        lambda x: x.var(0, keepdim=True),
        [normal(3, 5)],
    ),
]

# ---- linear algebra and shapes ----------------------------------------------------------

MATMULS = [
    Case(
        f"matmul-{'x'.join(map(str, s))}@{'x'.join(map(str, t))}",
        F.matmul,
        torch.matmul,
        [normal(*s), normal(*t)],
    )
    for s, t in [
        ((3, 4), (4, 2)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (4, 3)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4,)),
        ((4,), (2, 4, 3)),
    ]
]


def _torch_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return tuple(torch.as_tensor(p) if isinstance(p, np.ndarray) else p for p in parts)


INDICES = {
    "slices": (slice(1, 3), slice(None, None, 2)),
    "ellipsis-int": (Ellipsis, 1),
    "negative-int": -1,
    "newaxis": (None, slice(None), 2),
    "int-array-repeats": np.array([2, 0, 2, 3, 2]),
    "int-array-2d-repeats": np.array([[0, 1], [1, 1]]),
    "slice-int-array": (slice(1, 3), np.array([4, 0, 4])),
    "two-int-arrays": (np.array([0, 3, 0]), np.array([1, 1, 1])),
    "bool-mask": np.array([True, False, True, True]),
}
GETITEMS = [
    Case(
        f"getitem-{name}",
        lambda x, i=index: F.getitem(x, i),
        lambda x, i=index: x[_torch_index(i)],
        [normal(4, 5)],
    )
    for name, index in INDICES.items()
]


def _written(x, index, value):
    """torch's way to the value of x[index] = value: write into a clone."""
    y = x.clone()
    y[index] = value
    return y


ROWS = (np.array([3, 0, 2]), slice(None))
SETITEMS = [
    Case("setitem-mask-0d-value", F.setitem, _written, [normal(4, 5), mask(4, 5), normal()]),
    Case(
        "setitem-rows-broadcast-value",
        lambda x, v: F.setitem(x, ROWS, v),
        lambda x, v: _written(x, _torch_index(ROWS), v),
        [normal(4, 5), normal(3, 1)],
    ),
]

SHAPES = [
    Case(
        "reshape",
        lambda x: F.reshape(x, (2, -1)),
        lambda x: torch.reshape(x, (2, -1)),
        [normal(3, 4)],
    ),
    same("reshape-method", lambda x: x.reshape(4, 3), [normal(3, 4)]),
    Case(
        "permute",
        lambda x: F.permute(x, (2, 0, 1)),
        lambda x: torch.permute(x, (2, 0, 1)),
        [normal(2, 3, 4)],
    ),
    Case(
        "transpose",
        lambda x: F.transpose(x, 0, 2),
        lambda x: torch.transpose(x, 0, 2),
        [normal(2, 3, 4)],
    ),
    Case("transpose-default", F.transpose, lambda x: torch.transpose(x, -2, -1), [normal(2, 3, 4)]),
    Case(
        "broadcast_to",
        lambda x: F.broadcast_to(x, (2, 3, 4)),
        lambda x: torch.broadcast_to(x, (2, 3, 4)),
        [normal(3, 1)],
    ),
    Case(
        "expand_dims",
        lambda x: F.expand_dims(x, 1),
        lambda x: torch.unsqueeze(x, 1),
        [normal(3, 4)],
    ),
    Case(
        "expand_dims-last",
        lambda x: F.expand_dims(x, -1),
        lambda x: torch.unsqueeze(x, -1),
        [normal(3, 4)],
    ),
    Case("squeeze", lambda x: F.squeeze(x, 1), lambda x: torch.squeeze(x, 1), [normal(3, 1, 4)]),
    Case("squeeze-all", F.squeeze, torch.squeeze, [normal(1, 3, 1)]),
    Case(
        "flatten-middle",
        lambda x: F.flatten(x, 1, 2),
        lambda x: torch.flatten(x, 1, 2),
        [normal(2, 3, 4, 5)],
    ),
    Case(
        "flatten-to-end",
        lambda x: F.flatten(x, 1),
        lambda x: torch.flatten(x, 1),
        [normal(2, 3, 4)],
    ),
    same("t", lambda x: x.t(), [normal(3, 4)]),
    same("masked_fill", lambda x, m: x.masked_fill(m, -1.0), [normal(3, 4), mask(3, 4)]),
    Case(
        "concat",
        lambda *xs: F.concat(xs, axis=1),
        lambda *xs: torch.cat(xs, dim=1),
        [normal(2, 3), normal(2, 1), normal(2, 4)],
    ),
    Case(
        "cat",
        lambda *xs: F.cat(xs, 1),
        lambda *xs: torch.cat(xs, 1),
        [normal(2, 3), normal(2, 4)],
    ),
    Case(
        "stack",
        lambda *xs: F.stack(xs, axis=1),
        lambda *xs: torch.stack(xs, dim=1),
        [normal(2, 3), normal(2, 3)],
    ),
]

# ---- nn ---------------------------------------------------------------------------------

CONVS = [
    Case(
        f"conv2d-stride{s}-padding{p}",
        lambda x, w, b, s=s, p=p: F.conv2d(x, w, b, s, p),
        lambda x, w, b, s=s, p=p: TF.conv2d(x, w, b, stride=s, padding=p),
        [normal(2, 3, 7, 7), normal(4, 3, 3, 3), normal(4)],
    )
    for s in (1, 2)
    for p in (0, 1)
] + [
    Case(
        "conv2d-no-bias-2x3-kernel",
        lambda x, w: F.conv2d(x, w, padding=1),
        lambda x, w: TF.conv2d(x, w, padding=1),
        [normal(1, 2, 5, 6), normal(3, 2, 2, 3)],
    )
]
POOLS = [
    Case(
        f"{name}-k{k}-s{s}",
        lambda x, f=ours, k=k, s=s: f(x, k, s),
        lambda x, f=theirs, k=k, s=s: f(x, k, s),
        [normal(2, 3, 7, 7)],
    )
    for name, ours, theirs in [
        ("max_pool2d", F.max_pool2d, TF.max_pool2d),
        ("avg_pool2d", F.avg_pool2d, TF.avg_pool2d),
    ]
    for k, s in [(2, None), (3, 2), (3, 1)]  # (3, 2) and (3, 1): overlapping windows
]
NN = [
    Case(
        "softmax",
        lambda x: F.softmax(x, axis=1),
        lambda x: torch.softmax(x, dim=1),
        [normal(3, 4, 5)],
    ),
    Case(
        "softmax-large",
        F.softmax,
        lambda x: torch.softmax(x, dim=-1),
        [lambda rng: 500.0 * rng.normal(size=(3, 4))],
    ),
    Case(
        "softmax-masked",
        F.softmax,
        lambda x: torch.softmax(x, dim=-1),
        [const([[0.5, -np.inf, 1.0], [2.0, 0.1, -np.inf]])],
    ),
    Case("log_softmax", F.log_softmax, lambda x: torch.log_softmax(x, dim=-1), [normal(3, 4, 5)]),
    Case("logsumexp", F.logsumexp, lambda x: torch.logsumexp(x, dim=-1), [normal(3, 4, 5)]),
    Case(
        "logsumexp-axes-keepdims",
        lambda x: F.logsumexp(x, axis=(0, 2), keepdims=True),
        lambda x: torch.logsumexp(x, dim=(0, 2), keepdim=True),
        [normal(3, 4, 5)],
    ),
    Case("gelu", F.gelu, TF.gelu, [lambda rng: 3.0 * rng.normal(size=(3, 4))]),
    Case(
        "gelu-tanh",
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: TF.gelu(x, approximate="tanh"),
        [lambda rng: 3.0 * rng.normal(size=(3, 4))],
    ),
    Case(
        "layer_norm",
        lambda x, w, b: F.layer_norm(x, 4, w, b),
        lambda x, w, b: TF.layer_norm(x, (4,), w, b),
        [normal(2, 3, 4), normal(4), normal(4)],
    ),
    Case(
        "layer_norm-2d",
        lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
        lambda x, w, b: TF.layer_norm(x, (3, 4), w, b),
        [normal(2, 3, 4), normal(3, 4), normal(3, 4)],
    ),
    Case("embedding", F.embedding, TF.embedding, [const([[1, 3, 1], [0, 1, 4]]), normal(5, 3)]),
    Case("linear", F.linear, TF.linear, [normal(4, 3), normal(2, 3), normal(2)]),
    Case("linear-batched-no-bias", F.linear, TF.linear, [normal(2, 4, 3), normal(2, 3)]),
]

LOSSES = [
    ("mse_loss", F.mse_loss, TF.mse_loss, [normal(3, 4), normal(3, 4)]),
    ("cross_entropy", F.cross_entropy, TF.cross_entropy, [normal(6, 5), labels(5, 6)]),
    (
        "nll_loss",
        F.nll_loss,
        TF.nll_loss,
        [lambda rng: np.log(rng.dirichlet(np.ones(5), size=6)), labels(5, 6)],
    ),
    (
        "binary_cross_entropy",
        F.binary_cross_entropy,
        TF.binary_cross_entropy,
        [probabilities(3, 4), probabilities(3, 4)],
    ),
    (
        "binary_cross_entropy-hard-targets",
        F.binary_cross_entropy,
        TF.binary_cross_entropy,
        [probabilities(3, 4), lambda rng: (rng.random((3, 4)) > 0.5).astype(np.float64)],
    ),
]
NN += [
    Case(
        f"{name}-{reduction}",
        lambda *a, f=ours, r=reduction: f(*a, reduction=r),
        lambda *a, f=theirs, r=reduction: f(*a, reduction=r),
        makers,
    )
    for name, ours, theirs, makers in LOSSES
    for reduction in ("mean", "sum", "none")
]

CASES = (
    ELEMENTWISE + POWERS + REDUCTIONS + MATMULS + GETITEMS + SETITEMS + SHAPES + CONVS + POOLS + NN
)


def _assert_close(ours, theirs, what: str) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, strict=True, err_msg=what)


def test_case_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


def run_eager(fn: Callable, arrays: list, wrt: list, cotangent: np.ndarray) -> tuple:
    """fn on eager tensors: its value and the gradients of sum(value * cotangent) with
    respect to the inputs at positions `wrt`, as numpy arrays."""
    inputs = [E.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = fn(*inputs)
    grads = E.grad((out * cotangent).sum(), [inputs[i] for i in wrt]) if wrt else ()
    return out.numpy(), [g.numpy() for g in grads]


def run_compiled(optimize: int) -> Callable:
    """Like `run_eager`, from placeholders with the arrays' shapes and dtypes: one compiled
    function (at `optimize`) returns the value and the gradients."""

    def run(fn: Callable, arrays: list, wrt: list, cotangent: np.ndarray) -> tuple:
        inputs = [S.placeholder(a.shape, a.dtype, name=f"x{i}") for i, a in enumerate(arrays)]
        out = fn(*inputs)
        grads = S.grad((out * cotangent).sum(), [inputs[i] for i in wrt]) if wrt else []
        value, *grads = S.compile([out, *grads], inputs=inputs, optimize=optimize)(*arrays)
        return value, grads

    return run


ENGINES = {"eager": run_eager, "compiled-O0": run_compiled(0), "compiled-O2": run_compiled(2)}


def torch_reference(fn: Callable, arrays: list, wrt: list, rng) -> tuple:
    """fn on torch tensors: its value, a cotangent drawn for it, and the gradients of
    sum(value * cotangent) with respect to the inputs at positions `wrt`."""
    inputs = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = fn(*inputs)
    cotangent = rng.normal(size=tuple(out.shape))
    grads = torch.autograd.grad((out * torch.tensor(cotangent)).sum(), [inputs[i] for i in wrt])
    return out.detach().numpy(), cotangent, [g.numpy() for g in grads]


def assert_matches_torch(ours: Callable, theirs: Callable, arrays: list, engine: str, rng) -> None:
    """Values and the gradients of every float input, `ours` in `engine` against torch."""
    wrt = [i for i, a in enumerate(arrays) if is_float_array(a)]
    want, cotangent, want_grads = torch_reference(theirs, arrays, wrt, rng)
    # The oracle judges values: a nan where torch has a number must show as a mismatch,
    # not stop at numpy's warning (which the project's pytest config turns into an error).
    with np.errstate(divide="ignore", invalid="ignore"):
        value, grads = ENGINES[engine](ours, arrays, wrt, cotangent)
    _assert_close(value, want, f"forward ({engine})")
    for i, mine, reference in zip(wrt, grads, want_grads, strict=True):
        _assert_close(mine, reference, f"gradient of input {i} ({engine})")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matches_torch(case, engine, rng):
    arrays = [make(rng) for make in case.makers]
    assert_matches_torch(case.ours, case.theirs, arrays, engine, rng)
