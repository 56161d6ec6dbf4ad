"""Array backends: numpy on the CPU, cupy on a GPU. The only module that imports cupy.

A backend answers four questions for both engines: which array module runs the kernels
(`xp`), how arrays move to and from the device, how to wait for the device (`synchronize`,
needed for honest timing), and which backend owns a given array.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

DEVICES = ("cpu", "cuda")


class DeviceError(ValueError):
    """An unknown device, or one that this machine does not have."""


@dataclass(frozen=True)
class Backend:
    name: str  # "numpy" | "cupy"
    device: str  # "cpu" | "cuda"
    xp: Any  # the array module kernels are written against
    synchronize: Callable[[], None]  # block until queued device work is done

    def asarray(self, value: Any, dtype: Any = None) -> Any:
        """`value` as an array of this backend (copied across devices when needed)."""
        if self.name == "numpy" and _cupy_ndarray is not None and type(value) is _cupy_ndarray:
            value = value.get()
        return self.xp.asarray(value, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        return array.get() if self.name == "cupy" else np.asarray(array)


NUMPY = Backend("numpy", "cpu", np, lambda: None)
_cupy_backend: Backend | None = None
_cupy_ndarray: type | None = None  # set once cupy is loaded; None keeps the CPU path free


def _load_cupy() -> Backend:
    global _cupy_backend, _cupy_ndarray
    if _cupy_backend is None:
        try:
            cupy = importlib.import_module("cupy")
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device is visible")
        except Exception as exc:  # ImportError, CUDA driver errors
            raise DeviceError(
                f"device 'cuda' is not available here ({exc}). "
                "Fix: install cupy on a machine with an NVIDIA GPU (pip install 'diptych[gpu]'), "
                "or use device='cpu'."
            ) from None
        _cupy_ndarray = cupy.ndarray
        _cupy_backend = Backend("cupy", "cuda", cupy, cupy.cuda.get_current_stream().synchronize)
    return _cupy_backend


def get_backend(device: str | Backend | None = None) -> Backend:
    """The backend for a device name: 'cpu' (numpy, the default) or 'cuda' (cupy)."""
    if isinstance(device, Backend):
        return device
    if device is None or device == "cpu" or device == "numpy":
        return NUMPY
    if device in ("cuda", "gpu", "cupy") or str(device).startswith("cuda:"):
        return _load_cupy()
    raise DeviceError(f"unknown device {device!r}. Fix: choose one of {', '.join(DEVICES)}.")


def cuda_available() -> bool:
    try:
        _load_cupy()
    except DeviceError:
        return False
    return True


def backend_of(array: Any) -> Backend:
    """The backend that owns `array` (numpy for anything that is not a cupy array)."""
    if _cupy_ndarray is not None and type(array) is _cupy_ndarray:
        return _cupy_backend  # type: ignore[return-value]
    return NUMPY


def array_module(arrays) -> Any:
    """The array module for a kernel's arguments; raises if they live on different devices."""
    if _cupy_ndarray is None:  # cupy never loaded: everything is numpy
        return np
    on_gpu = [type(a) is _cupy_ndarray for a in arrays if hasattr(a, "shape")]
    if any(on_gpu):
        if not all(on_gpu):
            raise DeviceError(
                "arguments live on different devices (cpu and cuda). "
                "Fix: move them to one device first with .to('cuda') or .to('cpu')."
            )
        return _cupy_backend.xp  # type: ignore[union-attr]
    return np
