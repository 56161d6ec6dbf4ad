"""Loading: a `.dip` file back into a compiled function. Every field is checked before the
node it describes is built (ops by registered name, params from tagged JSON, each node's
shape and dtype against its op's shape rule, sizes against a cap), then the graph is
compiled with the passes it was saved with. Nothing in the file is run as code."""

from __future__ import annotations

import keyword
import math
from typing import Any, NoReturn

import numpy as np

from common.backend import DEVICES, DeviceError, get_backend
from common.ops import OPS
from common.ops.core import aval_of
from symbolic.compiler import CompiledFunction, compile
from symbolic.control import Body
from symbolic.graph import SOURCES, Graph, Node, infer_aval, recording
from symbolic.passes import PIPELINES, pass_names
from symbolic.serialize import values
from symbolic.serialize.format import (
    MAX_NODE_BYTES,
    NODE_DTYPES,
    check_shape,
    fail,
    one_of,
    read_file,
    type_text,
)
from symbolic.symbol import Symbol, Variable

DOCUMENT_FIELDS = {"nodes", "inputs", "outputs", "updates", "tensors", "options"}
OPTION_FIELDS = {"optimize", "disable", "device", "single_output"}
SOURCE_FIELDS = {"op", "dtype", "shape", "name", "source"}  # variables, constants: a tensor too
OP_FIELDS = SOURCE_FIELDS | {"inputs", "params", "backward", "provenance"}


def load(
    path: Any, device: str | None = None, max_node_bytes: int = MAX_NODE_BYTES
) -> CompiledFunction:
    """The function saved at `path`, compiled again (on `device`, default: the saved one).
    Its variables are new storages holding the saved weights. A file this diptych cannot
    trust raises `LoadError`, naming the file and the field, before anything large is made;
    a node declared larger than `max_node_bytes` counts as such."""
    document, arrays = read_file(path)
    reader = _Reader(path, arrays, max_node_bytes)
    if set(document) != DOCUMENT_FIELDS:
        reader.fail(
            "graph",
            f"the fields {sorted(DOCUMENT_FIELDS)} are wanted, found {sorted(document)[:8]}",
        )
    with recording(False):  # loading inside a traced function adds nothing to its graph
        for i, entry in enumerate(reader.list(document["nodes"], "nodes")):
            reader.nodes.append(reader.node(entry, f"nodes[{i}]"))
    inputs = reader.refs(document["inputs"], "inputs", "placeholder")
    outputs = reader.refs(document["outputs"], "outputs")
    updates = [
        reader.update(pair, f"updates[{k}]")
        for k, pair in enumerate(reader.list(document["updates"], "updates"))
    ]
    optimize, disable, saved_device, single = reader.options(document["options"], len(outputs))
    try:
        backend = get_backend(device or saved_device)
    except DeviceError as exc:
        reader.fail("options.device", f"{exc} Fix: S.load(path, device='cpu')")
    try:
        return compile(
            Symbol(outputs[0]) if single else [Symbol(n) for n in outputs],
            inputs=[Symbol(n) for n in inputs],
            updates=[(Symbol(v), Symbol(n)) for v, n in updates],
            optimize=optimize,
            disable=disable,
            backend=backend.name,
        )
    except Exception as exc:  # noqa: BLE001 (whatever the graph did wrong, the file is at fault)
        reader.fail("graph", f"the graph does not compile: {exc}")


class _Reader:
    """Builds nodes from checked entries, in file order (each after what it uses)."""

    def __init__(self, path: Any, arrays: dict[str, np.ndarray], max_node_bytes: int) -> None:
        self.path = path
        self.arrays = arrays
        self.max_node_bytes = max_node_bytes
        self.nodes: list[Node] = []
        self._storages: dict[str, Variable] = {}  # tensor name -> the one storage made for it

    def fail(self, field: str, problem: str) -> NoReturn:
        fail(self.path, field, problem)

    def list(self, data: Any, field: str) -> list:
        if type(data) is not list:
            self.fail(field, f"a list is wanted, not {type(data).__name__}")
        return data

    def text(self, entry: dict, key: str, field: str) -> str:
        value = entry.get(key, "")
        if type(value) is not str:
            self.fail(f"{field}.{key}", f"a string is wanted, not {type(value).__name__}")
        return value

    def ref(self, data: Any, field: str, op: str | None = None) -> Node:
        """The node an index names: one already built (a file cannot make a cycle)."""
        if type(data) is not int or not 0 <= data < len(self.nodes):
            self.fail(field, f"{str(data)[:20]} is not the index of an earlier node")
        node = self.nodes[data]
        if op is not None and node.op != op:
            self.fail(field, f"node {data} is a {node.op_name}, not a {op}")
        return node

    def refs(self, data: Any, field: str, op: str | None = None) -> list[Node]:
        return [self.ref(r, f"{field}[{k}]", op) for k, r in enumerate(self.list(data, field))]

    def update(self, pair: Any, field: str) -> tuple[Node, Node]:
        if type(pair) is not list or len(pair) != 2:
            self.fail(field, "a pair [variable, new value] is wanted")
        return self.ref(pair[0], f"{field}[0]", "variable"), self.ref(pair[1], f"{field}[1]")

    def options(self, data: Any, n_outputs: int) -> tuple[int, list, str, bool]:
        if type(data) is not dict or set(data) != OPTION_FIELDS:
            self.fail("options", f"an object with exactly {sorted(OPTION_FIELDS)} is wanted")
        optimize, disable = data["optimize"], data["disable"]
        if type(optimize) is not int or optimize not in PIPELINES:
            self.fail("options.optimize", f"{str(optimize)[:20]} is not one of {sorted(PIPELINES)}")
        if type(disable) is not list or not all(name in pass_names() for name in disable):
            self.fail("options.disable", f"a list of pass names ({pass_names()}) is wanted")
        if data["device"] not in DEVICES:
            self.fail("options.device", f"{str(data['device'])[:20]} is not one of {DEVICES}")
        single = data["single_output"]
        if type(single) is not bool or (single and n_outputs != 1) or not n_outputs:
            self.fail("options.single_output", f"does not fit {n_outputs} outputs")
        return optimize, disable, data["device"], single

    def node(self, entry: Any, field: str) -> Node:
        if type(entry) is not dict:
            self.fail(field, f"a node is an object, not {type(entry).__name__}")
        op_name = entry.get("op")
        is_source = op_name in SOURCES
        if not is_source and not one_of(op_name, OPS):
            self.fail(
                f"{field}.op",
                f"unknown op {str(op_name)[:40]!r}: this diptych registers "
                "no op of that name. Fix: load it with the diptych that saved it",
            )
        allowed = (
            OP_FIELDS
            if not is_source
            else SOURCE_FIELDS | ({"tensor"} if op_name != "placeholder" else set())
        )
        if not set(entry) <= allowed:
            self.fail(field, f"a {op_name} node has no field {sorted(set(entry) - allowed)[0]!r}")
        dtype, shape = self.aval(entry, field)
        name, source = self.text(entry, "name", field), self.text(entry, "source", field)
        if is_source:
            value = None if op_name == "placeholder" else self.tensor(entry, field, dtype, shape)
            return Node(op_name, (), {}, shape, dtype, source, name, value, backward=False)
        return self.op_node(OPS[op_name], entry, field, (shape, dtype, source, name))

    def aval(self, entry: dict, field: str) -> tuple[np.dtype, tuple | None]:
        """The declared dtype and shape, refused when the value would be too large."""
        if not one_of(entry.get("dtype"), NODE_DTYPES):
            self.fail(f"{field}.dtype", f"{str(entry.get('dtype'))[:20]!r} is not a dtype")
        dtype = np.dtype(entry["dtype"])
        if entry.get("shape") is None:
            return dtype, None
        shape = tuple(check_shape(self.path, f"{field}.shape", entry["shape"]))
        nbytes = math.prod(d for d in shape if d is not None) * dtype.itemsize
        if nbytes > self.max_node_bytes:
            self.fail(
                f"{field}.shape",
                f"{shape} declares {nbytes:,} bytes, above the limit of "
                f"{self.max_node_bytes:,} (S.load's max_node_bytes)",
            )
        return dtype, shape

    def tensor(self, entry: dict, field: str, dtype: np.dtype, shape: tuple | None) -> Any:
        """A constant's array (read-only), or a variable's storage (one per tensor)."""
        name = entry.get("tensor")
        if type(name) is not str or name not in self.arrays:
            self.fail(f"{field}.tensor", f"{str(name)[:40]!r} is not in the tensor table")
        array = self.arrays[name]
        if array.dtype != dtype or array.shape != shape:
            self.fail(
                f"{field}.shape",
                f"the node declares {type_text(dtype, shape)}, its "
                f"tensor {name!r} holds {type_text(array.dtype, array.shape)}",
            )
        if entry["op"] == "constant":
            view = array.view()
            view.flags.writeable = False  # a constant is shared by every call
            return view
        if name not in self._storages:
            self._storages[name] = Variable(array, self.text(entry, "name", field))
        return self._storages[name]

    def op_node(self, op: Any, entry: dict, field: str, declared: tuple) -> Node:
        shape, dtype, source, name = declared
        inputs = tuple(
            self.input(a, f"{field}.inputs[{k}]")
            for k, a in enumerate(self.list(entry.get("inputs", []), f"{field}.inputs"))
        )
        params = self.params(entry.get("params", {}), f"{field}.params")
        backward, provenance = entry.get("backward", False), entry.get("provenance", [])
        if type(backward) is not bool:
            self.fail(f"{field}.backward", "true or false is wanted")
        if type(provenance) is not list or not all(type(p) is str for p in provenance):
            self.fail(f"{field}.provenance", "a list of source lines is wanted")
        avals = [a.aval if isinstance(a, Node) else aval_of(a) for a in inputs]
        try:
            aval = infer_aval(op, avals, params)
            agrees = aval.shape == shape and np.dtype(aval.dtype) == dtype
        except Exception as exc:  # noqa: BLE001 (a shape rule refusing bad params or inputs)
            self.fail(field, f"{op.name}'s shape rule refuses the node: {exc}")
        if not agrees:
            self.fail(
                field,
                f"{op.name} gives {type_text(aval.dtype, aval.shape)} here, the "
                f"file declares {type_text(dtype, shape)}",
            )
        return Node(
            op,
            inputs,
            params,
            shape,
            dtype,
            source,
            name,
            provenance=tuple(provenance),
            backward=backward,
        )

    def input(self, data: Any, field: str) -> Any:
        """A node index, or a literal number: {"literal": 2.0}."""
        if type(data) is not dict:
            return self.ref(data, field)
        if set(data) != {"literal"}:
            self.fail(field, "a node index or {'literal': number} is wanted")
        value = values.decode(data["literal"], f"{field}.literal", self.fail, self.body)
        if type(value) not in (bool, int, float) and not isinstance(value, np.generic):
            self.fail(f"{field}.literal", f"{str(value)[:40]} is not a number")
        return value

    def params(self, data: Any, field: str) -> dict:
        if type(data) is not dict:
            self.fail(field, f"an object is wanted, not {type(data).__name__}")
        for key in data:  # the plan spells param names as keywords: identifiers only
            if not (key.isascii() and key.isidentifier()) or keyword.iskeyword(key):
                self.fail(field, f"{key[:40]!r} is not a parameter name")
        return {k: values.decode(v, f"{field}.{k}", self.fail, self.body) for k, v in data.items()}

    def body(self, data: Any, field: str) -> Body:
        """A control-flow body: its inputs and outputs, nodes built earlier."""
        if type(data) is not dict or set(data) != {"inputs", "outputs"}:
            self.fail(field, "a body is an object with exactly inputs and outputs")
        inputs = self.refs(data["inputs"], f"{field}.inputs")
        outputs = self.refs(data["outputs"], f"{field}.outputs")
        return Body(Graph(inputs, outputs), structure=None)
