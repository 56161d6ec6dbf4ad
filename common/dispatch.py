"""Op application: pick the engine that owns the arguments and let it interpret the op.

Every value class that takes part declares a class attribute `_priority` and a static hook
`_apply(op, args, params)`. The argument with the highest priority decides: symbolic symbols
(3) outrank eager tensors (2), which outrank `nn.Parameter` (1). Plain arrays and Python
scalars have no engine: applying an op to them alone just runs the kernel. Engines register
themselves here (`register_default_engine`), so `common` never imports them.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any

import numpy as np

from common.backend import array_module


class ContextStack:
    """A stack that each thread (and asyncio task) sees on its own, for state that a `with`
    block opens: one thread tracing a model must not turn another thread's eager ops into
    graph nodes. `pushed(item)` opens, `top()` reads the innermost."""

    def __init__(self, name: str) -> None:
        self._items: ContextVar[tuple] = ContextVar(name, default=())  # immutable: no sharing

    @contextlib.contextmanager
    def pushed(self, item: Any):
        token = self._items.set(self._items.get() + (item,))
        try:
            yield item
        finally:
            self._items.reset(token)

    def top(self, default: Any = None) -> Any:
        """The innermost open item, or `default` when none is open."""
        items = self._items.get()
        return items[-1] if items else default


_default_engine: Any = None  # the engine that parameters fall back to (eager, when imported)
_scopes = ContextStack("engine_scopes")  # engines owning parameter-only ops, in this thread


def register_default_engine(engine: Any) -> None:
    """Called by `eager` on import: parameters used with arrays alone run on this engine."""
    global _default_engine
    _default_engine = engine


def engine_scope(engine: Any):
    """Inside, ops on parameters alone (`w.T`) run on `engine` (in this thread only): a model
    called on symbols must turn its weights into graph nodes too, not compute them eagerly."""
    return _scopes.pushed(engine)


def owner(values) -> Any:
    """The first of the highest-priority engine values among `values` (None if none): a
    plain loop, as this runs for every op applied."""
    best = None
    top = 0
    for value in values:
        priority = getattr(value, "_priority", 0)
        if priority > top:
            top = priority
            best = value
    return best


def owner_engine(values) -> Any:
    """The class of the highest-priority engine value among `values` (None if none)."""
    best = owner(values)
    return None if best is None else type(best)


def default_engine() -> Any:
    engine = _scopes.top(_default_engine)
    if engine is None:
        raise RuntimeError(
            "no engine is loaded to run this op on parameters. "
            "Fix: `import eager` (define-by-run) or pass symbols (`import symbolic`)."
        )
    return engine


def apply(op, *args: Any, **params: Any) -> Any:
    """Apply `op` to `args`: the highest-priority argument's engine interprets it."""
    engine_value = owner(args)
    if engine_value is None:
        return run_kernel(op, args, params)
    return engine_value._apply(op, args, params)


def run_kernel(op, arrays, params) -> Any:
    """Run `op`'s kernel on concrete arrays, turning a kernel failure into a clear error."""
    try:
        xp = array_module(arrays)
        if xp is np and op.numpy_ufunc is not None and not params:
            return op.numpy_ufunc(*arrays)  # what the kernel would call, one frame sooner
        return op.kernel(xp, *arrays, **params)
    except Exception as exc:
        raise op.explain_failure(exc, arrays, params) from None
