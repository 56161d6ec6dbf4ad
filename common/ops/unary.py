"""Unary math functions (exp, log, log1p, sqrt, tanh, sigmoid, abs, sign, relu, sin, cos, erf):
kernel, shape rule, VJP and fused-expression template, one entry each.

A template is spelled for the numba target, whose kernels see numpy as `np` and a few of its
functions by their own names (`exp`, `tanh`, ...); the numpy target runs the kernels
themselves. An op numba cannot spell (erf: numpy has none) declares no template and is
never fused. (The cupy target reads the same templates as CUDA, where `np.sin` is no name:
it needs entries in `common.fusion.CUDA_SPELLING` for the `np.` ones.)
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from common import functional as F
from common.dispatch import apply
from common.ops.core import Aval, result_dtype
from common.ops.elementwise import elementwise_op, ufunc_kernel, unary_float

__all__ = [
    "exp", "log", "log1p", "sqrt", "abs", "sign", "tanh", "sigmoid", "relu", "sin", "cos", "erf",
]  # fmt: skip

EXP = elementwise_op("exp", ufunc_kernel("exp"), (lambda g, out, x: g * out,), "exp({0})", 1,
                     dtype=unary_float)
LOG = elementwise_op("log", ufunc_kernel("log"), (lambda g, out, x: g / x,), "log({0})", 1,
                     dtype=unary_float, low=0.2, high=3.0)
LOG1P = elementwise_op("log1p", ufunc_kernel("log1p"), (lambda g, out, x: g / (1 + x),),
                       "np.log1p({0})", 1, dtype=unary_float, low=-0.8, high=3.0)
SQRT = elementwise_op("sqrt", ufunc_kernel("sqrt"), (lambda g, out, x: g * 0.5 / out,),
                      "sqrt({0})", 1, dtype=unary_float, low=0.2, high=3.0)
TANH = elementwise_op("tanh", ufunc_kernel("tanh"),
                      (lambda g, out, x: g * (1 - out * out),), "tanh({0})", 1,
                      dtype=unary_float)  # fmt: skip
SIN = elementwise_op("sin", ufunc_kernel("sin"), (lambda g, out, x: g * F.cos(x),),
                     "np.sin({0})", 1, dtype=unary_float)
COS = elementwise_op("cos", ufunc_kernel("cos"), (lambda g, out, x: -g * F.sin(x),),
                     "np.cos({0})", 1, dtype=unary_float)


def _sigmoid_kernel(xp, x, out=None):
    # 0.5 * tanh(x / 2) + 0.5 never overflows, unlike 1 / (1 + exp(-x))
    half_tanh = xp.tanh(xp.multiply(x, 0.5, out=out), out=out)
    return xp.add(xp.multiply(half_tanh, 0.5, out=out), 0.5, out=out)


SIGMOID = elementwise_op("sigmoid", _sigmoid_kernel, (lambda g, out, x: g * out * (1 - out),),
                         "(0.5 * tanh(0.5 * {0}) + 0.5)", 1, dtype=unary_float)
ABS = elementwise_op("abs", ufunc_kernel("abs"), (lambda g, out, x: g * F.sign(x),),
                     "abs({0})", 1)
SIGN = elementwise_op("sign", ufunc_kernel("sign"), None, "sign({0})", 1)
RELU = elementwise_op("relu", lambda xp, x, out=None: xp.maximum(x, 0, out=out),
                      (lambda g, out, x: g * (out > 0),), "maximum({0}, 0)", 1)


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
                     (lambda g, out, x: g * _TWO_OVER_SQRT_PI * F.exp(-(x * x)),), None, 1,
                     dtype=_erf_dtype)  # fmt: skip


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
