"""`Tensor`: a backend array plus what autograd needs. Applying an op runs its kernel now and,
when an input requires grad, records a tape `Node` on the result (define-by-run).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common import anomaly
from common.anomaly import active as anomaly_active
from common.backend import array_module, backend_of, get_backend
from common.dispatch import register_default_engine, run_kernel
from common.methods import ArrayMethods, ConcreteMethods, check_in_place_shape
from common.ops.core import DTypeError
from common.ops.indexing import SETITEM, split_index
from eager import autograd
from eager.autograd import Node, is_grad_enabled

DEFAULT_FLOAT = np.dtype(np.float32)
SUPPORTED_KINDS = "biuf"  # bool, signed and unsigned ints, floats


class Tensor(ConcreteMethods):
    """An array that can record how it was computed.

    >>> x = tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward(); x.grad
    tensor([2., 4.])
    """

    __slots__ = (
        "data",
        "requires_grad",
        "grad",
        "_node",
        "_retains_grad",
        "_version",
        "__weakref__",
    )
    _priority = 2  # outranks parameters and arrays; symbols outrank tensors

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        made = as_tensor(data)
        self.data = made.data
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None
        self._retains_grad = False
        self._version = 0  # bumped by every in-place change, checked by backward

    @staticmethod
    def _make(data: Any, requires_grad: bool = False, node: Node | None = None) -> Tensor:
        """Wrap a kernel's output without validation (the hot path)."""
        t = object.__new__(Tensor)
        t.data = data
        t.requires_grad = requires_grad
        t.grad = None
        t._node = node
        t._retains_grad = False
        t._version = 0
        return t

    @staticmethod
    def _apply(op: Any, args: tuple, params: dict) -> Tensor:
        """The eager interpretation of an op: run the kernel now, record a node if needed.

        The hot path of every eager op: one pass over the arguments collects the arrays,
        the versions a node would save, and whether any input requires grad (a plain loop:
        cheaper than comprehensions for the one to three arguments ops take)."""
        arrays = []
        versions = []
        wants_grad = False
        for a in args:
            if isinstance(a, ArrayMethods):  # tensors and parameters: no symbol gets here
                arrays.append(a.data)
                versions.append(a._version)
                if a.requires_grad:
                    wants_grad = True
            else:
                arrays.append(a)
                versions.append(0)
        out = run_kernel(op, arrays, params)
        if isinstance(out, np.generic):  # numpy returns scalars from 0-d arithmetic
            out = np.asarray(out)
        if anomaly_active():  # common.detect_anomaly(): NaN and inf raise, at the user's line
            anomaly.check(op, out, arrays)
        if wants_grad and op.vjp is not None and is_grad_enabled():
            return Tensor._make(out, True, Node(op, args, params, versions))
        return Tensor._make(out)

    # ---- array facts (shape, dtype, device and numpy() come from ConcreteMethods) --------
    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Node | None:
        return self._node

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor. Fix: use .item() to read its value.")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(
            backend_of(self.data).to_host(self.data), separator=", ", prefix="tensor("
        )
        extras = []
        if self.dtype != DEFAULT_FLOAT and self.dtype != np.int64 and self.dtype != np.bool_:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({', '.join([body] + extras)})"

    def _repr_svg_(self) -> str | None:
        """Jupyter shows a recorded tensor as the tape behind it (eager.visualize), as it shows
        a compiled function as its graph; a leaf, or without Graphviz, shows as text."""
        if self._node is None:
            return None
        from eager.visualize import svg

        return svg(self)

    # ---- conversions (item, tolist, float() and int() come from ConcreteMethods) -----------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.numpy(), dtype=dtype)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self.data.__dlpack_device__()

    def __bool__(self) -> bool:
        return bool(self.item())

    def to(self, device: str) -> Tensor:
        """This tensor on `device` ('cpu' or 'cuda'): itself if already there, else a copy
        that is a new leaf (as `.detach()`, keeping requires_grad)."""
        backend = get_backend(device)
        if backend is backend_of(self.data):
            return self
        return Tensor._make(backend.asarray(self.data), self.requires_grad)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    # ---- autograd ------------------------------------------------------------------------
    def backward(
        self, grad: Any = None, retain_graph: bool | None = None, create_graph: bool = False
    ) -> None:
        """Accumulate this tensor's gradient into the `.grad` of every leaf it depends on."""
        autograd.backward(self, grad, retain_graph, create_graph)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self._node is not None and not requires_grad:
            raise RuntimeError(
                "requires_grad_: only leaves can stop requiring grad. "
                "Fix: use .detach() to cut a computed tensor from the graph."
            )
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> Tensor:
        """Keep this non-leaf tensor's gradient in `.grad` after backward."""
        self._retains_grad = True
        return self

    # ---- in-place changes -----------------------------------------------------------------
    def _records(self, value: Any) -> bool:
        """Whether writing `value` into this tensor must go on the tape."""
        return is_grad_enabled() and (self.requires_grad or getattr(value, "requires_grad", False))

    def _inplace(self, op: Any, other: Any) -> Tensor:
        if not self._records(other):
            return super()._inplace(op, other)
        self._write_recorded(op, (other,), {})
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._records(value):
            template, arrays = split_index(index)
            self._write_recorded(SETITEM, (value, *arrays), {"index": template})
        else:
            super().__setitem__(index, value)

    def _write_recorded(self, op: Any, args: tuple, params: dict) -> None:
        """An in-place change that gradients must see, as torch records one: this tensor
        becomes the result of `op` applied to a copy of its old value and `args`, written into
        its own memory (views of it see the change). The version bump makes backward refuse
        any node that saved the old value."""
        self._check_inplace(op)
        if self._node is not None and getattr(self._node.op, "view", False):
            raise RuntimeError(
                f"in-place {op.name} on a view ({self._node.name} of another tensor) while the "
                "tape is recording: the tensor it views would change without its gradient "
                "knowing. Fix: change a copy (`y = y.clone()` first), or write out of place "
                "(`F.where(mask, value, y)`, `F.setitem(y, index, value)`)."
            )
        old = Tensor._make(self.data.copy(), self.requires_grad, self._node)
        new = Tensor._apply(op, (old, *(old if a is self else a for a in args)), params)
        check_in_place_shape(op, new.shape, self.shape)
        array_module([self.data]).copyto(self.data, new.data, casting="same_kind")
        self._node, self.requires_grad = new._node, new.requires_grad
        self._version += 1

    def _check_inplace(self, op: Any) -> None:
        if self._node is None and self.requires_grad and is_grad_enabled():
            raise RuntimeError(
                f"in-place {op.name} on a leaf tensor that requires grad while the tape is "
                "recording would corrupt its gradient (torch refuses it too). Fix: update it "
                "inside `with E.no_grad():` (as in `w -= lr * w.grad`), or change a copy "
                "(`y = w.clone()`)."
            )


def as_tensor(value: Any, dtype: Any = None, device: str | None = None) -> Tensor:
    """`value` as a Tensor (a Tensor passes through; Python floats become float32)."""
    if isinstance(value, Tensor) and dtype is None and device in (None, value.device):
        return value
    if isinstance(value, ArrayMethods):
        value = value.data
    backend = get_backend(device) if device is not None else backend_of(value)
    if dtype is None and not hasattr(value, "dtype"):
        probe = np.asarray(value)
        dtype = DEFAULT_FLOAT if probe.dtype.kind == "f" else probe.dtype
    array = backend.asarray(value, dtype=None if dtype is None else np.dtype(dtype))
    if array.dtype.kind not in SUPPORTED_KINDS:
        raise DTypeError(
            f"tensor: unsupported dtype {array.dtype}: tensors hold bools, ints "
            "and floats. Fix: convert the data to numbers first."
        )
    return Tensor._make(array)


register_default_engine(Tensor)
