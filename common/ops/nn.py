"""Neural-network functions, written from primitives so both engines (and fusion) see through.

Four primitives live here: `unfold` (sliding windows, the im2col view) and its adjoint
`fold`, `one_hot`, and the binary cross-entropy (for torch's gradient at saturated
probabilities); plus the random `bernoulli` mask for dropout. Everything else (softmax,
gelu, the other losses, conv2d, pooling, layer_norm, ...) is a composite of primitives with
its numerically stable form (max-subtraction).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common import functional as F
from common import random
from common.dispatch import apply
from common.ops.core import (
    Aval,
    DTypeError,
    OpDef,
    OpError,
    ShapeError,
    aval_of,
    broadcast_shapes,
    declare,
    fmt,
    result_dtype,
    uniform_samples,
)
from common.ops.linalg import LINEAR

__all__ = [
    "unfold", "fold", "one_hot", "softmax", "log_softmax", "logsumexp", "gelu", "mse_loss",
    "nll_loss", "cross_entropy", "binary_cross_entropy", "linear", "conv2d", "max_pool2d",
    "avg_pool2d", "layer_norm", "embedding", "dropout",
]  # fmt: skip


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _windows(h: int, w: int, size: tuple, stride: tuple) -> tuple[int, int]:
    return (h - size[0]) // stride[0] + 1, (w - size[1]) // stride[1] + 1


# ---- unfold / fold: the sliding-window view and its adjoint -----------------------------


def _unfold_kernel(xp, x, size, stride):
    n, c, h, w = x.shape
    oh, ow = _windows(h, w, size, stride)
    s = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow) + size, s[:2] + (s[2] * stride[0], s[3] * stride[1]) + s[2:]
    )


def _unfold_abstract(x: Aval, size: tuple, stride: tuple) -> Aval:
    if x.ndim != 4:
        raise ShapeError(
            f"unfold: expects an NCHW input, got shape {fmt(x.shape)}. "
            "Fix: add the batch and channel axes (x.reshape(1, 1, H, W))."
        )
    h, w = x.shape[2:]
    if (h is not None and h < size[0]) or (w is not None and w < size[1]):
        raise ShapeError(
            f"unfold: the window {size} is larger than the input {fmt(x.shape)}. "
            "Fix: pad the input or use a smaller kernel."
        )
    oh = None if h is None else (h - size[0]) // stride[0] + 1
    ow = None if w is None else (w - size[1]) // stride[1] + 1
    return Aval(x.shape[:2] + (oh, ow) + size, x.dtype)


def _fold_kernel(xp, cols, shape, size, stride):
    out = xp.zeros(cols.shape[:2] + tuple(shape[2:]), dtype=cols.dtype)
    oh, ow = cols.shape[2:4]
    for i in range(size[0]):  # one strided add per window offset, not per window
        for j in range(size[1]):
            out[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]] += (
                cols[:, :, :, :, i, j]
            )
    return out


UNFOLD = declare(OpDef(
    "unfold", "nn", _unfold_kernel, _unfold_abstract, view=True,
    vjp=(lambda g, out, x, size, stride: F.fold(g, x.shape, size, stride),),
    samples=lambda rng: [((rng.normal(size=(2, 2, 5, 5)),), {"size": (3, 3), "stride": (1, 1)}),
                         ((rng.normal(size=(1, 2, 6, 5)),), {"size": (2, 2), "stride": (2, 2)})],
))  # fmt: skip
FOLD = declare(OpDef(
    "fold", "nn", _fold_kernel,
    lambda cols, shape, size, stride: Aval(cols.shape[:2] + tuple(shape[2:]), cols.dtype),
    vjp=(lambda g, out, cols, shape, size, stride: F.unfold(g, size, stride),),
    samples=lambda rng: [((rng.normal(size=(2, 1, 3, 3, 2, 2)),),
                          {"shape": (2, 1, 4, 4), "size": (2, 2), "stride": (1, 1)})],
))  # fmt: skip


# ---- one_hot and the dropout mask (no gradient) -----------------------------------------


def _one_hot_kernel(xp, labels, num_classes, dtype):
    flat = labels.reshape(-1)
    if flat.size:
        low, high = int(flat.min()), int(flat.max())
        if low < 0 or high >= num_classes:
            raise OpError(
                f"one_hot: label {low if low < 0 else high} is out of range for "
                f"{num_classes} classes. Fix: labels must be integers in "
                f"[0, {num_classes})."
            )
    out = xp.zeros((flat.size, num_classes), dtype=dtype)
    out[xp.arange(flat.size), flat] = 1
    return out.reshape(labels.shape + (num_classes,))


def _one_hot_abstract(labels: Aval, num_classes: int, dtype: str) -> Aval:
    if labels.weak or labels.dtype.kind not in "iu":
        raise DTypeError(
            f"one_hot: labels must be integers, got {labels.dtype}. "
            "Fix: pass class indices as an int array (labels.astype(int))."
        )
    return Aval(labels.shape + (num_classes,), np.dtype(dtype))


ONE_HOT = declare(OpDef("one_hot", "nn", _one_hot_kernel, _one_hot_abstract))


def _bernoulli_kernel(xp, x, keep):
    mask = random.default_generator().random(x.shape, dtype=np.float32) < keep
    return xp.asarray(mask.astype(x.dtype))


BERNOULLI = declare(OpDef(
    "bernoulli", "random", _bernoulli_kernel, lambda x, keep: Aval(x.shape, x.dtype),
    stateful=True,
))  # fmt: skip


def unfold(x: Any, size: Any, stride: Any = 1) -> Any:
    """Sliding windows of an NCHW input: shape (N, C, OH, OW, kh, kw), a view (im2col)."""
    return apply(UNFOLD, x, size=_pair(size), stride=_pair(stride))


def fold(cols: Any, shape: tuple, size: Any, stride: Any = 1) -> Any:
    """The adjoint of `unfold`: windows summed back into an NCHW array of `shape`."""
    return apply(FOLD, cols, shape=tuple(shape), size=_pair(size), stride=_pair(stride))


def one_hot(labels: Any, num_classes: int, dtype: Any = "float32") -> Any:
    return apply(ONE_HOT, labels, num_classes=int(num_classes), dtype=np.dtype(dtype).name)


# ---- binary cross-entropy: a primitive, for torch's gradient at p = 0 and 1 ------------
# Written from log and clamp, the gradient at a saturated probability (a float32 sigmoid is
# exactly 1 from x = 17 on) would be 0 * inf = nan; torch floors p (1 - p) at 1e-12 instead.

_BCE_EPS = 1e-12


def _bce_kernel(xp, p, t):
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100
        log_p, log_not_p = xp.log(p), xp.log1p(-p)
    return (t - 1) * xp.maximum(log_not_p, -100.0) - t * xp.maximum(log_p, -100.0)


BINARY_CROSS_ENTROPY = declare(OpDef(
    "binary_cross_entropy", "nn", _bce_kernel,
    lambda p, t: Aval(broadcast_shapes("binary_cross_entropy", p.shape, t.shape),
                      result_dtype(p, t)),
    vjp=(lambda g, out, p, t: g * (p - t) / F.maximum(p * (1.0 - p), _BCE_EPS),
         lambda g, out, p, t: g * (F.log1p(-p) - F.log(p))),  # unclamped, as torch
    samples=uniform_samples([((3, 4), (3, 4))], low=0.05, high=0.95),
))  # fmt: skip


# ---- composites -------------------------------------------------------------------------


def _shifted(x: Any, axis: int) -> Any:
    """x minus its (constant) maximum along `axis`: exp() of it cannot overflow."""
    return x - F.stop_gradient(F.max(x, axis, keepdims=True))


def softmax(x: Any, axis: int = -1) -> Any:
    e = F.exp(_shifted(x, axis))
    return e / F.sum(e, axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> Any:
    z = _shifted(x, axis)
    return z - F.log(F.sum(F.exp(z), axis, keepdims=True))


def logsumexp(x: Any, axis: Any = -1, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) along `axis`, shifted by the maximum so exp() cannot overflow. An
    infinite maximum is not subtracted (inf - inf is nan): a row of -inf gives -inf, one
    holding +inf gives inf, and their gradients are nan, exactly as in torch."""
    m = F.max(x, axis, keepdims=True)
    m = F.stop_gradient(F.where(F.eq(F.abs(m), np.inf), 0.0, m))
    out = F.log(F.sum(F.exp(x - m), axis, keepdims=True)) + m
    return out if keepdims else F.squeeze(out, axis)


_SQRT_HALF = math.sqrt(0.5)
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x: Any, approximate: str = "none") -> Any:
    """x * Phi(x), Phi the standard normal CDF: exactly, 0.5 * (1 + erf(x / sqrt 2)), or with
    `approximate="tanh"` as 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x**3))), as torch."""
    if approximate == "none":
        return 0.5 * x * (1.0 + F.erf(x * _SQRT_HALF))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + F.tanh(_SQRT_TWO_OVER_PI * (x + 0.044715 * x**3)))
    raise OpError(
        f"gelu: approximate={approximate!r} is not 'none' or 'tanh'. Fix: pass "
        "'none' for the exact (erf) form or 'tanh' for the approximation."
    )


REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise OpError(
            f"{name}: reduction={reduction!r} is not one of {REDUCTIONS}. Fix: "
            "'mean' averages the losses, 'sum' adds them, 'none' returns each one."
        )


def _reduced(losses: Any, reduction: str) -> Any:
    """Per-element (or per-sample) losses reduced as torch's `reduction=` says."""
    if reduction == "none":
        return losses
    return F.mean(losses) if reduction == "mean" else F.sum(losses)


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Squared differences, averaged over all elements by default."""
    _check_reduction("mse_loss", reduction)
    pred_shape, target_shape = aval_of(pred).shape, aval_of(target).shape
    if pred_shape != target_shape:
        raise ShapeError(
            f"mse_loss: prediction {fmt(pred_shape)} and target "
            f"{fmt(target_shape)} differ in shape. Fix: reshape the target "
            "to the prediction's shape (broadcasting here is usually a bug)."
        )
    diff = pred - target
    return _reduced(diff * diff, reduction)


def nll_loss(log_probs: Any, labels: Any, reduction: str = "mean") -> Any:
    """-log_probs[i, labels[i]] per sample, averaged over the batch by default; `log_probs`
    of shape (batch, classes) (a log_softmax), `labels` class indices."""
    _check_reduction("nll_loss", reduction)
    if len(log_probs.shape) != 2:
        raise ShapeError(
            f"nll_loss: expects log-probabilities of shape (batch, classes), "
            f"got {fmt(tuple(log_probs.shape))}. Fix: flatten the leading axes."
        )
    picked = F.one_hot(labels, log_probs.shape[-1], log_probs.dtype)
    return _reduced(-F.sum(log_probs * picked, axis=1), reduction)


def cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> Any:
    """-log softmax(logits)[i, labels[i]] per sample, averaged over the batch by default;
    `logits` of shape (batch, classes), `labels` class indices."""
    if len(logits.shape) != 2:
        raise ShapeError(
            f"cross_entropy: expects logits of shape (batch, classes), got "
            f"{fmt(tuple(logits.shape))}. Fix: flatten the leading axes."
        )
    return nll_loss(log_softmax(logits, -1), labels, reduction)


def binary_cross_entropy(probs: Any, target: Any, reduction: str = "mean") -> Any:
    """-(t log p + (1 - t) log(1 - p)) per element on probabilities `probs` (a sigmoid's
    output), averaged by default; each log clamped at -100, as torch."""
    _check_reduction("binary_cross_entropy", reduction)
    if aval_of(probs).shape != aval_of(target).shape:
        raise ShapeError(
            f"binary_cross_entropy: probabilities {fmt(aval_of(probs).shape)} and "
            f"target {fmt(aval_of(target).shape)} differ in shape. Fix: reshape "
            "the target to the probabilities' shape."
        )
    return _reduced(apply(BINARY_CROSS_ENTROPY, probs, target), reduction)


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """x @ weight.T + bias, with torch's (out_features, in_features) weight layout."""
    y = apply(LINEAR, x, weight)
    return y if bias is None else y + bias


def conv2d(x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0) -> Any:
    """2-d convolution (cross-correlation), NCHW input, OIHW weight, by im2col and matmul."""
    if len(x.shape) != 4 or len(w.shape) != 4 or x.shape[1] != w.shape[1]:
        raise ShapeError(
            f"conv2d: input {fmt(tuple(x.shape))} and weight "
            f"{fmt(tuple(w.shape))} do not fit: expects NCHW and OIHW with the "
            "same C. Fix: check in_channels and the input layout."
        )
    ph, pw = _pair(padding)
    if ph or pw:
        x = F.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_c, in_c, kh, kw = w.shape
    cols = unfold(x, (kh, kw), stride)  # (N, C, OH, OW, kh, kw)
    n, _, oh, ow = cols.shape[:4]
    rows = F.reshape(F.permute(cols, (0, 2, 3, 1, 4, 5)), (-1, in_c * kh * kw))
    y = apply(LINEAR, rows, F.reshape(w, (out_c, -1)))  # (N*OH*OW, O)
    y = F.permute(F.reshape(y, (n, oh, ow, out_c)), (0, 3, 1, 2))
    return y if b is None else y + F.reshape(b, (out_c, 1, 1))


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None) -> Any:
    size = _pair(kernel_size)
    return F.max(unfold(x, size, size if stride is None else stride), (4, 5))


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None) -> Any:
    size = _pair(kernel_size)
    return F.mean(unfold(x, size, size if stride is None else stride), (4, 5))


def layer_norm(
    x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """Normalize over the trailing `normalized_shape` axes, then scale and shift."""
    dims = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(len(x.shape) - len(dims), len(x.shape)))
    centered = x - F.mean(x, axes, keepdims=True)
    var = F.mean(centered * centered, axes, keepdims=True)
    y = centered / F.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def embedding(indices: Any, weight: Any) -> Any:
    """Rows of `weight` picked by integer `indices` (the gradient scatter-adds)."""
    return F.getitem(weight, indices)


def dropout(x: Any, p: float = 0.5, training: bool = True) -> Any:
    """Zero each element with probability p and scale the rest by 1/(1-p) (when training)."""
    if not 0 <= p < 1:
        raise OpError(f"dropout: p must be in [0, 1), got {p}.")
    if not training or p == 0:
        return x
    keep = 1.0 - p
    return x * apply(BERNOULLI, x, keep=keep) * (1.0 / keep)
