"""Tracing: run a Python function (or a `common.nn` model) once on symbols to get its graph.

`S.function` caches one compiled graph per input signature (shapes, dtypes, and the values
of plain Python arguments, which are baked in) and explains every retrace, the well-known
pain point of tf.function and torch.compile.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable

import numpy as np

from common.control import leaves
from common.dispatch import engine_scope
from symbolic.compiler import CompiledFunction, compile
from symbolic.graph import Graph, recording
from symbolic.symbol import Symbol, as_symbol, placeholder


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, Symbol)


def spec_placeholder(spec: Any, name: str) -> Symbol:
    """A placeholder for an input spec: a placeholder itself, an array-like (its shape and
    dtype), or a shape tuple (float32)."""
    if isinstance(spec, Symbol):
        return spec
    if _is_array(spec):
        return placeholder(tuple(spec.shape), np.dtype(spec.dtype).name, name)
    return placeholder(tuple(spec), "float32", name)


def name_parameters(fn: Any) -> None:
    """Give a model's parameters their full paths ('0.weight'), so graph dumps tell them apart."""
    for path, param in getattr(fn, "named_parameters", lambda: ())():
        param.name = path


def trace(fn: Callable, *input_specs: Any) -> Graph:
    """The graph of `fn` (a function or a Module) applied to placeholders for the specs."""
    name_parameters(fn)
    names = _argument_names(fn, len(input_specs))
    inputs = [spec_placeholder(s, n) for s, n in zip(input_specs, names)]
    with recording() as recorded, engine_scope(Symbol):
        outputs = fn(*inputs)
    return Graph.traced([i.node for i in inputs], [as_symbol(o).node for o in leaves(outputs)],
                        [], recorded)


def _argument_names(fn: Callable, count: int) -> list[str]:
    target = fn.forward if hasattr(fn, "forward") else fn
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names + [f"arg{i}" for i in range(len(names), count)]


def _signature(value: Any) -> tuple:
    """What a traced graph depends on: an array's shape and dtype, a plain value itself."""
    if _is_array(value):
        return ("array", tuple(value.shape), np.dtype(value.dtype).name)
    if isinstance(value, (list, tuple)):
        return ("sequence", tuple(_signature(v) for v in value))
    return ("value", type(value).__name__, value)


def _describe(old: tuple, new: tuple) -> str:
    if old[0] == new[0] == "array":
        what = "shape" if old[1] != new[1] else "dtype"
        before, after = (old[1], new[1]) if what == "shape" else (old[2], new[2])
        return (f"{what} {before} -> {after}: a graph is specialized to its input shapes "
                "and dtypes")
    if old[0] == new[0] == "value":
        return (f"{old[2]!r} -> {new[2]!r}: a Python {new[1]} is baked into the graph; pass "
                "it as an array to avoid this")
    return f"{old} -> {new}"


class TracedFunction:
    """`S.function(fn)`: trace once per input signature, cache, count and explain retraces."""

    def __init__(self, fn: Callable, optimize: int = 2, warn_after: int = 5) -> None:
        self.fn = fn
        self.optimize = optimize
        self.warn_after = warn_after
        self.cache: dict[tuple, CompiledFunction] = {}
        self.retraces = 0
        self.explanations: list[str] = []
        self._last: tuple | None = None
        functools.update_wrapper(self, fn.forward if hasattr(fn, "forward") else fn)
        name_parameters(fn)

    def _explain(self, key: tuple) -> str:
        names = _argument_names(self.fn, len(key))
        changed = [f"argument {n} changed {_describe(o, k)}"
                   for n, o, k in zip(names, self._last, key) if o != k]
        return "retraced because " + "; ".join(changed or ["the number of arguments changed"])

    def __call__(self, *args: Any) -> Any:
        key = tuple(_signature(a) for a in args)
        compiled = self.cache.get(key)
        if compiled is None:
            if self._last is not None:
                self.retraces += 1
                self.explanations.append(self._explain(key))
                if self.retraces >= self.warn_after:
                    warnings.warn(f"{self.__name__} was retraced {self.retraces} times; last: "
                                  f"{self.explanations[-1]}", stacklevel=2)
            compiled = self.cache[key] = self._trace(args)
        self._last = key
        return compiled(*(a for a in args if _is_array(a)))

    def _trace(self, args: tuple) -> CompiledFunction:
        names = _argument_names(self.fn, len(args))
        symbols = [spec_placeholder(a, n) if _is_array(a) else a for a, n in zip(args, names)]
        inputs = [s for s in symbols if isinstance(s, Symbol)]
        return compile(lambda *_: self.fn(*symbols), inputs=inputs, optimize=self.optimize)

    @property
    def traces(self) -> int:
        return len(self.cache)


def function(fn: Callable | None = None, *, optimize: int = 2, warn_after: int = 5) -> Any:
    """Decorator: compile `fn` per input signature (`@S.function` or `S.function(model)`)."""
    if fn is None:
        return lambda f: TracedFunction(f, optimize, warn_after)
    return TracedFunction(fn, optimize, warn_after)
