"""`Symbol`: a value that does not exist yet. Applying an op to symbols adds a node to the
graph at once, with its shape and dtype inferred on the spot, so a shape error surfaces at
the user's line, not when the graph runs.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from common.methods import ArrayMethods
from common.nn.parameter import Parameter
from common.ops.core import Aval, OpError, aval_of, result_dtype, user_line
from symbolic.graph import Node

DEFERRED = (
    "{what} a symbol: a symbol has no value until the graph runs (deferred execution), so "
    "Python cannot branch, loop or convert on it now. Fix: use F.where(cond, a, b) or "
    "F.cond(pred, true_fn, false_fn, *operands) to choose, F.while_loop or F.scan to loop, "
    "call the compiled graph to get numbers, or run the model eagerly."
)


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
            raise OpError("the rank of this symbol is unknown: its placeholder was made "
                          "without a shape. Fix: S.placeholder(shape=(...)).")
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
        raise TypeError(DEFERRED.format(what="reading the value of"))

    def __repr__(self) -> str:
        return f"<Symbol {self.node.label} = {self.node.op_name} : {self.node.type_str()}>"

    # ---- deferred: no value now ------------------------------------------------------------
    def __bool__(self) -> bool:
        raise TypeError(DEFERRED.format(what="bool() of (an `if` or `while` on)"))

    def __float__(self) -> float:
        raise TypeError(DEFERRED.format(what="float() of"))

    def __int__(self) -> int:
        raise TypeError(DEFERRED.format(what="int() of"))

    def __index__(self) -> int:
        raise TypeError(DEFERRED.format(what="using as an index"))

    def __len__(self) -> int:
        if self.node.shape and self.node.shape[0] is not None:
            return self.node.shape[0]
        raise TypeError(DEFERRED.format(what="len() of (or iterating over)"))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @staticmethod
    def _control(kind: str, *args: Any) -> Any:
        """F.cond / F.while_loop / F.scan on symbols become control-flow nodes."""
        from symbolic import control

        return getattr(control, kind)(*args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph that computes this symbol: placeholders are fed positionally in
        creation order, or by name."""
        from symbolic.compiler import compiled_for_symbol

        return compiled_for_symbol(self)(*args, **kwargs)


def infer_aval(op: Any, avals: list[Aval], params: dict) -> Aval:
    """The op's shape rule, or, with an input of unknown rank, only its dtype."""
    if all(a.weak or a.shape is not None or a.dtype == object for a in avals):  # tuples
        return op.abstract(*avals, **params)
    scalars = [Aval((), a.dtype, a.weak) for a in avals]
    try:
        dtype = op.abstract(*scalars, **params).dtype
    except OpError:
        dtype = result_dtype(*avals)
    return Aval(None, dtype)


# ---- sources: placeholders, variables, constants ----------------------------------------

def placeholder(shape: tuple | None = None, dtype: Any = "float32", name: str | None = None):
    """An input fed at each call. `shape=None`: any shape; a None dimension: any size."""
    node = Node("placeholder", (), {}, None if shape is None else tuple(shape), np.dtype(dtype),
                user_line())
    node.name = name or f"p{node.id}"
    return Symbol(node)


class Variable:
    """The storage behind `S.variable`: `.data` persists across calls and updates."""

    __slots__ = ("data", "name", "__weakref__")

    def __init__(self, data: Any, name: str) -> None:
        self.data, self.name = data, name

    def __repr__(self) -> str:
        return f"Variable({self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


def variable(value: Any, name: str | None = None, dtype: Any = None) -> Symbol:
    """Persistent state (weights): read by every call, changed only through `updates=`."""
    array = np.array(value, dtype=dtype)
    if dtype is None and array.dtype.kind == "f":
        array = array.astype(np.float32)
    return _variable_symbol(Variable(array, ""), name)


def _variable_symbol(storage: Any, name: str | None) -> Symbol:
    node = Node("variable", (), {}, tuple(storage.data.shape), storage.data.dtype, user_line(),
                value=storage)
    node.name = name or getattr(storage, "name", "") or f"v{node.id}"
    if not storage.name:
        storage.name = node.name
    return Symbol(node)


def constant(value: Any, dtype: Any = None) -> Symbol:
    """A value baked into the graph (Python floats become float32)."""
    array = np.array(value, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(np.float32)
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
