"""Tensor constructors with torch's names: tensor, zeros, ones, full, arange, linspace, randn,
rand."""

from __future__ import annotations

from typing import Any

import numpy as np

from common import random
from common.backend import get_backend
from eager.tensor import DEFAULT_FLOAT, Tensor, as_tensor


def _shape(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _leaf(array: Any, requires_grad: bool) -> Tensor:
    return Tensor._make(array, bool(requires_grad))


def tensor(
    data: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """A new leaf tensor holding a copy of `data` (Python floats become float32)."""
    return _leaf(as_tensor(data, dtype, device).data.copy(), requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a numpy array (changes show through both)."""
    return as_tensor(np.asarray(array))


def _filled(fill: str, shape: tuple, dtype: Any, device: str, requires_grad: bool) -> Tensor:
    xp = get_backend(device).xp
    return _leaf(
        getattr(xp, fill)(_shape(shape), dtype=np.dtype(dtype or DEFAULT_FLOAT)), requires_grad
    )


def zeros(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False):
    return _filled("zeros", shape, dtype, device, requires_grad)


def ones(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False):
    return _filled("ones", shape, dtype, device, requires_grad)


def full(
    shape: tuple,
    fill_value: float,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    made = zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)
    made.data[...] = fill_value
    return made


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=t.dtype, device=t.device, requires_grad=requires_grad)


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """Evenly spaced values in [start, stop); ints give int64, floats float32 (as torch)."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        floats = any(isinstance(v, float) for v in (start, stop, step))
        dtype = DEFAULT_FLOAT if floats else np.int64
    xp = get_backend(device).xp
    return _leaf(xp.arange(start, stop, step, dtype=np.dtype(dtype)), requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """`steps` evenly spaced values from start to end, both included; float32 unless `dtype`
    says otherwise (as torch, whatever the type of start and end)."""
    xp = get_backend(device).xp
    values = xp.linspace(start, end, int(steps)).astype(np.dtype(dtype or DEFAULT_FLOAT))
    return _leaf(values, requires_grad)


def _random(
    draw: str, shape: tuple, dtype: Any, device: str, requires_grad: bool, generator: Any
) -> Tensor:
    rng = random.generator(generator)
    values = getattr(rng, draw)(size=_shape(shape)).astype(np.dtype(dtype or DEFAULT_FLOAT))
    return _leaf(get_backend(device).asarray(values), requires_grad)


def randn(
    *shape: Any,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
    generator: Any = None,
) -> Tensor:
    """Standard normal samples from the seedable generator (`common.random.manual_seed`)."""
    return _random("standard_normal", shape, dtype, device, requires_grad, generator)


def rand(
    *shape: Any,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
    generator: Any = None,
) -> Tensor:
    """Uniform samples in [0, 1) from the seedable generator."""
    return _random("random", shape, dtype, device, requires_grad, generator)
