"""Operators and methods written once for every engine value (`eager.Tensor`, `symbolic.Symbol`,
`nn.Parameter`). An engine class inherits `ArrayMethods`, sets `_priority`, and implements
the one hook `_apply(op, args, params)`; `x + y`, `x.sum()`, `x.T` then work everywhere.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from common import functional as F
from common.backend import array_module, backend_of
from common.dispatch import apply
from common.ops import elementwise as ew
from common.ops import unary
from common.ops.core import OpError, fmt
from common.ops.indexing import SETITEM, join_index, split_index
from common.ops.linalg import MATMUL

IMMUTABLE = (
    "x[index] = value on a symbol: a symbol is a value of the graph (single assignment), so "
    "it cannot change in place. Fix: build the new value: F.where(mask, value, x) (or "
    "x.masked_fill(mask, value)) for a boolean mask, F.setitem(x, index, value) for any index."
)


class ArrayMethods:
    __slots__ = ()
    __array_ufunc__ = None  # numpy defers to our reflected operators: ndarray + x -> x.__radd__
    __hash__ = object.__hash__  # == is elementwise, so hashing stays by identity

    # ---- arithmetic -------------------------------------------------------------------
    def __add__(self, other):
        return apply(ew.ADD, self, other)  # noqa: E704

    def __radd__(self, other):
        return apply(ew.ADD, other, self)  # noqa: E704

    def __sub__(self, other):
        return apply(ew.SUB, self, other)  # noqa: E704

    def __rsub__(self, other):
        return apply(ew.SUB, other, self)  # noqa: E704

    def __mul__(self, other):
        return apply(ew.MUL, self, other)  # noqa: E704

    def __rmul__(self, other):
        return apply(ew.MUL, other, self)  # noqa: E704

    def __truediv__(self, other):
        return apply(ew.DIV, self, other)  # noqa: E704

    def __rtruediv__(self, other):
        return apply(ew.DIV, other, self)  # noqa: E704

    def __pow__(self, other):
        return apply(ew.POW, self, other)  # noqa: E704

    def __rpow__(self, other):
        return apply(ew.POW, other, self)  # noqa: E704

    def __mod__(self, other):
        return apply(ew.REMAINDER, self, other)  # noqa: E704

    def __rmod__(self, other):
        return apply(ew.REMAINDER, other, self)  # noqa: E704

    def __floordiv__(self, other):
        return apply(ew.FLOOR_DIVIDE, self, other)  # noqa: E704

    def __rfloordiv__(self, other):
        return apply(ew.FLOOR_DIVIDE, other, self)  # noqa: E704

    def __matmul__(self, other):
        return apply(MATMUL, self, other)  # noqa: E704

    def __rmatmul__(self, other):
        return apply(MATMUL, other, self)  # noqa: E704

    def __neg__(self):
        return apply(ew.NEG, self)  # noqa: E704

    def __pos__(self):
        return self  # noqa: E704

    def __abs__(self):
        return apply(unary.ABS, self)  # noqa: E704

    # ---- comparisons (elementwise, boolean results) ------------------------------------
    def __eq__(self, other):
        return apply(ew.EQ, self, other)  # type: ignore[override]  # noqa: E704

    def __ne__(self, other):
        return apply(ew.NE, self, other)  # type: ignore[override]  # noqa: E704

    def __lt__(self, other):
        return apply(ew.LT, self, other)  # noqa: E704

    def __le__(self, other):
        return apply(ew.LE, self, other)  # noqa: E704

    def __gt__(self, other):
        return apply(ew.GT, self, other)  # noqa: E704

    def __ge__(self, other):
        return apply(ew.GE, self, other)  # noqa: E704

    def __and__(self, other):
        return apply(ew.LOGICAL_AND, self, other)  # noqa: E704

    def __rand__(self, other):
        return apply(ew.LOGICAL_AND, other, self)  # noqa: E704

    def __or__(self, other):
        return apply(ew.LOGICAL_OR, self, other)  # noqa: E704

    def __ror__(self, other):
        return apply(ew.LOGICAL_OR, other, self)  # noqa: E704

    def __invert__(self):
        return apply(ew.LOGICAL_NOT, self)  # noqa: E704

    def __getitem__(self, index: Any) -> Any:
        return F.getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        """Values that hold an array override this; a symbol cannot change."""
        raise TypeError(IMMUTABLE)

    def masked_fill(self, mask: Any, value: Any) -> Any:
        """A copy with `value` where `mask` holds (torch's masked_fill, out of place)."""
        return F.where(mask, value, self)

    # ---- shape ---------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def T(self) -> Any:
        """All axes reversed (the matrix transpose for 2-d)."""
        return F.permute(self, tuple(reversed(range(self.ndim))))

    def t(self) -> Any:
        """The matrix transpose; a 0-d or 1-d value is returned as it is (as torch's t())."""
        if self.ndim > 2:
            raise OpError(
                f"t() expects at most 2 dimensions, got shape {fmt(self.shape)}. "
                "Fix: use .transpose(dim0, dim1) or .permute(...) to say which."
            )
        return F.transpose(self) if self.ndim == 2 else self

    def reshape(self, *shape: Any) -> Any:
        return F.reshape(self, *shape)

    view = reshape

    def permute(self, *dims: Any) -> Any:
        return F.permute(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Any:
        return F.transpose(self, dim0, dim1)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Any:
        return F.flatten(self, start_dim, end_dim)

    def expand_dims(self, axis: int) -> Any:
        return F.expand_dims(self, axis)

    unsqueeze = expand_dims

    def squeeze(self, axis: Any = None) -> Any:
        return F.squeeze(self, axis)

    def broadcast_to(self, shape: tuple) -> Any:
        return F.broadcast_to(self, shape)

    def astype(self, dtype: Any) -> Any:
        return F.cast(self, dtype)

    def clone(self) -> Any:
        return F.clone(self)

    # ---- reductions ----------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        return F.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        return F.mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Any:
        return F.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Any:
        return F.min(self, axis, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Any:
        return F.argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Any:
        return F.argmin(self, axis, keepdims)

    def var(
        self,
        axis: Any = None,
        keepdims: bool = False,
        *,
        correction: int = 1,
        unbiased: bool | None = None,
    ) -> Any:
        return F.var(self, axis, keepdims, correction=correction, unbiased=unbiased)

    def std(
        self,
        axis: Any = None,
        keepdims: bool = False,
        *,
        correction: int = 1,
        unbiased: bool | None = None,
    ) -> Any:
        return F.std(self, axis, keepdims, correction=correction, unbiased=unbiased)

    # ---- elementwise functions -----------------------------------------------------------
    def exp(self) -> Any:
        return apply(unary.EXP, self)

    def log(self) -> Any:
        return apply(unary.LOG, self)

    def sqrt(self) -> Any:
        return apply(unary.SQRT, self)

    def tanh(self) -> Any:
        return apply(unary.TANH, self)

    def sigmoid(self) -> Any:
        return apply(unary.SIGMOID, self)

    def relu(self) -> Any:
        return apply(unary.RELU, self)

    def abs(self) -> Any:
        return apply(unary.ABS, self)

    def sin(self) -> Any:
        return apply(unary.SIN, self)

    def cos(self) -> Any:
        return apply(unary.COS, self)

    def pow(self, exponent: Any) -> Any:
        return apply(ew.POW, self, exponent)

    def clamp(self, min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
        return F.clamp(self, min, max)

    # ---- linear algebra and nn -----------------------------------------------------------
    def matmul(self, other: Any) -> Any:
        return apply(MATMUL, self, other)

    def mm(self, other: Any) -> Any:
        return F.mm(self, other)

    def softmax(self, axis: int = -1) -> Any:
        return F.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Any:
        return F.log_softmax(self, axis)


class ConcreteMethods(ArrayMethods):
    """Values that hold an array now (`eager.Tensor`, `nn.Parameter`): their facts come
    from `.data`, and they can be updated in place."""

    __slots__ = ()

    # read by every op and every backward step: attrgetter reads them without a Python frame
    shape = property(attrgetter("data.shape"), doc="The shape of the array held.")
    dtype = property(attrgetter("data.dtype"), doc="The dtype of the array held.")
    ndim = property(attrgetter("data.ndim"), doc="The number of axes of the array held.")

    def numel(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend_of(self.data).device

    def numpy(self) -> Any:
        """The data as a numpy array (shared with this value on the CPU)."""
        return backend_of(self.data).to_host(self.data)

    # ---- conversions to Python -------------------------------------------------------------
    def item(self) -> Any:
        if self.numel() != 1:
            raise ValueError(
                f"item: the value has shape {fmt(self.shape)}, not one element. "
                "Fix: reduce it first, or index one element."
            )
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    # ---- in-place updates of concrete values (`with no_grad(): w -= lr * w.grad`) ---------
    def _check_inplace(self, op: Any) -> None:
        """Engines refuse in-place updates that would corrupt their state."""

    def _inplace(self, op: Any, other: Any) -> Any:
        """`x op= other`: computed, then written into this value's memory."""
        self._check_inplace(op)
        value = held(other)
        xp = array_module([self.data, value])
        try:
            result = op.kernel(xp, self.data, value)
        except Exception as exc:
            raise op.explain_failure(exc, (self.data, value), {}) from None
        check_in_place_shape(op, result.shape, self.shape)
        xp.copyto(self.data, result, casting="same_kind")
        self._version += 1
        return self

    def __iadd__(self, other):
        return self._inplace(ew.ADD, other)  # noqa: E704

    def __isub__(self, other):
        return self._inplace(ew.SUB, other)  # noqa: E704

    def __imul__(self, other):
        return self._inplace(ew.MUL, other)  # noqa: E704

    def __itruediv__(self, other):
        return self._inplace(ew.DIV, other)  # noqa: E704

    def __setitem__(self, index: Any, value: Any) -> None:
        """`x[index] = value` written into this value's memory (`x[x < 0] = 0.0`); the
        value is cast to x's dtype, as numpy and torch do."""
        self._check_inplace(SETITEM)
        template, arrays = split_index(index)
        arrays, value = [held(a) for a in arrays], held(value)
        try:
            self.data[join_index(template, arrays)] = value
        except Exception as exc:
            raise SETITEM.explain_failure(
                exc, (self.data, value, *arrays), {"index": template}
            ) from None
        self._version += 1

    def zero_(self) -> Any:
        return self.fill_(0)

    def fill_(self, value: float) -> Any:
        self[...] = value
        return self

    def copy_(self, source: Any) -> Any:
        self[...] = source
        return self


def held(value: Any) -> Any:
    """The array a concrete value (tensor, parameter) holds; anything else as it is."""
    return value.data if isinstance(value, ConcreteMethods) else value


def check_in_place_shape(op: Any, result_shape: tuple, shape: tuple) -> None:
    """An in-place result must fit the memory it is written into (no broadcasting it up)."""
    if result_shape != shape:
        raise ValueError(
            f"in-place {op.name}: the result's shape {fmt(result_shape)} "
            f"differs from {fmt(shape)}. Fix: use the out-of-place operator."
        )
