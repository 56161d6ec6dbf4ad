"""The capture linter: tracing runs a Python function once, so whatever Python did then is
frozen into the graph, silently. While `S.function`, `S.trace` or `S.compile` traces a user's
function, the linter watches for what freezes and warns (a `CaptureWarning` naming the user's
line); the findings are also kept on the compiled function's report (`f.report.lint`).

    global or closure numbers and arrays   read once, baked in as constants
    random numbers drawn                   drawn once: every call reuses them
    print()                                runs once, and prints symbols
    lists, dicts and sets changed          changed once, and they hold symbols
    an `if` on a Python value              only the branch taken is in the graph

Not warned about: numbers written in the code (`x * 2`), arguments (S.function specializes on
them, and says why when it retraces), attributes of `self` (a module's settings), and globals
named in capitals (`EPS = 1e-5`: constants by PEP 8's convention, meant never to change).
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import linecache
import operator
import os
import random
import re
import sys
import textwrap
import types
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from common import random as common_random
from common.methods import ArrayMethods
from common.nn.parameter import Parameter
from common.ops.core import _FRAMEWORK_DIRS
from symbolic.graph import Node, _recorders
from symbolic.symbol import Symbol


class CaptureWarning(UserWarning):
    """Something Python did while tracing is frozen into the graph; the message says what,
    where (the user's line), and how to keep it live."""


@dataclass(frozen=True)
class Finding:
    """One thing the linter found: `kind` (captured, random, print, mutated, branch), the
    user's `line` ("model.py:12: y = x * scale") and what it means (`message`)."""

    kind: str
    line: str
    message: str
    filename: str  # the full path and line number, where the warning points
    lineno: int
    registry: dict = field(compare=False, repr=False)  # its module's: a warning shows once

    @staticmethod
    def at(kind: str, message: str, filename: str, lineno: int, module: dict) -> Finding:
        """A finding at a line of a file whose module's globals are `module`."""
        registry = module.setdefault("__warningregistry__", {})
        return Finding(kind, _line(filename, lineno), message, filename, lineno, registry)

    def warn(self) -> None:
        warnings.warn_explicit(
            self.message, CaptureWarning, self.filename, self.lineno, registry=self.registry
        )

    def __str__(self) -> str:
        return f"{self.line.split(': ', 1)[0]}: {self.message}"


def _line(filename: str, lineno: int) -> str:
    code = linecache.getline(filename, lineno).strip()
    where = f"{os.path.basename(filename)}:{lineno}"
    return f"{where}: {code}" if code else where


def _user_frame(frame: Any) -> Any:
    """The first frame at or above `frame` outside diptych's own packages (None if none)."""
    while frame is not None and frame.f_code.co_filename.startswith(_FRAMEWORK_DIRS):
        frame = frame.f_back
    return frame


# ---- what the traced function can reach -------------------------------------------------


@dataclass
class Target:
    """The user's function behind what is traced: its code, and the values it names from
    outside (globals it reads, closure variables), by name."""

    function: types.FunctionType | None
    outside: dict[str, Any]  # name -> value
    kinds: dict[str, str]  # name -> "global" or "closure variable"

    @staticmethod
    def of(fn: Any) -> Target:
        function = _function_of(fn)
        if function is None or function.__code__.co_filename.startswith(_FRAMEWORK_DIRS):
            return Target(None, {}, {})  # diptych's own code (S.function's lambda): not linted
        outside, kinds = {}, {}
        for name in _global_names(function.__code__):
            if name in function.__globals__:
                outside[name], kinds[name] = function.__globals__[name], "global"
        for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
            try:
                outside[name], kinds[name] = cell.cell_contents, "closure variable"
            except ValueError:  # a cell not filled yet
                continue
        return Target(function, outside, kinds)

    @functools.cached_property
    def tree(self) -> tuple[ast.AST, int] | None:
        """The function's source parsed, and the line number its first line has in its file."""
        try:
            lines, first = inspect.getsourcelines(self.function)
            return ast.parse(textwrap.dedent("".join(lines))), first - 1
        except (OSError, TypeError, SyntaxError):  # no source, or a lambda inside a larger line
            return None

    def finding(self, kind: str, message: str, lineno: int | None = None) -> Finding:
        """A finding at `lineno` of the function's file (default: the line that defines it)."""
        code = self.function.__code__
        lineno = lineno or code.co_firstlineno
        return Finding.at(kind, message, code.co_filename, lineno, self.function.__globals__)

    def first_line(self, accepts: Callable[[ast.AST], bool]) -> int | None:
        """The line, in the file, of the first expression of the function that `accepts`."""
        if self.tree is None:
            return None
        tree, offset = self.tree
        lines = [n.lineno for n in ast.walk(tree) if hasattr(n, "lineno") and accepts(n)]
        return min(lines) + offset if lines else None


def _function_of(fn: Any) -> types.FunctionType | None:
    """The Python function whose code runs when `fn` is traced: a function itself, a module's
    forward, a bound method's function, a partial's; None for anything else."""
    fn = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    if isinstance(fn, functools.partial):
        fn = fn.func
    for candidate in (fn, getattr(type(fn), "forward", None), getattr(fn, "__func__", None)):
        if isinstance(candidate, types.FunctionType):
            return candidate
    return None


def _global_names(code: types.CodeType) -> set[str]:
    """Names the code (and the functions and comprehensions inside it) may read as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _chain(node: ast.AST) -> str | None:
    """`a.b.c` for a name or an attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _chain(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


# ---- the linter --------------------------------------------------------------------------

_active: ContextVar[Lint | None] = ContextVar("capture_lint", default=None)  # this thread's
_MISSING = object()
_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")  # a name or attribute chain
MUTATORS = frozenset(
    "append extend insert pop remove clear update setdefault popitem add discard sort reverse"
    " __setitem__ __delitem__".split()
)
BRANCHES = {ast.If: "if", ast.While: "while", ast.IfExp: "... if ... else ..."}  # keywords


class Lint:
    """Watches one trace of a user's function: `run(*args)` calls `fn` and then warns about
    what froze; `findings` keeps the list. `arguments` are the Python (non-array) arguments
    S.function specializes the trace on, by name."""

    def __init__(self, fn: Callable, arguments: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.target = Target.of(fn)
        self.arguments = arguments or {}
        self.findings: list[Finding] = []
        self._keys: set[tuple] = set()

    def run(self, *args: Any) -> Any:
        if self.target.function is None:
            return self.fn(*args)
        containers = {
            name: (box, len(box), _contents(box))
            for name, box in self.target.outside.items()
            if type(box) in (list, dict, set)
        }
        states = {
            name: (calls, read, read())
            for name, (calls, read) in _random_sources(self.target).items()
        }
        _watch_print()
        token = _active.set(self)
        try:
            with _recorders.pushed(_Watcher(_recorders.top(), self)):
                result = self.fn(*args)
        finally:
            _active.reset(token)
        self._check_random(states)
        self._check_containers(containers)
        self._check_branches()
        for finding in self.findings:
            finding.warn()
        return result

    def _add(self, key: tuple, finding: Finding) -> None:
        if key not in self._keys:
            self._keys.add(key)
            self.findings.append(finding)

    # ---- values read from globals and closures ----------------------------------------------

    def saw(self, node: Node) -> None:
        """A node made while tracing: does it hold a value read from a global or a closure?"""
        if node.op == "constant":
            captured = [node.value]
        elif node.is_source:
            return
        else:
            captured = [a for a in node.inputs if isinstance(a, (bool, int, float))]
        # frames up: this, the watcher, Node.__post_init__, the dataclass's generated
        # __init__ (its file is "<string>"), then whoever made the node
        frame = _user_frame(sys._getframe(4)) if captured else None
        if frame is None:
            return
        for name, kind, value in _names_read(frame):
            if any(_same(value, c) for c in captured):
                lineno = frame.f_lineno
                filename = frame.f_code.co_filename
                message = _captured(name, kind, value)
                finding = Finding.at("captured", message, filename, lineno, frame.f_globals)
                self._add(("captured", filename, lineno, name), finding)

    def printed(self, frame: Any) -> None:
        if frame.f_code.co_filename.startswith(_FRAMEWORK_DIRS):
            return
        filename, lineno = frame.f_code.co_filename, frame.f_lineno
        message = (
            "print() ran while tracing: it runs once, when the function is traced, and shows "
            "symbols, not values; calls of the compiled function print nothing. Fix: print "
            "the compiled function's outputs, or step through its plan to see the values "
            "inside (f.debug(*inputs))."
        )
        self._add(
            ("print", filename, lineno),
            Finding.at("print", message, filename, lineno, frame.f_globals),
        )

    # ---- after the trace ---------------------------------------------------------------------

    def _check_random(self, states: dict) -> None:
        for name, (calls, read, before) in states.items():
            if _same_state(before, read()):
                continue
            lineno = self.target.first_line(functools.partial(_calls, prefixes=calls))
            message = (
                f"random numbers were drawn from {name} while tracing: drawn once, they are "
                "baked into the graph, so every call reuses the same numbers (eager code draws "
                "new ones at each call). Fix: draw inside the graph (F.dropout, or a random "
                "op), or pass the random array as an argument."
            )
            self._add(("random", name), self.target.finding("random", message, lineno))

    def _check_containers(self, containers: dict) -> None:
        for name, (box, size, before) in containers.items():
            after = _contents(box)
            if len(after) == len(before) and all(map(operator.is_, after, before)):
                continue
            lineno = self.target.first_line(functools.partial(_mutates, name=name))
            message = (
                f"the {self.target.kinds[name]} {name} (a {type(box).__name__}) was changed "
                f"while tracing ({size} items before, {len(box)} after): the Python "
                "code ran once, while tracing, so it holds what tracing put there (symbols, "
                "not values), and calls of the compiled function do not change it. Fix: "
                "return the values as outputs of the function instead."
            )
            self._add(("mutated", name), self.target.finding("mutated", message, lineno))

    def _check_branches(self) -> None:
        if self.target.tree is None:
            return
        tree, offset = self.target.tree
        for branch in ast.walk(tree):
            keyword = BRANCHES.get(type(branch))
            names = {_chain(n) for n in ast.walk(branch.test)} - {None} if keyword else ()
            for name in names:
                message = self._baked(name, keyword)
                if message is not None:
                    finding = self.target.finding("branch", message, branch.lineno + offset)
                    self._add(("branch", name, branch.lineno), finding)

    def _baked(self, name: str, keyword: str) -> str | None:
        """What it means that the `if` tests `name`, if a baked-in Python value; else None."""
        if name in self.arguments:
            value = self.arguments[name]
            return (
                f"this `{keyword}` tests the argument {name}, which is {value!r} in this "
                "trace: only the branch taken is in the graph. S.function traces a graph for "
                f"each value of {name}, so it stays right at the cost of one trace per value. "
                "Fix, if it changes often: pass it as an array and choose with F.where or "
                "F.cond."
            )
        value = self.target.outside.get(name, _MISSING)
        if name.isupper() or not isinstance(value, (bool, int, float, str, type(None))):
            return None
        return (
            f"this `{keyword}` tests the {self.target.kinds[name]} {name}, which was {value!r} "
            "while tracing: only the branch taken is in the graph, so changing it later does "
            "not change the compiled function (eager code would take the other branch). Fix: "
            "pass it as an argument (S.function then traces a graph per value), or choose "
            "inside the graph with F.where or F.cond."
        )


class _Watcher:
    """Stands on the recorders' stack above the trace's own list: every node made while
    tracing passes here on its way there, while the user's frame that made it still runs."""

    def __init__(self, outer: list | None, lint: Lint) -> None:
        self.outer, self.lint = outer, lint

    def append(self, node: Node) -> None:
        if self.outer is not None:
            self.outer.append(node)
        self.lint.saw(node)


# ---- values read on a line ---------------------------------------------------------------


def _names_read(frame: Any) -> list[tuple[str, str, Any]]:
    """(name, "global" or "closure variable", value) for each name or attribute chain the
    frame's current line reads from outside the function; modules (np.pi) do not count."""
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).split("#")[0]
    if "constant(" in code:  # S.constant(...) asks for a constant in so many words
        return []
    found = []
    for chain in _NAME.findall(code):
        root, *attributes = chain.split(".")
        if root in frame.f_code.co_freevars:
            kind, value = "closure variable", frame.f_locals.get(root, _MISSING)
        elif root in frame.f_code.co_varnames or root in frame.f_code.co_cellvars:
            continue  # a local or an argument
        elif root in frame.f_globals and not root.isupper():  # CAPITALS: a constant (PEP 8)
            kind, value = "global", frame.f_globals[root]
        else:
            continue
        for attribute in attributes:
            if isinstance(value, types.ModuleType):
                break
            value = inspect.getattr_static(value, attribute, _MISSING)
        if value is not _MISSING and not isinstance(value, types.ModuleType):
            found.append((chain, kind, value))
    return found


def _same(value: Any, captured: Any) -> bool:
    """Whether `value` (read from a name) is what the graph captured: the number itself, or
    an array (a list, an eager tensor) with a constant's values."""
    if not isinstance(captured, np.ndarray):
        return type(value) is type(captured) and value == captured
    if isinstance(value, (Parameter, Symbol)):  # a variable, or a node: nothing is frozen
        return False
    if isinstance(value, ArrayMethods):
        value = value.numpy()
    elif not isinstance(value, (np.ndarray, np.generic, list, tuple)):
        return False
    try:
        array = np.asarray(value, dtype=captured.dtype)
    except (TypeError, ValueError):  # a list of other things
        return False
    return array.shape == captured.shape and np.array_equal(array, captured)


def _captured(name: str, kind: str, value: Any) -> str:
    if isinstance(value, (bool, int, float)):
        return (
            f"the {kind} {name} = {value!r} was read once, while tracing, and is baked into "
            f"the graph as a constant: assigning {name} later does not change the compiled "
            "function (eager code would read the new value). Fix: pass it as an argument (an "
            "array becomes an input), or keep it in an S.variable or nn.Parameter."
        )
    array = np.asarray(value.numpy() if isinstance(value, ArrayMethods) else value)
    return (
        f"the {kind} {name} ({array.dtype}{list(array.shape)}) was copied into the graph as a "
        f"constant while tracing: changing {name} later, even in place, does not reach the "
        "compiled function (eager code would read the new values). Fix: pass it as an "
        "argument, or keep it in an S.variable or nn.Parameter, whose storage every call reads."
    )


# ---- random states, containers, branches -------------------------------------------------

_GLOBAL_RANDOM = {  # name: (the calls that draw from it, to point at; how to read its state)
    "NumPy's global generator (np.random)": (("np.random.", "numpy.random."), np.random.get_state),
    "Python's random module": (("random.",), random.getstate),
    "diptych's default generator (common.random)": (
        (),
        lambda: common_random.default_generator().bit_generator.state,
    ),
}


def _random_sources(target: Target) -> dict[str, tuple[tuple[str, ...], Callable[[], Any]]]:
    """The random states a trace may draw from: the global ones, and the generators the
    function names; each with the calls that draw from it and a function reading its state."""
    sources = dict(_GLOBAL_RANDOM)
    for name, value in target.outside.items():
        if isinstance(value, np.random.Generator):
            read = functools.partial(getattr, value.bit_generator, "state")
        elif isinstance(value, (np.random.RandomState, random.Random)):
            read = getattr(value, "get_state", None) or value.getstate
        else:
            continue
        sources[f"the generator {name}"] = ((f"{name}.",), read)
    return sources


def _same_state(a: Any, b: Any) -> bool:
    """Equality of random states, which nest dicts, tuples and arrays."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(map(_same_state, a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _contents(box: Any) -> list:
    """A shallow snapshot of a list, dict or set: its items (a dict's keys, then values)."""
    return [*box.keys(), *box.values()] if isinstance(box, dict) else list(box)


def _calls(node: ast.AST, prefixes: tuple[str, ...]) -> bool:
    """Whether `node` calls something whose dotted name starts with one of `prefixes`."""
    return isinstance(node, ast.Call) and (_chain(node.func) or "").startswith(prefixes)


def _mutates(node: ast.AST, name: str) -> bool:
    """Whether `node` changes the container called `name` (`name.append(...)`, `name[k] = v`)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in MUTATORS and _chain(node.func.value) == name
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
        return _chain(node.value) == name
    return False


# ---- print ------------------------------------------------------------------------------

_print = builtins.print


@functools.wraps(_print)
def _print_watched(*args: Any, **kwargs: Any) -> None:
    """print, which tells the trace running in this thread (if any) that it was called."""
    lint = _active.get()
    if lint is not None:
        lint.printed(sys._getframe(1))
    _print(*args, **kwargs)


def _watch_print() -> None:
    """Put `_print_watched` in the place of print (once): print is looked up in builtins,
    so no other way sees every call; it costs one context-variable read per print."""
    if builtins.print is _print:
        builtins.print = _print_watched
