"""Elementwise ops: arithmetic, comparisons, selection and casts. Each entry holds its
kernel, shape rule, VJP and fused-expression template (with what each fusion target needs
to spell it: `scalar` and `preamble`, see `OpDef`); the unary math functions (exp, sin,
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


def elementwise_op(
    name, kernel, vjp, expr, arity, low=-2.0, high=2.0, dtype=None, scalar=None, preamble=None
):
    """Declare an elementwise op with the default shape rule (broadcasting; `dtype` gives
    the result's dtype, else numpy's promotion) and test samples drawn in [low, high);
    `scalar` and `preamble` are the fusion targets' own spellings (see `OpDef`)."""
    rule = dtype or result_dtype
    abstract = _broadcasting(name, rule) if arity > 1 else (dtype or same_as_input)
    shapes = BINARY_SHAPES if arity == 2 else UNARY_SHAPES
    return declare(
        OpDef(name, "elementwise", kernel, abstract, vjp=vjp, expr=expr, writes_out=True,
              scalar=scalar or {}, preamble=preamble or {},
              samples=uniform_samples(shapes, low, high))
    )  # fmt: skip


# ---- arithmetic -------------------------------------------------------------------------

ADD = elementwise_op(
    "add", ufunc_kernel("add"), (lambda g, out, x, y: g, lambda g, out, x, y: g), "({0} + {1})", 2
)
SUB = elementwise_op(
    "sub",
    ufunc_kernel("subtract"),
    (lambda g, out, x, y: g, lambda g, out, x, y: -g),
    "({0} - {1})",
    2,
)
MUL = elementwise_op(
    "mul",
    ufunc_kernel("multiply"),
    (lambda g, out, x, y: g * y, lambda g, out, x, y: g * x),
    "({0} * {1})",
    2,
)
DIV = elementwise_op("div", ufunc_kernel("true_divide"),
                     (lambda g, out, x, y: g / y, lambda g, out, x, y: -g * out / y),
                     "({0} / {1})", 2, low=0.5, high=2.0,
                     dtype=lambda *a: np.result_type(result_dtype(*a), np.float16))  # fmt: skip
NEG = elementwise_op("neg", ufunc_kernel("negative"), (lambda g, out, x: -g,), "(-{0})", 1)
# Python's // and % (numpy's floor_divide and remainder): the remainder takes the divisor's
# sign. floor_divide is piecewise constant, so no gradient flows through it (as sign); the
# remainder x - floor(x / y) * y has torch's gradients 1 and -floor(x / y). numba's own
# np.floor_divide differs from numpy's at infinities; its // and % do not. CUDA has no
# float % or //: numpy's npy_divmod, spelled in C (fused groups compute floats).
_CUDA_DIVMOD = """
template <typename T>
__device__ T _floored(T a, T b, T* mod) {  // numpy's npy_divmod, for floats
  T rem = fmod(a, b);
  if (b == (T)0) { *mod = rem; return a / b; }
  T div = (a - rem) / b;
  if (rem != (T)0) {
    if ((b < (T)0) != (rem < (T)0)) { rem += b; div -= (T)1; }
  } else {
    rem = copysign((T)0, b);
  }
  *mod = rem;
  if (div != (T)0) { T down = floor(div); return div - down > (T)0.5 ? down + (T)1 : down; }
  return copysign((T)0, a / b);
}
template <typename A, typename B, typename T = decltype(A() + B())>
__device__ T _floor_divide(A a, B b) { T mod; return _floored((T)a, (T)b, &mod); }
template <typename A, typename B, typename T = decltype(A() + B())>
__device__ T _remainder(A a, B b) { T mod; _floored((T)a, (T)b, &mod); return mod; }
"""
FLOOR_DIVIDE = elementwise_op("floor_divide", ufunc_kernel("floor_divide"), None,
                              "({0} // {1})", 2, scalar={"cuda": "_floor_divide({0}, {1})"},
                              preamble={"cuda": _CUDA_DIVMOD})  # fmt: skip
REMAINDER = elementwise_op("remainder", ufunc_kernel("remainder"),
                           (lambda g, out, x, y: g,
                            lambda g, out, x, y: -g * F.floor_divide(x, y)),
                           "({0} % {1})", 2, scalar={"cuda": "_remainder({0}, {1})"},
                           preamble={"cuda": _CUDA_DIVMOD})  # fmt: skip


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


# numba spells the same exponents the same way: the same bits, and the same NaN for
# (-inf) ** 0.5
_SMALL_POWERS = {
    1: "(+{0})",
    2: "({0} * {0})",
    3: "({0} * {0} * {0})",
    4: "(({0} * {0}) * ({0} * {0}))",
    -1: "(1 / {0})",
    0.5: "sqrt({0})",
}


def _numba_pow(args: list[str], params: dict, step: Any) -> str:
    kind, exponent = step.args[1]
    if kind == "lit" and type(exponent) in (int, float) and exponent in _SMALL_POWERS:
        return _SMALL_POWERS[exponent].format(args[0])
    return f"({args[0]} ** {args[1]})"


_CUDA_POW = """
template <typename A, typename B>
__device__ A _pow(A x, B y) {  // small integer powers by multiplication, as on the CPU
  if (y == (B)2) return x * x;
  if (y == (B)3) return x * x * x;
  return pow(x, (A)y);
}
"""


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
    scalar={"numba": _numba_pow, "cuda": "_pow({0}, {1})"},
    preamble={"numba": "from numpy import sqrt", "cuda": _CUDA_POW},
)  # fmt: skip


def _half_on_ties(g, mine, other, wins):
    """torch's rule for maximum/minimum: the winner takes g; a tie splits it in half."""
    return F.where(mine == other, g * 0.5, F.where(wins, g, 0))


CUDA_MAXIMUM = """
template <typename A, typename B>
__device__ A _maximum(A a, B b) { return a > (A)b ? a : (A)b; }
"""
_CUDA_MINIMUM = """
template <typename A, typename B>
__device__ A _minimum(A a, B b) { return a < (A)b ? a : (A)b; }
"""
MAXIMUM = elementwise_op("maximum", ufunc_kernel("maximum"),
                         (lambda g, out, x, y: _half_on_ties(g, x, y, x > y),
                          lambda g, out, x, y: _half_on_ties(g, y, x, y > x)),
                         "maximum({0}, {1})", 2, scalar={"cuda": "_maximum({0}, {1})"},
                         preamble={"numba": "from numpy import maximum",
                                   "cuda": CUDA_MAXIMUM})  # fmt: skip
MINIMUM = elementwise_op("minimum", ufunc_kernel("minimum"),
                         (lambda g, out, x, y: _half_on_ties(g, x, y, x < y),
                          lambda g, out, x, y: _half_on_ties(g, y, x, y < x)),
                         "minimum({0}, {1})", 2, scalar={"cuda": "_minimum({0}, {1})"},
                         preamble={"numba": "from numpy import minimum",
                                   "cuda": _CUDA_MINIMUM})  # fmt: skip


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


def _bound(value: str | None, infinite: str) -> str:
    return infinite if value is None else value


_NUMBA_CLIP = """
@numba.njit(inline="always")
def clip(x, lo, hi):
    return min(max(x, lo), hi)
"""
_CUDA_CLIP = """
template <typename X, typename L, typename H>
__device__ X _clip(X x, L lo, H hi) { return min(max(x, (X)lo), (X)hi); }
"""
CLAMP = declare(OpDef(
    "clamp", "elementwise", _clamp_kernel, same_as_input, vjp=(_clamp_vjp,), writes_out=True,
    expr="clip({0}, {min}, {max})",
    scalar={"numba": lambda a, p, s: f"clip({a[0]}, {_bound(p['min'], '-np.inf')}, "
                                     f"{_bound(p['max'], 'np.inf')})",
            "cuda": lambda a, p, s: f"_clip({a[0]}, {_bound(p['min'], '-_inf()')}, "
                                    f"{_bound(p['max'], '_inf()')})"},
    preamble={"numba": _NUMBA_CLIP, "cuda": _CUDA_CLIP},
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


_NUMBA_WHERE = """
@numba.njit(inline="always")
def where(c, a, b):
    return a if c else b
"""
_CUDA_WHERE = """
template <typename C, typename A, typename B>
__device__ A _where(C c, A a, B b) { return c ? a : (A)b; }
"""
WHERE = declare(OpDef(
    "where", "elementwise", _where_kernel, _where_abstract,
    vjp=(None, lambda g, out, c, x, y: F.where(c, g, 0), lambda g, out, c, x, y: F.where(c, 0, g)),
    expr="where({0}, {1}, {2})", writes_out=True, scalar={"cuda": "_where({0}, {1}, {2})"},
    preamble={"numba": _NUMBA_WHERE, "cuda": _CUDA_WHERE},
    samples=lambda rng: [((rng.uniform(-1, 1, (3, 4)) > 0, rng.normal(size=(3, 4)),
                           rng.normal(size=(4,))), {})],
))  # fmt: skip


# ---- comparisons and casts (no gradient flows through them) -----------------------------


def _comparison(name: str, ufunc: str, template: str, **spellings: Any) -> OpDef:
    return elementwise_op(
        name,
        ufunc_kernel(ufunc),
        None,
        template,
        2,
        dtype=lambda *a: np.dtype(np.bool_),
        **spellings,
    )


EQ = _comparison("eq", "equal", "({0} == {1})")
NE = _comparison("ne", "not_equal", "({0} != {1})")
LT = _comparison("lt", "less", "({0} < {1})")
LE = _comparison("le", "less_equal", "({0} <= {1})")
GT = _comparison("gt", "greater", "({0} > {1})")
GE = _comparison("ge", "greater_equal", "({0} >= {1})")
LOGICAL_AND = _comparison(
    "logical_and",
    "logical_and",
    "logical_and({0}, {1})",
    scalar={"cuda": "({0} && {1})"},
    preamble={"numba": "from numpy import logical_and"},
)
LOGICAL_OR = _comparison(
    "logical_or",
    "logical_or",
    "logical_or({0}, {1})",
    scalar={"cuda": "({0} || {1})"},
    preamble={"numba": "from numpy import logical_or"},
)
LOGICAL_NOT = elementwise_op(
    "logical_not",
    ufunc_kernel("logical_not"),
    None,
    "logical_not({0})",
    1,
    dtype=lambda x: Aval(x.shape, np.dtype(np.bool_)),
    scalar={"cuda": "(!{0})"},
    preamble={"numba": "from numpy import logical_not"},
)


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
