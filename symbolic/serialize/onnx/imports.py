"""`import_onnx`: an ONNX model as a diptych compiled function.

The walk (`apply_onnx`) applies each node's `F` ops to whatever values it is given: fed
placeholders it builds a graph, which `import_onnx` compiles; fed eager tensors it
computes at once. One reading of the file serves both engines, as one model does.

    g = import_onnx("model.onnx"); g(x)                   # compiled
    apply_onnx(onnx.load("model.onnx"), [E.tensor(x)])    # eagerly, op by op
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from common import functional as F
from symbolic.compiler import CompiledFunction, compile
from symbolic.serialize.onnx.emitter import names_read
from symbolic.serialize.onnx.readers import READERS, OnnxImportError
from symbolic.symbol import placeholder, variable


class Scope:
    """Values by ONNX name: this graph's, then the enclosing graphs' (a body reads outer
    values by name). An initializer becomes a value through `weight` when first read."""

    def __init__(
        self, outer: Scope | None, weight: Callable | None = None, used: set | None = None
    ) -> None:
        self.outer = outer
        self.weight = weight or outer.weight
        self.used = used if outer is None else outer.used  # every name some node reads
        self.values: dict[str, Any] = {}
        self.initializers: dict[str, np.ndarray] = {}

    def _owner(self, name: str) -> Scope | None:
        scope = self
        while scope is not None and name not in scope.values and name not in scope.initializers:
            scope = scope.outer
        return scope

    def value(self, name: str) -> Any:
        scope = self._owner(name)
        if scope is None:
            raise OnnxImportError(f"value {name!r} is read before any node makes it")
        if name not in scope.values:
            scope.values[name] = scope.weight(name, scope.initializers[name])
        return scope.values[name]

    def known_value(self, name: str) -> np.ndarray | None:
        """The array of `name` if it is known while reading: an initializer, or what nodes
        made from known arrays alone (Constants, shapes)."""
        scope = self._owner(name)
        if scope is None:
            return None
        if name in scope.initializers:
            return scope.initializers[name]
        value = scope.values[name]
        return value if isinstance(value, np.ndarray) else None


class ReadNode:
    """What a reader sees of one node: its inputs as values or known arrays, attributes."""

    def __init__(self, proto: Any, scope: Scope, opset: int) -> None:
        self.proto, self.scope, self.opset = proto, scope, opset

    def error(self, why: str) -> OnnxImportError:
        return OnnxImportError(
            f"cannot import node {self.proto.name!r} ({self.proto.op_type}): {why}"
        )

    def has(self, i: int) -> bool:
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def input(self, i: int) -> Any:
        return self.scope.value(self.proto.input[i]) if self.has(i) else None

    def inputs(self) -> list:
        return [self.input(i) for i in range(len(self.proto.input)) if self.has(i)]

    def is_const(self, i: int) -> bool:
        return self.has(i) and self.scope.known_value(self.proto.input[i]) is not None

    def const(self, i: int) -> np.ndarray:
        known = self.scope.known_value(self.proto.input[i]) if self.has(i) else None
        if known is None:
            raise self.error(
                f"input {i} ({self.proto.input[i]!r}) must be known while reading "
                "(an initializer or a Constant): diptych's shapes are static"
            )
        return known

    def attr(self, name: str, default: Any = None) -> Any:
        for attribute in self.proto.attribute:
            if attribute.name == name:
                return helper.get_attribute_value(attribute)
        return default

    def run(self, name: str, args: list) -> list:
        """Run the body held in attribute `name` on `args` (its inputs, in order)."""
        body = self.attr(name)
        scope = Scope(self.scope)
        scope.values.update(zip((i.name for i in body.input), args))
        return run_graph(body, scope, self.opset)


# ---- control flow -----------------------------------------------------------------------


def _if(node: ReadNode) -> list:
    return list(
        F.cond(
            node.input(0),
            lambda: tuple(node.run("then_branch", [])),
            lambda: tuple(node.run("else_branch", [])),
        )
    )


def _scan(node: ReadNode) -> list:
    n_xs = node.attr("num_scan_inputs")
    for attribute in (
        "scan_input_axes",
        "scan_input_directions",
        "scan_output_axes",
        "scan_output_directions",
    ):
        if any(node.attr(attribute, [])):
            raise node.error(
                f"{attribute} other than 0 has no diptych form (F.scan runs forward over axis 0)"
            )
    values = node.inputs()
    init, xs = tuple(values[: len(values) - n_xs]), tuple(values[len(values) - n_xs :])

    def step(carry: tuple, x: tuple) -> tuple:
        outs = node.run("body", [*carry, *x])
        return tuple(outs[: len(carry)]), tuple(outs[len(carry) :]) or None

    final, ys = F.scan(step, init, xs)
    return [*final, *(ys or ())]


def _loop(node: ReadNode) -> list:
    """Loop(M, cond, *v) as a while_loop over (iteration, condition, *v); its scan outputs
    (stacked per-iteration values) have no while_loop form, so they must go unused."""
    n_carry = len(node.proto.input) - 2
    stacked = list(node.proto.output[n_carry:])
    if any(name in node.scope.used for name in stacked):
        raise node.error("a Loop's scan outputs are read; F.while_loop has no stacked outputs")
    limit = node.input(0)
    first = node.input(1) if node.has(1) else np.asarray(True)
    init = (np.asarray(0, np.int64), first, *(node.input(i) for i in range(2, 2 + n_carry)))

    def running(carry: tuple) -> Any:
        return carry[1] if limit is None else F.logical_and(carry[1], carry[0] < limit)

    def step(carry: tuple) -> tuple:
        outs = node.run("body", list(carry))
        return (carry[0] + 1, *outs[: 1 + n_carry])

    final = F.while_loop(running, step, init)
    return [*final[2:], *([None] * len(stacked))]


READERS_WITH_BODIES = {"If": _if, "Scan": _scan, "Loop": _loop}


# ---- the walk ---------------------------------------------------------------------------


def run_graph(graph: Any, scope: Scope, opset: int) -> list:
    """Read the graph's nodes in order into `scope`; the values of its outputs."""
    scope.initializers.update((t.name, numpy_helper.to_array(t)) for t in graph.initializer)
    for proto in graph.node:
        reader = READERS.get(proto.op_type) or READERS_WITH_BODIES.get(proto.op_type)
        if proto.domain not in ("", "ai.onnx") or reader is None:
            raise OnnxImportError(
                f"cannot import node {proto.name!r}: ONNX op {proto.op_type!r} has no reader "
                f"(symbolic/serialize/onnx/readers.py reads {', '.join(sorted(READERS))}, "
                "If, Loop, Scan)"
            )
        result = reader(ReadNode(proto, scope, opset))
        results = result if isinstance(result, list) else [result]
        scope.values.update(zip(proto.output, results))
    return [scope.value(o.name) for o in graph.output]


def _model(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        return onnx.load(os.fspath(source))
    if isinstance(source, bytes):
        return onnx.load_from_string(source)
    return source


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def feeds(model: Any) -> list:
    """The graph inputs a caller feeds (those that are not initializers)."""
    initialized = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initialized]


def apply_onnx(model: Any, inputs: list, weight: Callable = lambda name, array: array) -> list:
    """The model's outputs computed by `F` ops from `inputs` (one per graph input, in order):
    symbols build a graph, eager tensors compute now. Initializers become values through
    `weight(name, array)` (by default the numpy arrays themselves)."""
    model = _model(model)
    wanted = feeds(model)
    if len(inputs) != len(wanted):
        raise OnnxImportError(
            f"the model takes {len(wanted)} inputs ({', '.join(i.name for i in wanted)}), "
            f"got {len(inputs)}. Fix: pass one value per input, in this order."
        )
    scope = Scope(None, weight, used=names_read(model.graph))
    scope.values.update(zip((i.name for i in wanted), inputs))
    return run_graph(model.graph, scope, _opset(model))


def _placeholder(info: Any) -> Any:
    tensor = info.type.tensor_type
    shape = None
    if tensor.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return placeholder(shape, helper.tensor_dtype_to_np_dtype(tensor.elem_type), name=info.name)


def import_onnx(source: Any, optimize: int = 2) -> CompiledFunction:
    """An ONNX model (a path, bytes or a ModelProto) as a compiled function: its inputs are
    placeholders (a symbolic size is None), its initializers variables named as in the
    file, each node one or a few `F` ops. Raises `OnnxImportError` for a node it cannot read."""
    model = _model(source)
    onnx.checker.check_model(model)
    inputs = [_placeholder(info) for info in feeds(model)]
    outputs = apply_onnx(model, inputs, weight=lambda name, array: variable(array, name=name))
    return compile(outputs if len(outputs) > 1 else outputs[0], inputs=inputs, optimize=optimize)
