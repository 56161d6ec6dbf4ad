"""Unary math functions (exp, log, log1p, sqrt, tanh, sigmoid, abs, sign, relu, sin, cos, erf):
kernel, shape rule, VJP and fused-expression template, one entry each.

A template is one call, `exp({0})`, read as it is by numba (whose kernels import the name
the op's preamble gives: numpy's `exp`, math's `erf`) and by CUDA (whose math library has
them all, for float and double); the numpy target runs the kernels themselves.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from common import functional as F
from common.dispatch import apply
from common.ops.core import Aval, result_dtype
from common.ops.elementwise import CUDA_MAXIMUM, elementwise_op, ufunc_kernel, unary_float

__all__ = [
    "exp", "log", "log1p", "sqrt", "abs", "sign", "tanh", "sigmoid", "relu", "sin", "cos", "erf",
]  # fmt: skip


def _from(module: str, name: str) -> dict:
    """The numba preamble of an op spelled `name({0})`: numba knows numpy's and math's."""
    return {"numba": f"from {module} import {name}"}


# numba calls scalar libm for np.tanh, which no loop can vectorize; for float32 this rational
# approximation (Eigen's, also XLA's on the CPU; a few ulp) is plain arithmetic that LLVM
# vectorizes. NaN passes through; from 13 ln 2 = 9.011 on, float32 tanh rounds to +-1, which
# is returned exactly (infinities included).
_FAST_TANH = """
@numba.njit(inline="always")
def tanh(x):
    if x != x:
        return x
    if abs(x) >= np.float32(9.0110):
        return np.float32(1.0) if x > 0 else np.float32(-1.0)
    x = min(max(x, np.float32(-7.99881172180175781)), np.float32(7.99881172180175781))
    if abs(x) < np.float32(0.0004):
        return x
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q
"""


def _numba_tanh(dtypes: set) -> str:
    """The float32 approximation in float32-only kernels; numpy's tanh where float64 is."""
    return "from numpy import tanh" if "float64" in dtypes else _FAST_TANH


EXP = elementwise_op(
    "exp",
    ufunc_kernel("exp"),
    (lambda g, out, x: g * out,),
    "exp({0})",
    1,
    dtype=unary_float,
    preamble=_from("numpy", "exp"),
)
LOG = elementwise_op(
    "log",
    ufunc_kernel("log"),
    (lambda g, out, x: g / x,),
    "log({0})",
    1,
    dtype=unary_float,
    low=0.2,
    high=3.0,
    preamble=_from("numpy", "log"),
)
LOG1P = elementwise_op(
    "log1p",
    ufunc_kernel("log1p"),
    (lambda g, out, x: g / (1 + x),),
    "log1p({0})",
    1,
    dtype=unary_float,
    low=-0.8,
    high=3.0,
    preamble=_from("numpy", "log1p"),
)
SQRT = elementwise_op(
    "sqrt",
    ufunc_kernel("sqrt"),
    (lambda g, out, x: g * 0.5 / out,),
    "sqrt({0})",
    1,
    dtype=unary_float,
    low=0.2,
    high=3.0,
    preamble=_from("numpy", "sqrt"),
)
TANH = elementwise_op("tanh", ufunc_kernel("tanh"),
                      (lambda g, out, x: g * (1 - out * out),), "tanh({0})", 1,
                      dtype=unary_float, preamble={"numba": _numba_tanh})  # fmt: skip
SIN = elementwise_op(
    "sin",
    ufunc_kernel("sin"),
    (lambda g, out, x: g * F.cos(x),),
    "sin({0})",
    1,
    dtype=unary_float,
    preamble=_from("numpy", "sin"),
)
COS = elementwise_op(
    "cos",
    ufunc_kernel("cos"),
    (lambda g, out, x: -g * F.sin(x),),
    "cos({0})",
    1,
    dtype=unary_float,
    preamble=_from("numpy", "cos"),
)


def _sigmoid_kernel(xp, x, out=None):
    # 0.5 * tanh(x / 2) + 0.5 never overflows, unlike 1 / (1 + exp(-x))
    half_tanh = xp.tanh(xp.multiply(x, 0.5, out=out), out=out)
    return xp.add(xp.multiply(half_tanh, 0.5, out=out), 0.5, out=out)


SIGMOID = elementwise_op(
    "sigmoid",
    _sigmoid_kernel,
    (lambda g, out, x: g * out * (1 - out),),
    "(0.5 * tanh(0.5 * {0}) + 0.5)",
    1,
    dtype=unary_float,
    preamble={"numba": _numba_tanh},
)
ABS = elementwise_op(
    "abs",
    ufunc_kernel("abs"),
    (lambda g, out, x: g * F.sign(x),),
    "abs({0})",
    1,
    preamble=_from("numpy", "abs"),
)
_CUDA_SIGN = """
template <typename X>
__device__ X sign(X x) { return (x > 0) - (x < 0); }
"""
SIGN = elementwise_op(
    "sign",
    ufunc_kernel("sign"),
    None,
    "sign({0})",
    1,
    preamble={**_from("numpy", "sign"), "cuda": _CUDA_SIGN},
)
RELU = elementwise_op(
    "relu",
    lambda xp, x, out=None: xp.maximum(x, 0, out=out),
    (lambda g, out, x: g * (out > 0),),
    "maximum({0}, 0)",
    1,
    scalar={"cuda": "_maximum({0}, 0)"},
    preamble={**_from("numpy", "maximum"), "cuda": CUDA_MAXIMUM},
)


def _erf_kernel(xp, x, out=None):
    """numpy has no erf: scipy's (a dependency of scikit-learn), or cupyx's on the GPU."""
    special = importlib.import_module("scipy.special" if xp is np else "cupyx.scipy.special")
    return special.erf(x, out=out)


def _erf_dtype(x: Aval) -> Aval:
    """scipy's erf keeps float32 and computes everything else in float64."""
    single = result_dtype(x) == np.float32
    return Aval(x.shape, np.dtype(np.float32 if single else np.float64))


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
ERF = elementwise_op("erf", _erf_kernel,
                     (lambda g, out, x: g * _TWO_OVER_SQRT_PI * F.exp(-(x * x)),),
                     "erf({0})", 1, dtype=_erf_dtype, preamble=_from("math", "erf"))  # fmt: skip


# ---- the public functions ---------------------------------------------------------------


def exp(x: Any) -> Any:
    return apply(EXP, x)


def log(x: Any) -> Any:
    return apply(LOG, x)


def log1p(x: Any) -> Any:
    """log(1 + x), exact for small x (where 1 + x would round)."""
    return apply(LOG1P, x)


def sqrt(x: Any) -> Any:
    return apply(SQRT, x)


def abs(x: Any) -> Any:  # noqa: A001
    return apply(ABS, x)


def sign(x: Any) -> Any:
    return apply(SIGN, x)


def tanh(x: Any) -> Any:
    return apply(TANH, x)


def sigmoid(x: Any) -> Any:
    return apply(SIGMOID, x)


def relu(x: Any) -> Any:
    return apply(RELU, x)


def sin(x: Any) -> Any:
    return apply(SIN, x)


def cos(x: Any) -> Any:
    return apply(COS, x)


def erf(x: Any) -> Any:
    """The error function, 2/sqrt(pi) times the integral of exp(-t**2) from 0 to x."""
    return apply(ERF, x)
