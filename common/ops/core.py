"""The op record (`OpDef`), the registry of all ops, and the abstract values shape rules use.

An op is declared once: its kernel (written against `xp`), its abstract evaluation (output
shape and dtype, or a clear error), its VJP (written with `F` ops, so it runs eagerly or
builds graph nodes), and the flags that graph passes read.

    EXP = declare(OpDef("exp", "elementwise", kernel=lambda xp, x: xp.exp(x),
                        abstract=same_as_input, vjp=(lambda g, out, x: g * out,),
                        expr="exp({0})", preamble={"numba": "from numpy import exp"}))
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

KINDS = ("elementwise", "reduction", "shape", "linalg", "nn", "random", "control")


_FRAMEWORK_DIRS = tuple(
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), package
    )
    + os.sep
    for package in ("common", "eager", "symbolic")
)


def user_line() -> str:
    """The caller's place outside diptych's own packages: 'file.py:12: the code'."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_FRAMEWORK_DIRS):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith("<diptych"):
        return ""  # raised while a compiled plan runs: the node's own line is named instead
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    where = f"{_file_name(frame.f_code.co_filename)}:{frame.f_lineno}"
    return f"{where}: {code}" if code else where


_NOTEBOOK_CELL = re.compile(r"[/\\]ipykernel_\d+[/\\]\d+\.py$")  # how IPython names a cell


def _file_name(path: str) -> str:
    """A file's base name; a Jupyter cell (compiled from /tmp/ipykernel_N/HASH.py) is "cell",
    so notebook and site pages read "cell:3", not a hash."""
    return "cell" if _NOTEBOOK_CELL.search(path) else os.path.basename(path)


class OpError(ValueError):
    """A user error: says what went wrong and how to fix it; the user's line is appended."""

    def __init__(self, message: str) -> None:
        where = user_line()
        if where and "\n  (at " not in message:
            message = f"{message}\n  (at {where})"
        super().__init__(message)


class ShapeError(OpError):
    pass


class DTypeError(OpError, TypeError):
    pass


class Aval(NamedTuple):
    """Abstract value: what shape rules see. `None` in a shape is an unknown dimension.

    A weak aval is a Python scalar: it takes the other operand's dtype (numpy 2 rules).
    """

    shape: tuple
    dtype: Any  # np.dtype, or the Python type (float, int, bool, complex) when weak
    weak: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)


_WEAK_EXAMPLE = {bool: True, int: 0, float: 0.0, complex: 0j}


def aval_of(value: Any) -> Aval:
    """The abstract value of anything an op accepts: a scalar, an array, a tensor, a symbol."""
    aval = getattr(value, "aval", None)
    if aval is not None:
        return aval
    if type(value) in _WEAK_EXAMPLE:  # not numpy scalars (np.float64 is a float): they are
        return Aval((), type(value), weak=True)  # strong, as in numpy 2's promotion
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return Aval(tuple(value.shape), np.dtype(value.dtype))
    if isinstance(value, (list, tuple)):
        array = np.asarray(value)
        return Aval(array.shape, array.dtype)
    raise DTypeError(
        f"cannot use a {type(value).__name__} as an array argument. "
        "Fix: pass a tensor, an array or a Python number."
    )


def result_dtype(*avals: Aval) -> np.dtype:
    """numpy 2 promotion, with Python scalars weak (`f32 + 2.0 -> f32`)."""
    return np.result_type(*(_WEAK_EXAMPLE[a.dtype] if a.weak else a.dtype for a in avals))


def fmt(shape: tuple) -> str:
    """A shape as users write it: (3, 4), (5,), () and None for unknown dimensions."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(op_name: str, *shapes: tuple) -> tuple:
    """numpy broadcasting of shapes that may hold None (unknown), with a readable error."""
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        dims = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        known = dims - {None}
        if len(known) > 1:
            listed = " with ".join(fmt(s) for s in shapes)
            raise ShapeError(
                f"{op_name}: cannot broadcast {listed}: dimension {axis} is "
                f"{' vs '.join(str(d) for d in sorted(known))}. "
                "Fix: reshape or expand_dims one operand so trailing dimensions match or are 1."
            )
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


def normalize_axes(op_name: str, axis: Any, ndim: int) -> tuple:
    """`axis` (None, an int, or a sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and 0 <= axis < ndim:  # the common case, checked cheaply
        return (axis,)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ShapeError(
                f"{op_name}: axis {a} is out of range for a {ndim}-d input. "
                f"Fix: use an axis in [{-ndim}, {ndim - 1}]."
            )
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op_name}: axis {axis} repeats an axis. Fix: name each axis once.")
    return tuple(sorted(out))


def same_as_input(x: Aval, *rest: Aval, **params: Any) -> Aval:
    """Abstract evaluation of ops whose output looks like their first input."""
    return Aval(x.shape, result_dtype(x) if x.weak else x.dtype)


@dataclass(frozen=True, eq=False)
class OpDef:
    name: str
    kind: str  # one of KINDS
    kernel: Callable[..., Any]  # kernel(xp, *arrays, **params) -> array
    abstract: Callable[..., Aval]  # abstract(*avals, **params) -> Aval, or raises OpError
    vjp: Any = None  # per-input formulas f(g, out, *inputs, **params), or one returning a list
    expr: str | None = None  # fused-expression template for elementwise ops: "({0} + {1})"
    # per fusion target ("numba", "cuda"): a template, or spelling(args, params, step) -> str,
    # that replaces `expr` there; None: never fused on that target
    scalar: Mapping[str, Any] = field(default_factory=dict)
    # per fusion target: source a fused kernel needs for this op (numba: imports and njit
    # helpers; cuda: device functions), or a function of the kernel's dtypes giving it
    preamble: Mapping[str, Any] = field(default_factory=dict)
    view: bool = False  # the output may alias input 0 (no copy): never write into it
    stateful: bool = False  # draws random numbers: never folded, merged or cached
    writes_out: bool = False  # the kernel takes `out=`: the memory plan may give it a buffer
    samples: Callable[..., list] | None = None  # samples(rng) -> [(args, params)] for tests
    doc: str = field(default="", repr=False)
    # derived: the numpy ufunc the kernel is (`kernel.ufunc`), which the eager path calls
    # directly on numpy arrays, without the kernel's own Python frame; None for other kernels
    numpy_ufunc: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        name = getattr(self.kernel, "ufunc", None)
        object.__setattr__(self, "numpy_ufunc", None if name is None else getattr(np, name))

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    def spelling(self, target: str) -> Any:
        """How `target` spells this op inside a fused kernel; None where it cannot."""
        return self.scalar.get(target, self.expr)

    def eval_abstract(self, *args: Any, **params: Any) -> Aval:
        return self.abstract(*(aval_of(a) for a in args), **params)

    def explain_failure(self, exc: Exception, args, params) -> Exception:
        """The clearest error for a kernel that raised: the shape rule's, else the kernel's."""
        if isinstance(exc, OpError):
            return exc
        try:
            self.eval_abstract(*args, **params)
        except OpError as clear:
            return clear
        if not isinstance(exc, (ValueError, TypeError)):
            return exc
        try:
            return type(exc)(f"{self.name}: {exc}")
        except TypeError:  # numpy's UFuncTypeError kinds take other arguments than a message
            return (TypeError if isinstance(exc, TypeError) else ValueError)(f"{self.name}: {exc}")

    def grad_formulas(self, g, out, inputs, needs, params) -> list:
        """The VJP of this op for the inputs flagged in `needs` (None elsewhere)."""
        if not isinstance(self.vjp, tuple):
            return list(self.vjp(g, out, *inputs, **params))
        grads = []  # a loop: a comprehension costs more, and this runs for every node
        for f, need in zip(self.vjp, needs):
            grads.append(f(g, out, *inputs, **params) if need and f is not None else None)
        return grads


OPS: dict[str, OpDef] = {}


def declare(op: OpDef) -> OpDef:
    """Add `op` to the registry (every op is reachable by name: `OPS['exp']`)."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is declared twice")
    if op.kind not in KINDS:
        raise ValueError(f"op {op.name!r}: kind {op.kind!r} is not one of {KINDS}")
    OPS[op.name] = op
    return op


def uniform_samples(shapes_list, low: float = -2.0, high: float = 2.0, **params: Any):
    """A `samples` factory: one sample per tuple of shapes, values drawn in [low, high)."""

    def samples(rng: np.random.Generator) -> list:
        return [
            (tuple(rng.uniform(low, high, size=s) for s in shapes), dict(params))
            for shapes in shapes_list
        ]

    return samples
