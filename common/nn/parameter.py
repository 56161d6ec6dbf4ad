"""`Parameter`: a model's weight, owned by `common.nn` and shared by both engines.

Eager treats it as a leaf tensor that requires grad (its `.grad` fills on backward);
symbolic binds it to a variable over the same storage. Either way, training updates
the same array, so a model trained one way can be run the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.backend import backend_of, get_backend
from common.dispatch import default_engine
from common.methods import ArrayMethods, ConcreteMethods


class Parameter(ConcreteMethods):
    __slots__ = ("data", "grad", "requires_grad", "name", "_version", "__weakref__")
    _priority = 1  # below eager tensors and symbols: they decide how it is used
    _node = None  # always a leaf of the eager tape
    _retains_grad = False

    def __init__(self, data: Any, requires_grad: bool = True, name: str = "") -> None:
        array = data.data if isinstance(data, ArrayMethods) else data
        self.data = backend_of(array).asarray(array)
        if self.data.dtype.kind != "f":
            self.data = self.data.astype(np.float32)
        self.grad = None  # an eager tensor after backward
        self.requires_grad = requires_grad
        self.name = name
        self._version = 0  # bumped by in-place changes, as for tensors

    @staticmethod
    def _apply(op: Any, args: tuple, params: dict) -> Any:
        return default_engine()._apply(op, args, params)

    def to(self, device: str) -> Parameter:
        """Move the storage to `device` in place (the parameter keeps its identity)."""
        self.data = get_backend(device).asarray(self.data)
        self.grad = None
        return self

    def __repr__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"Parameter{label}(shape={self.shape}, dtype={self.dtype})"
