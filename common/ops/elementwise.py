"""Elementwise ops: arithmetic, comparisons, selection and casts. Each entry holds its
kernel, shape rule, VJP and fused-expression template; the unary math functions (exp, sin,
...) are in `common.ops.unary`, declared with the helpers below.

Shapes broadcast (numpy rules); the autodiff driver sums gradients back to each input's
shape, so the VJP formulas below are written as if no broadcasting happened.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import functional as F
from common.dispatch import apply
from common.ops.core import (
    Aval,
    DTypeError,
    OpDef,
    broadcast_shapes,
    declare,
    result_dtype,
    same_as_input,
    uniform_samples,
)

__all__ = [
    "add", "sub", "mul", "div", "pow", "neg", "remainder", "floor_divide", "clone", "clamp",
    "maximum", "minimum", "where", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
    "logical_or", "logical_not", "cast",
]  # fmt: skip

BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (2, 3))]
UNARY_SHAPES = [((3, 4),), ((),)]


def _float_dtype(x: Aval) -> np.dtype:
    """numpy's result dtype for a transcendental function (ints and bools become floats)."""
    return np.result_type(result_dtype(x), np.float16)


def unary_float(x: Aval) -> Aval:
    """The shape rule of a transcendental function: ints and bools give floats, as numpy's."""
    return Aval(x.shape, _float_dtype(x))


def _broadcasting(name: str, dtype_rule=result_dtype):
    def abstract(*avals: Aval) -> Aval:
        return Aval(broadcast_shapes(name, *(a.shape for a in avals)), dtype_rule(*avals))

    return abstract


# Kernels that take `out=` must stay right when `out` is one of their inputs: the memory
# planner writes elementwise ops in place into inputs that die there.


def ufunc_kernel(name: str):
    """The kernel of an op that is one numpy/cupy ufunc (written into `out` if given). It
    says which (`kernel.ufunc`), so generated code can call the ufunc itself."""
    numpy_ufunc = getattr(np, name)

    def kernel(xp, *args, out=None):
        return (numpy_ufunc if xp is np else getattr(xp, name))(*args, out=out)

    kernel.ufunc = name
    return kernel


def elementwise_op(name, kernel, vjp, expr, arity, low=-2.0, high=2.0, dtype=None):
    """Declare an elementwise op with the default shape rule (broadcasting; `dtype` gives
    the result's dtype, else numpy's promotion) and test samples drawn in [low, high)."""
    rule = dtype or result_dtype
    abstract = _broadcasting(name, rule) if arity > 1 else (dtype or same_as_input)
    shapes = BINARY_SHAPES if arity == 2 else UNARY_SHAPES
    return declare(
        OpDef(name, "elementwise", kernel, abstract, vjp=vjp, expr=expr, writes_out=True,
              samples=uniform_samples(shapes, low, high))
    )  # fmt: skip


# ---- arithmetic -------------------------------------------------------------------------

ADD = elementwise_op("add", ufunc_kernel("add"),
                     (lambda g, out, x, y: g, lambda g, out, x, y: g), "({0} + {1})", 2)
SUB = elementwise_op("sub", ufunc_kernel("subtract"),
                     (lambda g, out, x, y: g, lambda g, out, x, y: -g), "({0} - {1})", 2)
MUL = elementwise_op("mul", ufunc_kernel("multiply"),
                     (lambda g, out, x, y: g * y, lambda g, out, x, y: g * x), "({0} * {1})", 2)
DIV = elementwise_op("div", ufunc_kernel("true_divide"),
                     (lambda g, out, x, y: g / y, lambda g, out, x, y: -g * out / y),
                     "({0} / {1})", 2, low=0.5, high=2.0,
                     dtype=lambda *a: np.result_type(result_dtype(*a), np.float16))  # fmt: skip
NEG = elementwise_op("neg", ufunc_kernel("negative"), (lambda g, out, x: -g,), "(-{0})", 1)
# Python's // and % (numpy's floor_divide and remainder): the remainder takes the divisor's
# sign. floor_divide is piecewise constant, so no gradient flows through it (as sign); the
# remainder x - floor(x / y) * y has torch's gradients 1 and -floor(x / y). numba's own
# np.floor_divide differs from numpy's at infinities; its // and % do not. (CUDA has no
# float % or //: the cupy target needs spellings in `common.fusion.CUDA_SPELLING`.)
FLOOR_DIVIDE = elementwise_op("floor_divide", ufunc_kernel("floor_divide"), None,
                              "({0} // {1})", 2)
REMAINDER = elementwise_op("remainder", ufunc_kernel("remainder"),
                           (lambda g, out, x, y: g,
                            lambda g, out, x, y: -g * F.floor_divide(x, y)),
                           "({0} % {1})", 2)  # fmt: skip


def _clone_kernel(xp, x, out=None):
    if out is None:
        return xp.array(x, copy=True)
    xp.copyto(out, x)
    return out


# a copy in fresh memory that stays on the tape (torch's clone; detach() leaves the tape)
CLONE = elementwise_op("clone", _clone_kernel, (lambda g, out, x: g,), "({0})", 1)


# x ** k by multiplication for small k: numpy's float32 `power` on negative inputs is ~10x
# slower than x*x*x. The results equal numpy's to rounding.
def _cube(xp, x, out):
    return xp.multiply(x * x, x, out=out)  # (x * x) * x, as Python evaluates x * x * x


def _fourth(xp, x, out):
    square = xp.multiply(x, x, out=out)
    return xp.multiply(square, square, out=out)


_POW_BY_MULTIPLICATION = {
    1: lambda xp, x, out: xp.positive(x, out=out),  # a copy: a kernel never returns its input
    2: lambda xp, x, out: xp.multiply(x, x, out=out),
    3: _cube,
    4: _fourth,
    -1: lambda xp, x, out: xp.reciprocal(x, out=out),
    0.5: lambda xp, x, out: xp.sqrt(x, out=out),
}


def _pow_kernel(xp, x, y, out=None):
    if type(y) in (int, float) and y in _POW_BY_MULTIPLICATION and x.dtype.kind == "f":
        return _POW_BY_MULTIPLICATION[y](xp, x, out)
    return xp.power(x, y, out=out)


def _pow_vjp_base(g, out, x, y):
    """g * y * x**(y-1), taken as 0 where y == 0 (x**0 is constant, even at x == 0)."""
    if isinstance(y, (int, float)):
        return g * 0 if y == 0 else g * y * x ** (y - 1)
    return F.where(y == 0, 0, g * y * x ** (y - 1))


def _pow_vjp_exponent(g, out, x, y):
    """g * x**y * log(x), taken as 0 where x == 0 (the limit for y > 0, as torch does)."""
    return g * out * F.log(F.where(x == 0, 1, x))


POW = elementwise_op(
    "pow", _pow_kernel, (_pow_vjp_base, _pow_vjp_exponent),
    "({0} ** {1})", 2, low=0.5, high=2.0,
)  # fmt: skip


def _half_on_ties(g, mine, other, wins):
    """torch's rule for maximum/minimum: the winner takes g; a tie splits it in half."""
    return F.where(mine == other, g * 0.5, F.where(wins, g, 0))


MAXIMUM = elementwise_op("maximum", ufunc_kernel("maximum"),
                         (lambda g, out, x, y: _half_on_ties(g, x, y, x > y),
                          lambda g, out, x, y: _half_on_ties(g, y, x, y > x)),
                         "maximum({0}, {1})", 2)  # fmt: skip
MINIMUM = elementwise_op("minimum", ufunc_kernel("minimum"),
                         (lambda g, out, x, y: _half_on_ties(g, x, y, x < y),
                          lambda g, out, x, y: _half_on_ties(g, y, x, y < x)),
                         "minimum({0}, {1})", 2)  # fmt: skip


def _clamp_kernel(xp, x, min=None, max=None, out=None):
    if min is None and max is None:
        return xp.positive(x, out=out)
    if max is None:
        return xp.maximum(x, min, out=out)
    if min is None:
        return xp.minimum(x, max, out=out)
    return xp.clip(x, min, max, out=out)


def _clamp_vjp(g, out, x, min=None, max=None):
    inside = None
    if min is not None:
        inside = x >= min
    if max is not None:
        below = x <= max
        inside = below if inside is None else F.logical_and(inside, below)
    return F.where(inside, g, 0) if inside is not None else g


CLAMP = declare(OpDef(
    "clamp", "elementwise", _clamp_kernel, same_as_input, vjp=(_clamp_vjp,), writes_out=True,
    expr="clip({0}, {min}, {max})",
    samples=lambda rng: [((rng.uniform(-2, 2, (3, 4)),), {"min": -0.5, "max": 0.7}),
                         ((rng.uniform(-2, 2, (5,)),), {"min": 0.0})],
))  # fmt: skip


def _where_kernel(xp, cond, x, y, out=None):
    if out is None:
        return xp.where(cond, x, y)
    xp.copyto(out, x, where=cond)  # this order stays right when `out` is x or y (in place)
    xp.copyto(out, y, where=xp.logical_not(cond))
    return out


def _where_abstract(cond: Aval, x: Aval, y: Aval) -> Aval:
    if not cond.weak and cond.dtype != np.bool_:
        raise DTypeError(
            f"where: the condition must be boolean, got {cond.dtype}. "
            "Fix: pass a comparison such as `x > 0`."
        )
    return Aval(broadcast_shapes("where", cond.shape, x.shape, y.shape), result_dtype(x, y))


WHERE = declare(OpDef(
    "where", "elementwise", _where_kernel, _where_abstract,
    vjp=(None, lambda g, out, c, x, y: F.where(c, g, 0), lambda g, out, c, x, y: F.where(c, 0, g)),
    expr="where({0}, {1}, {2})", writes_out=True,
    samples=lambda rng: [((rng.uniform(-1, 1, (3, 4)) > 0, rng.normal(size=(3, 4)),
                           rng.normal(size=(4,))), {})],
))  # fmt: skip


# ---- comparisons and casts (no gradient flows through them) -----------------------------

def _comparison(name: str, ufunc: str, template: str) -> OpDef:
    return elementwise_op(name, ufunc_kernel(ufunc), None, template, 2,
                          dtype=lambda *a: np.dtype(np.bool_))


EQ = _comparison("eq", "equal", "({0} == {1})")
NE = _comparison("ne", "not_equal", "({0} != {1})")
LT = _comparison("lt", "less", "({0} < {1})")
LE = _comparison("le", "less_equal", "({0} <= {1})")
GT = _comparison("gt", "greater", "({0} > {1})")
GE = _comparison("ge", "greater_equal", "({0} >= {1})")
LOGICAL_AND = _comparison("logical_and", "logical_and", "logical_and({0}, {1})")
LOGICAL_OR = _comparison("logical_or", "logical_or", "logical_or({0}, {1})")
LOGICAL_NOT = elementwise_op("logical_not", ufunc_kernel("logical_not"), None,
                             "logical_not({0})", 1,
                             dtype=lambda x: Aval(x.shape, np.dtype(np.bool_)))


def _cast_kernel(xp, x, dtype, out=None):
    if out is None:
        return x.astype(dtype)
    xp.copyto(out, x, casting="unsafe")
    return out


def _cast_vjp(g, out, x, dtype):
    return F.cast(g, x.dtype)


CAST = declare(OpDef(
    "cast", "elementwise", _cast_kernel,
    lambda x, dtype: Aval(x.shape, np.dtype(dtype)), vjp=(_cast_vjp,), writes_out=True,
    samples=uniform_samples(UNARY_SHAPES, dtype="float64"),
))  # fmt: skip


# ---- the public functions (F.add, ...) --------------------------------------------------

def add(x: Any, y: Any) -> Any:
    return apply(ADD, x, y)


def sub(x: Any, y: Any) -> Any:
    return apply(SUB, x, y)


def mul(x: Any, y: Any) -> Any:
    return apply(MUL, x, y)


def div(x: Any, y: Any) -> Any:
    return apply(DIV, x, y)


def pow(x: Any, y: Any) -> Any:  # noqa: A001 (mirrors torch.pow)
    return apply(POW, x, y)


def neg(x: Any) -> Any:
    return apply(NEG, x)


def floor_divide(x: Any, y: Any) -> Any:
    """`x // y`: the quotient rounded down (Python's and torch's floor division)."""
    return apply(FLOOR_DIVIDE, x, y)


def remainder(x: Any, y: Any) -> Any:
    """`x % y`, with the sign of the divisor (Python's and torch's remainder, not C's fmod)."""
    return apply(REMAINDER, x, y)


def clone(x: Any) -> Any:
    """A copy of `x` in its own memory, through which gradients flow (torch's clone)."""
    return apply(CLONE, x)


def clamp(x: Any, min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
    """Limit `x` to [min, max]; the gradient flows where min <= x <= max (as in torch)."""
    return apply(CLAMP, x, min=min, max=max)


def maximum(x: Any, y: Any) -> Any:
    return apply(MAXIMUM, x, y)


def minimum(x: Any, y: Any) -> Any:
    return apply(MINIMUM, x, y)


def where(cond: Any, x: Any, y: Any) -> Any:
    """`x` where `cond` holds, else `y`: the data-dependent choice that works in both engines."""
    return apply(WHERE, cond, x, y)


def eq(x: Any, y: Any) -> Any:
    return apply(EQ, x, y)


def ne(x: Any, y: Any) -> Any:
    return apply(NE, x, y)


def lt(x: Any, y: Any) -> Any:
    return apply(LT, x, y)


def le(x: Any, y: Any) -> Any:
    return apply(LE, x, y)


def gt(x: Any, y: Any) -> Any:
    return apply(GT, x, y)


def ge(x: Any, y: Any) -> Any:
    return apply(GE, x, y)


def logical_and(x: Any, y: Any) -> Any:
    return apply(LOGICAL_AND, x, y)


def logical_or(x: Any, y: Any) -> Any:
    return apply(LOGICAL_OR, x, y)


def logical_not(x: Any) -> Any:
    return apply(LOGICAL_NOT, x)


def cast(x: Any, dtype: Any) -> Any:
    """`x` converted to `dtype` (the gradient is converted back)."""
    return apply(CAST, x, dtype=np.dtype(dtype).name)
