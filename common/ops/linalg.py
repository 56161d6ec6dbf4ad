"""Matrix multiplication with numpy's rules: 1-d operands, batch dimensions that broadcast."""

from __future__ import annotations

from typing import Any

from common import functional as F
from common.dispatch import apply
from common.ops.core import Aval, OpDef, ShapeError, broadcast_shapes, declare, fmt, result_dtype

__all__ = ["matmul", "mm"]  # `linear` is public through common.ops.nn


def _matmul_abstract(x: Aval, y: Aval) -> Aval:
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError(
            f"matmul: operands must be at least 1-d, got {fmt(x.shape)} and "
            f"{fmt(y.shape)}. Fix: use mul for scalars."
        )
    k1 = x.shape[-1]
    k2 = y.shape[-2] if y.ndim > 1 else y.shape[0]
    if k1 != k2 and None not in (k1, k2):
        raise ShapeError(
            f"matmul: shapes {fmt(x.shape)} and {fmt(y.shape)} do not align: "
            f"{k1} != {k2}. Fix: the last axis of the first operand must match "
            "the second-to-last of the second (transpose one of them?)."
        )
    batch = broadcast_shapes("matmul", x.shape[:-2], y.shape[:-2])
    rows = x.shape[-2:-1] if x.ndim > 1 else ()
    cols = y.shape[-1:] if y.ndim > 1 else ()
    return Aval(batch + rows + cols, result_dtype(x, y))


def _as_matrices(g, x, y):
    """Operands and cotangent with 1-d operands promoted to matrices, as numpy does."""
    if y.ndim == 1:
        g, y = F.expand_dims(g, -1), F.expand_dims(y, -1)
    if x.ndim == 1:
        g, x = F.expand_dims(g, -2), F.expand_dims(x, 0)
    return g, x, y


def _back_to(grad, operand):
    """Undo the promotion of a 1-d operand to a matrix."""
    return F.reshape(grad, (-1,)) if operand.ndim == 1 else grad


def _matmul_vjp_x(g, out, x, y):
    g, x2, y2 = _as_matrices(g, x, y)
    return _back_to(F.sum_to_like(g @ F.transpose(y2), x2), x)


def _matmul_vjp_y(g, out, x, y):
    g, x2, y2 = _as_matrices(g, x, y)
    return _back_to(F.sum_to_like(F.transpose(x2) @ g, y2), y)


MATMUL = declare(OpDef(
    "matmul", "linalg", lambda xp, x, y, out=None: xp.matmul(x, y, out=out), _matmul_abstract,
    writes_out=True,
    vjp=(_matmul_vjp_x, _matmul_vjp_y),
    samples=lambda rng: [((rng.normal(size=s), rng.normal(size=t)), {}) for s, t in [
        ((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)), ((3, 4), (4,)),
        ((2, 1, 3, 4), (5, 4, 2))]],
))  # fmt: skip


def _linear_abstract(x: Aval, w: Aval) -> Aval:
    if w.ndim != 2 or x.ndim < 1:
        raise ShapeError(
            f"linear: expects an input (..., in) and a weight (out, in), got "
            f"{fmt(x.shape)} and {fmt(w.shape)}. Fix: the weight is 2-d."
        )
    if x.shape[-1] != w.shape[1] and None not in (x.shape[-1], w.shape[1]):
        raise ShapeError(
            f"linear: input {fmt(x.shape)} has {x.shape[-1]} features but the "
            f"weight {fmt(w.shape)} expects {w.shape[1]}. Fix: match in_features."
        )
    return Aval(x.shape[:-1] + (w.shape[0],), result_dtype(x, w))


def _linear_vjp_w(g, out, x, w):
    """sum over every leading axis of g^T x: the batch folded into one matrix product."""
    if x.ndim != 2:
        g, x = F.reshape(g, (-1, w.shape[0])), F.reshape(x, (-1, w.shape[1]))
    return F.matmul(F.transpose(g), x)


LINEAR = declare(OpDef(
    "linear", "linalg", lambda xp, x, w, out=None: xp.matmul(x, w.T, out=out), _linear_abstract,
    writes_out=True,
    vjp=(lambda g, out, x, w: F.matmul(g, w), _linear_vjp_w),
    samples=lambda rng: [((rng.normal(size=s), rng.normal(size=t)), {}) for s, t in [
        ((3, 4), (5, 4)), ((2, 3, 4), (2, 4)), ((4,), (3, 4))]],
))  # fmt: skip


def matmul(x: Any, y: Any) -> Any:
    """Matrix product (`x @ y`), batched over leading axes."""
    return apply(MATMUL, x, y)


def mm(x: Any, y: Any) -> Any:
    """Product of two matrices (2-d only, as torch.mm)."""
    if len(x.shape) != 2 or len(y.shape) != 2:
        raise ShapeError(
            f"mm: expects two matrices, got shapes {fmt(tuple(x.shape))} and "
            f"{fmt(tuple(y.shape))}. Fix: use matmul for batched or 1-d operands."
        )
    return apply(MATMUL, x, y)
