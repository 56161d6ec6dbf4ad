"""`Symbol`: a value that does not exist yet. Applying an op to symbols adds a node to the
graph at once, with its shape and dtype inferred on the spot, so a shape error surfaces at
the user's line, not when the graph runs.
"""

from __future__ import annotations

import ast
import itertools
import linecache
import sys
import textwrap
import weakref
from typing import Any

import numpy as np

from common.methods import ArrayMethods
from common.nn.parameter import Parameter
from common.ops.core import _FRAMEWORK_DIRS, Aval, OpError, aval_of, user_line
from symbolic.graph import Node, infer_aval

DEFERRED = (
    "{what} a symbol: a symbol has no value until the graph runs (deferred execution), so "
    "Python cannot branch, loop or convert on it now. Fix: use F.where(cond, a, b) or "
    "F.cond(pred, true_fn, false_fn, *operands) to choose, F.while_loop or F.scan to loop, "
    "call the compiled graph to get numbers, or run the model eagerly."
)


def deferred(what: str) -> TypeError:
    """The error for asking a symbol for a value now, naming the user's line that asked
    (the `if`, the `float(...)`), where the traceback's last line is inside diptych."""
    where = user_line()
    return TypeError(DEFERRED.format(what=what) + (f"\n  at {where}" if where else ""))


def at_line(message: str, source: str) -> str:
    return f"{message}\n  (the node was built at {source})" if source else message


class Symbol(ArrayMethods):
    """A node of a graph under construction, with the operators and methods of a tensor.

    >>> a = placeholder(); b = placeholder()
    >>> c = (a**2 + b**2) ** 0.5
    >>> c(3, 4)
    5.0
    """

    __slots__ = ("node", "__weakref__")
    _priority = 3  # outranks eager tensors and parameters

    def __init__(self, node: Node) -> None:
        self.node = node

    @staticmethod
    def _apply(op: Any, args: tuple, params: dict) -> Symbol:
        """The symbolic interpretation of an op: add a node, inferring its type now."""
        source = user_line()
        inputs = tuple(as_node(a) for a in args)
        avals = [a.aval if isinstance(a, Node) else aval_of(a) for a in inputs]
        aval = infer_aval(op, avals, params)  # an OpError names the user's line itself
        return Symbol(Node(op, inputs, params, aval.shape, aval.dtype, source))

    # ---- facts known before running ------------------------------------------------------
    @property
    def shape(self) -> tuple | None:
        return self.node.shape

    @property
    def dtype(self) -> np.dtype:
        return self.node.dtype

    @property
    def aval(self) -> Aval:
        return self.node.aval

    @property
    def ndim(self) -> int:
        if self.node.shape is None:
            raise OpError(
                "the rank of this symbol is unknown: its placeholder was made "
                "without a shape. Fix: S.placeholder(shape=(...))."
            )
        return len(self.node.shape)

    @property
    def name(self) -> str:
        return self.node.name or self.node.label

    @property
    def value(self) -> Any:
        """The current array of a variable or constant (other symbols have none yet)."""
        if self.node.op == "variable":
            return self.node.value.data
        if self.node.op == "constant":
            return self.node.value
        raise deferred("reading the value of")

    def __repr__(self) -> str:
        return f"<Symbol {self.node.label} = {self.node.op_name} : {self.node.type_str()}>"

    # ---- deferred: no value now ------------------------------------------------------------
    def __bool__(self) -> bool:
        raise deferred("bool() of (an `if` or `while` on)")

    def __float__(self) -> float:
        raise deferred("float() of")

    def __int__(self) -> int:
        raise deferred("int() of")

    def __index__(self) -> int:
        raise deferred("using as an index")

    def __len__(self) -> int:
        if self.node.shape and self.node.shape[0] is not None:
            return self.node.shape[0]
        raise deferred("len() of (or iterating over)")

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @staticmethod
    def _control(kind: str, *args: Any) -> Any:
        """F.cond / F.while_loop / F.scan on symbols become control-flow nodes."""
        return LATER_LAYERS[kind](*args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph that computes this symbol: placeholders are fed positionally in
        creation order, or by name."""
        return LATER_LAYERS["compiled"](self)(*args, **kwargs)


# Control flow and the compiler are built on symbols, so this module cannot import them (a
# cycle); `symbolic/__init__.py` hands their entry points down: cond, while_loop, scan, and
# "compiled" (a symbol's cached plan).
LATER_LAYERS: dict[str, Any] = {}


# ---- sources: placeholders, variables, constants ----------------------------------------


def placeholder(shape: tuple | None = None, dtype: Any = "float32", name: str | None = None):
    """An input fed at each call. `shape=None`: any shape; a None dimension: any size.

    Its name, for feeding by keyword (`c(a=3, b=4)`): `name`, else the variable the caller's
    line assigns it to (`a = S.placeholder()` is named 'a'), else 'p<id>'."""
    node = Node(
        "placeholder", (), {}, None if shape is None else tuple(shape), np.dtype(dtype), user_line()
    )
    node.name = name or _assigned_name(sys._getframe(1)) or f"p{_line_number(node)}"
    return Symbol(node)


def _line_number(node: Node) -> str:
    """The line number in the node's source ("model.py:12: ..." -> "12"), or ""."""
    parts = node.source.split(":", 2)
    return parts[1] if len(parts) > 1 and parts[1].isdigit() else ""


def _assigned_name(frame: Any) -> str | None:
    """The variable that the statement running in `frame` assigns its current call to:
    `a` for `a = S.placeholder()`, and for each of `x, t = S.placeholder(), S.placeholder()`
    its own. None when the call is not a whole right-hand side (`a = S.placeholder() * 2`),
    the target is not a plain name, the source cannot be read, or the caller is diptych's
    own code (a name from the user's line would then belong to something else)."""
    code = frame.f_code
    if code.co_filename.startswith(_FRAMEWORK_DIRS) or not hasattr(code, "co_positions"):
        return None
    positions = itertools.islice(code.co_positions(), frame.f_lasti // 2, None)
    start, end, col, end_col = next(positions)  # of the call being made
    if start is None or end is None or col is None or end_col is None:
        return None
    lines = [linecache.getline(code.co_filename, n) for n in range(start, end + 1)]
    text = textwrap.dedent("".join(lines))
    indent = len(lines[0]) - len(text.splitlines(True)[0]) if text else 0  # what dedent took
    try:
        tree = ast.parse(text)
    except SyntaxError:  # the statement began on an earlier line, or goes on after `end`
        return None
    span = (1, col - indent, end - start + 1, end_col - indent)
    for target, value in _assignments(tree):
        if (value.lineno, value.col_offset, value.end_lineno, value.end_col_offset) == span:
            return target.id
    return None


def _assignments(tree: ast.AST) -> list:
    """(name, value) pairs of `name = value` and `n1, n2 = v1, v2` statements in `tree`."""
    pairs = []
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if (
            isinstance(target, ast.Tuple)
            and isinstance(value, ast.Tuple)
            and len(target.elts) == len(value.elts)
        ):
            pairs.extend(zip(target.elts, value.elts))
        else:
            pairs.append((target, value))
    return [(t, v) for t, v in pairs if isinstance(t, ast.Name)]


class Variable:
    """The storage behind `S.variable`: `.data` persists across calls and updates."""

    __slots__ = ("data", "name", "__weakref__")

    def __init__(self, data: Any, name: str) -> None:
        self.data, self.name = data, name

    def __repr__(self) -> str:
        return f"Variable({self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


def variable(value: Any, name: str | None = None, dtype: Any = None) -> Symbol:
    """Persistent state (weights): read by every call, changed only through `updates=`.
    Its dtype follows `docs/dtypes.md`: a numpy array keeps its own, Python floats give
    float32."""
    return _variable_symbol(Variable(_array(value, dtype), ""), name)


def _array(value: Any, dtype: Any) -> np.ndarray:
    """A copy of `value` with the dtype both engines give it (`docs/dtypes.md`): `dtype` if
    given; else the value's own if it has one (numpy arrays and scalars, tensors); else
    numpy's, with float64 made the default float32 (Python floats and lists of them)."""
    array = np.array(value, dtype=dtype)
    if dtype is None and not hasattr(value, "dtype") and array.dtype == np.float64:
        array = array.astype(np.float32)
    return array


def _variable_symbol(storage: Any, name: str | None) -> Symbol:
    node = Node(
        "variable",
        (),
        {},
        tuple(storage.data.shape),
        storage.data.dtype,
        user_line(),
        value=storage,
    )
    node.name = name or getattr(storage, "name", "") or f"v{_line_number(node)}"
    if not storage.name:
        storage.name = node.name
    return Symbol(node)


def constant(value: Any, dtype: Any = None) -> Symbol:
    """A value baked into the graph (dtype as `S.variable`'s: Python floats become float32)."""
    array = _array(value, dtype)
    array.flags.writeable = False  # a constant is shared by every call: nobody may write it
    node = Node("constant", (), {}, array.shape, array.dtype, user_line(), value=array)
    return Symbol(node)


_bound: dict[int, Node] = {}  # id(parameter) -> its variable node, while the parameter lives


def bind(storage: Any) -> Symbol:
    """The variable bound to a `common.nn` Parameter (one per parameter, made on first use).
    Keyed by identity: a parameter's == is elementwise."""
    node = _bound.get(id(storage))
    if node is None or node.value is not storage or node.name != storage.name:
        node = _variable_symbol(storage, getattr(storage, "name", None)).node
        _bound[id(storage)] = node
        weakref.finalize(storage, _bound.pop, id(storage), None)
    return Symbol(node)


def as_node(value: Any) -> Node | Any:
    """An op argument as a graph input: symbols give their node, parameters their bound
    variable, arrays and tensors a constant; Python numbers stay literals (weak)."""
    if isinstance(value, Symbol):
        return value.node
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Parameter):
        return bind(value).node
    if isinstance(value, ArrayMethods):  # an eager tensor: its current value is baked in
        return constant(value.numpy()).node
    return constant(value).node


def as_symbol(value: Any) -> Symbol:
    node = as_node(value)
    return Symbol(node) if isinstance(node, Node) else constant(node)
