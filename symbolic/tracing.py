"""Tracing: run a Python function (or a `common.nn` model) once on symbols to get its graph.

`S.function` caches compiled graphs per input signature (shapes, dtypes, the values of plain
Python arguments, which are baked in, and the modules' train/eval modes) and explains every
retrace, the well-known pain point of tf.function and torch.compile. While it traces, the
capture linter (`symbolic.lint`) warns about what else Python froze into the graph.
"""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from common.control import leaves
from common.dispatch import engine_scope
from common.nn.module import recording_calls
from symbolic.compiler import CompiledFunction, compile
from symbolic.graph import Graph, recording
from symbolic.lint import Lint
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
        outputs = Lint(fn).run(*inputs)  # warns about what tracing froze
    return Graph.traced(
        [i.node for i in inputs], [as_symbol(o).node for o in leaves(outputs)], [], recorded
    )


def _argument_names(fn: Callable, count: int) -> list[str]:
    target = fn.forward if hasattr(fn, "forward") else fn
    try:
        params = [
            p
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
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
        parts = [f"{what} {a} -> {b}" for what, a, b in zip(("shape", "dtype"), old[1:], new[1:])]
        changed = " and ".join(p for p, a, b in zip(parts, old[1:], new[1:]) if a != b)
        return f"{changed}: a graph is specialized to its input shapes and dtypes"
    if old[0] == new[0] == "value":
        return (
            f"{old[2]!r} -> {new[2]!r}: a Python {new[1]} is baked into the graph; pass "
            "it as an array to avoid this"
        )
    return f"{old} -> {new}"


def _mode(training: bool) -> str:
    return "train" if training else "eval"


def _describe_modes(names: list[str], old: tuple, new: tuple) -> list[str]:
    """Which watched modules changed train/eval mode (modules watched since are new)."""
    changed: dict[tuple, list[str]] = {}
    for name, before, after in zip(names, old, new):
        if before != after:
            changed.setdefault((before, after), []).append(name)
    lines = []
    for (before, after), who in changed.items():
        listed = ", ".join(who[:4]) + (f" and {len(who) - 4} more" if len(who) > 4 else "")
        lines.append(
            f"module mode changed {_mode(before)} -> {_mode(after)} for {listed}: "
            "layers such as dropout compute differently in each mode, so each mode "
            "has its own graph"
        )
    if len(new) > len(old):
        lines.append(
            f"the function ran modules no earlier trace ran: "
            f"{', '.join(names[len(old) : len(new)])}"
        )
    return lines


DEFAULT_MAX_CACHE = 64  # graphs kept per S.function: room for many shapes and modes, yet a
# Python float argument that changes every call cannot fill memory with graphs


class TracedFunction:
    """`S.function(fn)`: trace once per input signature, cache, count and explain retraces.

    The signature is each array argument's shape and dtype, each Python argument's value,
    and the train/eval mode of every module `fn` runs (a Module's whole tree, and modules
    called while tracing). The cache keeps the `max_cache` most recently used graphs.
    Concurrent first calls of one signature trace it once; the others wait for that graph.
    """

    def __init__(
        self,
        fn: Callable,
        optimize: int = 2,
        warn_after: int = 5,
        max_cache: int = DEFAULT_MAX_CACHE,
    ) -> None:
        if max_cache < 1:
            raise ValueError(f"max_cache must be at least 1, got {max_cache}.")
        self.fn = fn
        self.optimize = optimize
        self.warn_after = warn_after
        self.max_cache = max_cache
        self.cache: OrderedDict[tuple, CompiledFunction] = OrderedDict()  # least recent first
        self.traces = 0  # graphs traced in all, evicted ones included
        self.explanations: list[str] = []
        self._last: tuple | None = None
        self._last_compiled: CompiledFunction | None = None
        self._evicted: OrderedDict[tuple, None] = OrderedDict()  # the latest dropped keys
        self._modules, self._module_names = [], []  # watched for their modes, in key order
        self._lock = threading.Lock()  # guards the cache, the counters and the watched list
        self._tracing: dict[tuple, threading.Lock] = {}  # one lock per signature in flight
        functools.update_wrapper(self, fn.forward if hasattr(fn, "forward") else fn)
        name_parameters(fn)
        self._watch(getattr(fn, "named_modules", lambda: ())())

    @property
    def retraces(self) -> int:
        return max(self.traces - 1, 0)

    @property
    def report(self) -> Any:
        """The compile report of the graph the last call ran: stages, and the values baked
        in from Python (`report.constants`, `report.python_values`)."""
        if self._last_compiled is None:
            raise AttributeError(
                f"{self.__name__} has no report yet: nothing was traced. Fix: call it first."
            )
        return self._last_compiled.report

    def __call__(self, *args: Any) -> Any:
        key = self._key(args)
        with self._lock:
            compiled = self._lookup(key)
        if compiled is None:
            compiled = self._trace_once(key, args)
        self._last_compiled = compiled
        return compiled(*(a for a in args if _is_array(a)))

    def _key(self, args: tuple) -> tuple:
        return (tuple(_signature(a) for a in args), tuple(m.training for m in self._modules))

    def _lookup(self, key: tuple) -> CompiledFunction | None:
        """The cached graph for `key`, marked most recently used (the lock held)."""
        compiled = self.cache.get(key)
        if compiled is not None:
            self.cache.move_to_end(key)
            self._last = key
        return compiled

    def _trace_once(self, key: tuple, args: tuple) -> CompiledFunction:
        """Trace a missing signature, unless another thread is tracing it: then wait for
        its graph instead of tracing the same one twice."""
        with self._lock:
            in_flight = self._tracing.setdefault(key, threading.Lock())
        try:
            with in_flight:
                with self._lock:  # the key again: a finished trace may have watched modules
                    compiled = self._lookup(self._key(args))
                return compiled or self._trace_and_insert(args)
        finally:
            with self._lock:
                if self._tracing.get(key) is in_flight:
                    del self._tracing[key]

    def _trace_and_insert(self, args: tuple) -> CompiledFunction:
        with recording_calls() as called:
            compiled = self._trace(args)
        with self._lock:
            self._watch((type(m).__name__, m) for m in called)
            key = self._key(args)
            explanation = self._explain(key) if self.traces else None
            self.traces += 1
            self._insert(key, compiled)
            self._last = key
        if explanation is not None:
            self.explanations.append(explanation)
            if self.retraces >= self.warn_after:
                warnings.warn(
                    f"{self.__name__} was retraced {self.retraces} times; last: {explanation}",
                    stacklevel=4,
                )
        return compiled

    def _watch(self, named_modules: Any) -> None:
        """Add modules whose mode the graphs depend on (the root module is named by type)."""
        known = {id(m) for m in self._modules}
        for name, module in named_modules:
            if id(module) not in known:
                known.add(id(module))
                self._modules.append(module)
                label = type(module).__name__
                self._module_names.append(f"{name} ({label})" if name and name != label else label)

    def _insert(self, key: tuple, compiled: CompiledFunction) -> None:
        """Cache the graph; past `max_cache`, drop the least recently used one."""
        self.cache[key] = compiled
        self._evicted.pop(key, None)
        if len(self.cache) > self.max_cache:
            dropped, _ = self.cache.popitem(last=False)
            self._evicted[dropped] = None
            if len(self._evicted) > self.max_cache:
                self._evicted.popitem(last=False)

    def _nearest(self, key: tuple) -> tuple:
        def distance(other: tuple) -> int:  # fields that differ: shape and dtype count apart
            (args, modes), (new_args, new_modes) = other, key
            fields = [
                (a[1:], b[1:]) if a[0] == b[0] == "array" else ((a,), (b,))
                for a, b in zip(args, new_args)
            ]
            differing = sum(x != y for old, new in fields for x, y in zip(old, new))
            differing += sum(a != b for a, b in zip(modes, new_modes))
            return differing + abs(len(args) - len(new_args))

        return min([self._last, *self.cache], key=distance)

    def _explain(self, key: tuple) -> str:
        """Why `key` needs a new graph, compared with the nearest signature already traced
        (the one that differs in the fewest places; the previous call's on a tie), the
        lock held."""
        (old_args, old_modes), (new_args, new_modes) = self._nearest(key), key
        names = _argument_names(self.fn, len(new_args))
        changed = [
            f"argument {n} changed {_describe(o, k)}"
            for n, o, k in zip(names, old_args, new_args)
            if o != k
        ]
        if len(old_args) != len(new_args):
            changed.append("the number of arguments changed")
        changed += _describe_modes(self._module_names, old_modes, new_modes)
        if key in self._evicted:
            changed.append(
                f"this signature was traced before, but its graph had been dropped "
                f"from the full cache (max_cache={self.max_cache})"
            )
        elif len(self.cache) >= self.max_cache:
            changed.append(self._cache_full(names, new_args))
        return "retraced because " + "; ".join(changed or ["the signature changed"])

    def _cache_full(self, names: list[str], new_args: tuple) -> str:
        """Why the cache filled up: usually a Python value that is different at every call."""
        note = (
            f"the cache is full (max_cache={self.max_cache}), so the least recently used "
            "graph was dropped"
        )
        for i, (name, sig) in enumerate(zip(names, new_args)):
            values = {k[0][i] for k in self.cache if len(k[0]) == len(new_args)}
            if sig[0] == "value" and len(values) > 1:
                note += (
                    f"; {len(values)} of them differ only in argument {name}, a Python "
                    f"{sig[1]}: pass it as an array (a placeholder) instead"
                )
        return note

    def _trace(self, args: tuple) -> CompiledFunction:
        names = _argument_names(self.fn, len(args))
        symbols = [spec_placeholder(a, n) if _is_array(a) else a for a, n in zip(args, names)]
        inputs = [s for s in symbols if isinstance(s, Symbol)]
        baked = {n: a for n, a in zip(names, args) if not _is_array(a)}
        lint = Lint(self.fn, baked)  # warns about what tracing froze, `if`s on `baked` too
        compiled = compile(lambda *_: lint.run(*symbols), inputs=inputs, optimize=self.optimize)
        compiled.report.lint = lint.findings
        return compiled


def function(
    fn: Callable | None = None,
    *,
    optimize: int = 2,
    warn_after: int = 5,
    max_cache: int = DEFAULT_MAX_CACHE,
) -> Any:
    """Decorator: compile `fn` per input signature (`@S.function` or `S.function(model)`),
    keeping the `max_cache` most recently used graphs."""
    if fn is None:
        return lambda f: TracedFunction(f, optimize, warn_after, max_cache)
    return TracedFunction(fn, optimize, warn_after, max_cache)
