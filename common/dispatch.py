"""Op application: pick the engine that owns the arguments and let it interpret the op.

Every value class that takes part declares a class attribute `_priority` and a static hook
`_apply(op, args, params)`. The argument with the highest priority decides: symbolic symbols
(3) outrank eager tensors (2), which outrank `nn.Parameter` (1). Plain arrays and Python
scalars have no engine: applying an op to them alone just runs the kernel. Engines register
themselves here (`register_default_engine`), so `common` never imports them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from common.backend import array_module

_default_engine: Any = None  # the engine that parameters fall back to (eager, when imported)
_scopes: list = []  # engines that own parameter-only ops while a model runs on their values


def register_default_engine(engine: Any) -> None:
    """Called by `eager` on import: parameters used with arrays alone run on this engine."""
    global _default_engine
    _default_engine = engine


@contextlib.contextmanager
def engine_scope(engine: Any):
    """Inside, ops on parameters alone (`w.T`) run on `engine`: a model called on symbols
    must turn its weights into graph nodes too, not compute them eagerly."""
    _scopes.append(engine)
    try:
        yield
    finally:
        _scopes.pop()


def owner_engine(values) -> Any:
    """The class of the highest-priority engine value among `values` (None if none)."""
    best = max(values, key=lambda v: getattr(v, "_priority", 0), default=None)
    return type(best) if getattr(best, "_priority", 0) else None


def default_engine() -> Any:
    if _scopes:
        return _scopes[-1]
    if _default_engine is None:
        raise RuntimeError(
            "no engine is loaded to run this op on parameters. "
            "Fix: `import eager` (define-by-run) or pass symbols (`import symbolic`)."
        )
    return _default_engine


def apply(op, *args: Any, **params: Any) -> Any:
    """Apply `op` to `args`: the highest-priority argument's engine interprets it."""
    owner = None
    top = 0
    for arg in args:
        priority = getattr(arg, "_priority", 0)
        if priority > top:
            top = priority
            owner = arg
    if owner is None:
        return run_kernel(op, args, params)
    return owner._apply(op, args, params)


def run_kernel(op, arrays, params) -> Any:
    """Run `op`'s kernel on concrete arrays, turning a kernel failure into a clear error."""
    try:
        return op.kernel(array_module(arrays), *arrays, **params)
    except Exception as exc:
        raise op.explain_failure(exc, arrays, params) from None
