"""Writing ONNX from a diptych graph: the walk over the nodes, fresh names, typed constants
and casts. Each op's builder (symbolic/serialize/onnx/ops.py, control.py) turns one `Call` into ONNX
nodes through an `Emitter`; the emitter never knows an op by name.

    %5 = add(%3, 2.0) : f32[4]   ->   c = Constant(value=f32 2.0); add_1 = Add(mul_1, c)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from onnx import AttributeProto, helper, numpy_helper

from common.ops import OPS, Aval, OpDef, aval_of
from symbolic.graph import Graph, Node
from symbolic.symbol import at_line

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


class OnnxExportError(ValueError):
    """A graph, or one of its ops, that ONNX cannot express: names the op and the user's line."""


class Arg(NamedTuple):
    """One argument of a call: an ONNX value's name, or None for a Python literal (weak)."""

    name: str | None
    aval: Aval
    value: Any = None  # the literal, or a constant node's array: known while exporting


class Call(NamedTuple):
    """One op application to write: a graph node, or one step of a fused group."""

    op: OpDef
    args: tuple[Arg, ...]
    params: dict
    aval: Aval  # the result's shape and dtype
    source: str  # the user's line that made it


Builder = Callable[["Emitter", Call], Any]  # -> the output's name, or a list of names


def onnx_type(dtype: Any) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def value_info(name: str, shape: tuple | None, dtype: Any, dim_prefix: str = "") -> Any:
    """A typed value; a None dimension is named `{dim_prefix}_dim{i}` (a symbolic size) when a
    prefix is given, else left unknown."""
    dims = None
    if shape is not None:
        dims = [
            d if d is not None or not dim_prefix else f"{dim_prefix}_dim{i}"
            for i, d in enumerate(shape)
        ]
    return helper.make_tensor_value_info(name, onnx_type(dtype), dims)


def names_read(graph: Any) -> set[str]:
    """Every name that a node of an ONNX graph (or of its bodies) reads, and its outputs."""
    names = {o.name for o in graph.output}
    for proto in graph.node:
        names.update(proto.input)
        for attribute in proto.attribute:
            if attribute.type == AttributeProto.GRAPH:
                names |= names_read(attribute.g)
    return names


def unsupported(call: Call, reason: str) -> OnnxExportError:
    return OnnxExportError(at_line(f"cannot export {call.op.name} to ONNX: {reason}", call.source))


class Emitter:
    """Builds one model: the nodes of the graph being written (a stack: bodies of `If`,
    `Loop` and `Scan` push their own), the initializers, and names unique in the whole
    model (ONNX forbids a body to reuse an outer name)."""

    def __init__(self, opset: int, builders: Mapping[str, Builder], reasons: Mapping[str, str]):
        self.opset = opset
        self.builders = builders
        self.reasons = reasons  # op name -> why it has no ONNX form
        self.initializers: list = []
        self._scopes: list[list] = [[]]
        self._taken: set[str] = set()
        self._stored: dict[int, str] = {}  # variable or constant node id -> its initializer
        self.source = ""  # the user's line of the call being written: each node's doc_string

    @property
    def nodes(self) -> list:
        """The main graph's nodes written so far."""
        return self._scopes[0]

    # ---- names, nodes, constants ---------------------------------------------------------

    def fresh(self, hint: str) -> str:
        base = re.sub(r"[^0-9A-Za-z_.]", "_", hint) or "value"
        name, k = base, 0
        while name in self._taken:
            k += 1
            name = f"{base}_{k}"
        self._taken.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs: Any):
        """Append an ONNX node making `outputs` fresh values (or the values named); its output's
        name, or a list of names when there are several or they were named."""
        hint = op_type.lower()
        names = outputs if isinstance(outputs, list) else [self.fresh(hint) for _ in range(outputs)]
        made = helper.make_node(
            op_type, inputs, names, name=self.fresh(op_type), doc_string=self.source, **attrs
        )
        self._scopes[-1].append(made)
        return names[0] if outputs == 1 else names

    def constant(self, value: Any, dtype: Any) -> str:
        array = np.asarray(value, dtype=np.dtype(dtype))
        return self.node("Constant", [], value=numpy_helper.from_array(array, self.fresh("c")))

    def ints(self, values: Any) -> str:
        """An int64 constant: shapes, axes, pads, positions."""
        return self.constant(values, np.int64)

    def cast(self, name: str, have: Any, want: Any) -> str:
        if np.dtype(have) == np.dtype(want):
            return name
        return self.node("Cast", [name], to=onnx_type(want))

    def operand(self, arg: Arg, dtype: Any) -> str:
        """`arg` as a value of `dtype`: a literal becomes a constant of that dtype (a weak
        Python number takes its operand's dtype, docs/dtypes.md), a value is cast if needed."""
        if arg.name is None:
            return self.constant(arg.value, dtype)
        return self.cast(arg.name, arg.aval.dtype, dtype)

    def stored(self, node: Node) -> str:
        """The initializer holding a variable's current value or a constant (made once)."""
        if node.id not in self._stored:
            value = node.value.data if node.op == "variable" else node.value
            array = value.get() if hasattr(value, "get") else np.asarray(value)  # cupy: to host
            name = self.fresh(node.name or "constant")
            self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
            self._stored[node.id] = name
        return self._stored[node.id]

    # ---- bodies --------------------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self):
        """Nodes appended inside go to a new graph (a body), yielded as a list."""
        self._scopes.append([])
        try:
            yield self._scopes[-1]
        finally:
            self._scopes.pop()

    def body(self, graph: Graph, bound: dict[int, str], inputs: list, name: str) -> Any:
        """`graph` as an ONNX body whose own typed inputs are `inputs`. `bound` names the
        graph's inputs: the body's own ones, or outer values it reads by name. Its outputs
        are fresh copies (a body may return an outer value unchanged)."""
        with self.scope() as nodes:
            outputs = [self.node("Identity", [o]) for o in self.write(graph, bound)]
        infos = [value_info(o, n.shape, n.dtype) for o, n in zip(outputs, graph.outputs)]
        return helper.make_graph(nodes, self.fresh(name), inputs, infos)

    # ---- the walk ------------------------------------------------------------------------

    def write(self, graph: Graph, bound: dict[int, str]) -> list[str]:
        """Write the graph's nodes into the current scope; the names of its outputs."""
        names: dict[int, Any] = dict(bound)
        for node in graph.nodes:
            if node.id in names:
                continue
            if node.op in ("variable", "constant"):
                names[node.id] = self.stored(node)
            elif node.is_source:
                raise OnnxExportError(at_line(f"placeholder {node.name!r} is not fed", node.source))
            elif node.op.name == "item":  # a part of a control node's outputs
                names[node.id] = names[node.inputs[0].id][node.params["index"]]
            else:
                names[node.id] = self._write_node(node, names)
        return [names[n.id] for n in graph.outputs]

    def _write_node(self, node: Node, names: dict) -> Any:
        args = tuple(_arg(a, names) for a in node.inputs)
        program = getattr(node.op.kernel, "program", None)
        if program is not None:  # a fused group: its member ops, one after another
            return self._write_program(program, args, node.source)
        return self.call(Call(node.op, args, node.params, node.aval, node.source))

    def _write_program(self, program: Any, inputs: tuple, source: str) -> str:
        shape, results = tuple(program.shape), []

        def arg(kind: str, v: Any) -> Arg:  # a step reads an input, a temporary or a literal
            if kind == "in":
                return inputs[v]
            if kind == "t":
                return Arg(results[v], Aval(shape, np.dtype(program.steps[v].dtype)))
            return Arg(None, aval_of(v), v)

        for step in program.steps:
            args = tuple(arg(kind, v) for kind, v in step.args)
            aval = Aval(shape, np.dtype(step.dtype))
            results.append(self.call(Call(OPS[step.op], args, dict(step.params), aval, source)))
        return results[-1]

    def call(self, call: Call) -> Any:
        builder = self.builders.get(call.op.name)
        if builder is None:
            reason = self.reasons.get(
                call.op.name,
                "it is not one of diptych's own ops, and the exporter knows only those "
                "(the table in symbolic/serialize/onnx/ops.py)",
            )
            raise unsupported(call, f"it has no ONNX form: {reason}")
        self.source = call.source
        return builder(self, call)


def _arg(value: Any, names: dict) -> Arg:
    if not isinstance(value, Node):
        return Arg(None, aval_of(value), value)
    known = value.value if value.op == "constant" else None
    return Arg(names[value.id], value.aval, known)
