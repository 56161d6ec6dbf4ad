"""`gradcheck`: eager and compiled gradients, first and second order, held to central
differences in float64."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import eager as E
import symbolic as S
from common.dispatch import engine_scope
from compare.check.equivalence import parameter_names
from compare.check.stages import as_list, as_numpy

EPS = 1e-6  # central differences in float64: truncation ~EPS**2, rounding ~1e-16 / EPS
RTOL_GRAD = 1e-5
ATOL_GRAD = {1: 1e-7, 2: 1e-6}  # differences of differences carry more rounding


@dataclass(frozen=True)
class Worst:
    """The entry furthest from central differences, relative to its tolerance."""

    input: str  # "x (input 0)"
    entry: tuple  # its index in that input
    order: int  # 1: the gradient; 2: the gradient of <gradient, v>, a Hessian-vector product
    engine: str  # "eager" or "compiled"
    expected: float  # by central differences
    got: float
    tolerance: float

    @property
    def error(self) -> float:
        return abs(self.got - self.expected)


@dataclass
class GradcheckReport:
    """Whether every gradient checked agrees with central differences; `str()` says it."""

    name: str
    orders: tuple[int, ...]
    optimize: int
    worst: Worst | None  # None: no float input to differentiate
    entries: int  # entries compared, over inputs, orders and engines

    @property
    def ok(self) -> bool:
        return self.worst is None or self.worst.error <= self.worst.tolerance

    def __str__(self) -> str:
        what = " and ".join(("first order", "second order")[o - 1] for o in self.orders)
        head = (
            f"{self.name}: gradcheck {'passes' if self.ok else 'FAILS'} ({what}, eager and "
            f"compiled at optimize={self.optimize}, {self.entries} entries against central "
            "differences in float64)"
        )
        w = self.worst
        if w is None:
            return head + ": no float input to differentiate."
        which = ("the gradient", "the Hessian-vector product")[w.order - 1]
        return (
            f"{head}. {'The worst' if self.ok else 'Wrong'}: {which} of {w.input} at entry "
            f"{w.entry}, {w.engine}, is {w.got:.6g} where central differences give "
            f"{w.expected:.6g} (error {w.error:.3g}, tolerance {w.tolerance:.3g})."
        )


def gradcheck(
    fn: Callable[..., Any], *inputs: np.ndarray, order: int = 2, optimize: int = 2
) -> GradcheckReport:
    """Check the gradients of `sum(fn(*inputs) * c)` (c a fixed random cotangent; of several
    outputs, the first) with respect to every float input, eagerly and compiled (S.grad),
    against central differences in float64; with `order=2` also the gradient of
    `sum(<gradient, v>)` (v fixed, random: a Hessian-vector product), against central
    differences of the eager first-order gradient. Inputs are taken in float64."""
    primals = [_as_float64(np.asarray(a)) for a in inputs]
    floats = [i for i, a in enumerate(primals) if a.dtype.kind == "f"]
    names = parameter_names(fn, len(primals))
    rng = np.random.default_rng(0)
    with E.no_grad():
        out = as_numpy(as_list(fn(*(E.tensor(a) for a in primals)))[0])
    cotangent = rng.normal(size=out.shape)
    directions = [rng.normal(size=primals[i].shape) for i in floats]
    grads = _Gradients(fn, primals, floats, cotangent, directions)
    report = GradcheckReport(
        getattr(fn, "__name__", "fn"), tuple(range(1, order + 1)), optimize, None, 0
    )
    checks = {1: (grads.loss, grads.eager_first(), grads.compiled(1, optimize))}
    if order >= 2:
        checks[2] = (grads.directional, grads.eager_second(), grads.compiled(2, optimize))
    for level, (numeric, eager, compiled) in checks.items():
        for k, i in enumerate(floats):
            want = _central_differences(numeric, primals, i)
            label = f"{names[i]} (input {i})"
            for engine, got in (("eager", eager[k]), ("compiled", compiled[k])):
                report.entries += want.size
                report.worst = _worse(report.worst, label, level, engine, want, got)
    return report


def _as_float64(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype.kind == "f" else array


def _worse(worst, label: str, order: int, engine: str, want, got) -> Worst | None:
    tolerance = ATOL_GRAD[order] + RTOL_GRAD * np.abs(want)
    excess = np.abs(np.asarray(got, np.float64) - want) / tolerance
    entry = np.unravel_index(int(np.argmax(np.where(np.isnan(excess), np.inf, excess))), want.shape)
    found = Worst(
        label, tuple(int(e) for e in entry), order, engine, float(want[entry]),
        float(np.asarray(got)[entry]), float(tolerance[entry]),
    )  # fmt: skip
    if worst is None or _excess(found) > _excess(worst):
        return found
    return worst


def _excess(w: Worst) -> float:
    return np.inf if np.isnan(w.got) else w.error / w.tolerance


def _central_differences(f: Callable[[list], float], primals: list, i: int) -> np.ndarray:
    """d f(primals) / d primals[i], entry by entry."""
    args = [a.copy() for a in primals]
    x, grad = args[i], np.empty(args[i].shape)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + EPS
        high = f(args)
        x[index] = saved - EPS
        low = f(args)
        x[index] = saved
        grad[index] = (high - low) / (2 * EPS)
    return grad


class _Gradients:
    """The quantities gradcheck differentiates, eagerly, numerically and compiled."""

    def __init__(self, fn, primals, floats, cotangent, directions) -> None:
        self.fn, self.primals, self.floats = fn, primals, floats
        self.cotangent, self.directions = cotangent, directions

    def _out(self, *args: Any) -> Any:
        return as_list(self.fn(*args))[0]  # of several outputs, the first (a model's loss)

    def loss(self, args: list) -> float:
        with E.no_grad():
            return float(np.sum(as_numpy(self._out(*(E.tensor(a) for a in args))) * self.cotangent))

    def _eager(self, args: list, create_graph: bool) -> tuple[list, list]:
        leaves = [E.tensor(a, requires_grad=i in self.floats) for i, a in enumerate(args)]
        wrt = [leaves[i] for i in self.floats]
        loss = (self._out(*leaves) * self.cotangent).sum()
        grads = E.grad(loss, wrt, create_graph=create_graph, allow_unused=True)
        return wrt, [E.tensor(np.zeros(x.shape)) if g is None else g for g, x in zip(grads, wrt)]

    def eager_first(self, args: list | None = None) -> list[np.ndarray]:
        return [as_numpy(g) for g in self._eager(args or self.primals, False)[1]]

    def directional(self, args: list) -> float:
        return sum(float(np.sum(g * v)) for g, v in zip(self.eager_first(args), self.directions))

    def eager_second(self) -> list[np.ndarray]:
        wrt, grads = self._eager(self.primals, True)
        total = sum((g * v).sum() for g, v in zip(grads, self.directions))
        if not getattr(total, "requires_grad", False):  # a gradient that is constant
            return [np.zeros(x.shape) for x in wrt]
        second = E.grad(total, wrt, allow_unused=True)
        return [np.zeros(x.shape) if h is None else as_numpy(h) for h, x in zip(second, wrt)]

    def compiled(self, order: int, optimize: int) -> list[np.ndarray]:
        feeds = [S.placeholder(a.shape, a.dtype) for a in self.primals]
        wrt = [feeds[i] for i in self.floats]
        with engine_scope(S.Symbol):  # as S.compile traces: weights alone become nodes too
            grads = S.grad((self._out(*feeds) * self.cotangent).sum(), wrt)
            if order == 2:
                grads = S.grad(sum((g * v).sum() for g, v in zip(grads, self.directions)), wrt)
        fn = S.compile(list(grads), inputs=feeds, optimize=optimize)
        return [as_numpy(g) for g in fn(*self.primals)]


def gradcheck_of_model(
    name: str, batch: int | None = None, size: int | None = None, order: int = 2
) -> GradcheckReport:
    """`gradcheck` of a zoo model's loss with respect to its float inputs (every layer's VJP
    lies on that path), weights fixed and held in float64 for the check; at the model's
    test sizes unless given."""
    from compare import zoo

    model = zoo.get(name)
    batch, size = batch or model.test_sizes[0], size or model.test_sizes[1]
    module = model.build(size, 0)
    inputs = model.make_inputs(batch, size, 0)
    floats = [k for k, v in inputs.items() if v.dtype.kind == "f"]

    def loss(*values: Any) -> Any:
        given = {**inputs, **dict(zip(floats, values))}
        return model.loss_and_outputs(module, list(given.values()))[0]

    loss.__name__ = f"{name} (batch {batch}, {model.size_means} {size})"
    loss.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.POSITIONAL_ONLY) for k in floats]
    )
    saved = [(p, p.data) for p in module.parameters()]
    try:
        for p, data in saved:
            p.data = data.astype(np.float64)
        return gradcheck(loss, *(inputs[k] for k in floats), order=order)
    finally:
        for p, data in saved:
            p.data = data
