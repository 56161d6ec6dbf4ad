"""Saving: a compiled function's graph as it was traced, before any pass, with the options
its passes ran with, so `load` rebuilds the same plan (fused kernels included) from ops that
every diptych registers by name. Weights are saved as they are at the time of the call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.backend import backend_of
from common.ops import OPS
from symbolic.control import Body
from symbolic.graph import Graph, Node, nested_nodes
from symbolic.passes import PIPELINES
from symbolic.serialize import values
from symbolic.serialize.format import (
    TENSOR_DTYPES,
    SaveError,
    contiguous,
    tensor_entry,
    write_file,
)


def save(
    fn: Any,
    path: Any,
    optimize: int = 2,
    disable: tuple[str, ...] = (),
    device: str = "cpu",
) -> Path:
    """Write `fn`, a compiled function or a graph (`S.trace`'s), to `path` (a `.dip` file).
    A compiled function keeps its own pass options and device; a graph is saved with the
    ones given."""
    if isinstance(fn, Graph):
        graph, single = fn, len(fn.outputs) == 1
    else:  # a CompiledFunction (not imported: the compiler imports this module)
        graph, single = fn.traced_graph, fn._single
        optimize, disable = pass_options([s.stage for s in fn.report.stages[1:]])
        device = fn.backend.device
    live = Graph(graph.inputs, graph.outputs, graph.updates)  # what tracing left unused stays
    document, arrays = _Writer().document(live)
    document["options"] = {
        "optimize": optimize,
        "disable": list(disable),
        "device": device,
        "single_output": single,
    }
    return write_file(path, document, arrays)


def pass_options(ran: list[str]) -> tuple[int, list[str]]:
    """(optimize, disable) that run exactly the passes `ran`, in the lowest level that can."""
    for level, pipeline in sorted(PIPELINES.items()):
        names = [name for name, _ in pipeline]
        if set(ran) <= set(names):
            return level, [name for name in names if name not in ran]
    raise SaveError(f"no optimize level runs the passes {ran}")


class _Writer:
    """The node table (every node of the graph and of its bodies, in creation order, so each
    comes after what it uses) and the tensor table."""

    def __init__(self) -> None:
        self.index: dict[int, int] = {}  # node id -> its position in the table
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, dict] = {}
        self._named: dict[int, str] = {}  # id(storage or array) -> its tensor's name

    def document(self, graph: Graph) -> tuple[dict, dict[str, np.ndarray]]:
        unique = {n.id: n for n in nested_nodes(graph)}
        nodes = [self.node(unique[i]) for i in sorted(unique)]
        document = {
            "nodes": nodes,
            "inputs": self.refs(graph.inputs),
            "outputs": self.refs(graph.outputs),
            "updates": [self.refs(pair) for pair in graph.updates],
            "tensors": self.tensors,
        }
        return document, self.arrays

    def refs(self, nodes: Any) -> list[int]:
        return [self.index[n.id] for n in nodes]

    def node(self, node: Node) -> dict:
        where = f"node {node.op_name} ({node.source or 'no source line'})"
        entry: dict[str, Any] = {"op": node.op_name, "dtype": node.dtype.name}
        entry["shape"] = None if node.shape is None else list(node.shape)
        for field in ("name", "source"):
            if getattr(node, field):
                entry[field] = getattr(node, field)
        if node.op == "variable":
            entry["tensor"] = self.tensor("variables", node.value, node.value.data, node.name)
        elif node.op == "constant":
            entry["tensor"] = self.tensor(
                "constants", node.value, node.value, str(len(self.arrays))
            )
        elif not node.is_source:
            if OPS.get(node.op_name) is not node.op:
                raise SaveError(
                    f"{where}: {node.op_name!r} is not a registered op, so no other process "
                    "could rebuild it. Fix: save the graph before fusion (f.save does)."
                )
            entry["inputs"] = [
                self.index[a.id]
                if isinstance(a, Node)
                else {"literal": values.encode(a, where, self.body)}
                for a in node.inputs
            ]
            if node.params:
                entry["params"] = {
                    k: values.encode(v, f"{where}, param {k}", self.body)
                    for k, v in node.params.items()
                }
            if node.backward:
                entry["backward"] = True
            if node.provenance:
                entry["provenance"] = list(node.provenance)
        self.index[node.id] = len(self.index)
        return entry

    def body(self, body: Body) -> dict:
        return {"inputs": self.refs(body.graph.inputs), "outputs": self.refs(body.graph.outputs)}

    def tensor(self, kind: str, owner: Any, data: Any, label: str) -> str:
        """The name of `data`'s tensor, added once per storage (variables sharing one share
        it after loading too)."""
        name = self._named.get(id(owner))
        if name is None:
            array = contiguous(backend_of(data).to_host(data))
            if array.dtype.name not in TENSOR_DTYPES:
                raise SaveError(
                    f"{kind} {label!r}: a {array.dtype} array has no safetensors form. Fix: "
                    "keep weights and constants real (float, int or bool)."
                )
            name = f"{kind}/{label}"
            while name in self.arrays:
                name += "'"
            self._named[id(owner)] = name
            self.arrays[name] = array
            self.tensors[name] = tensor_entry(array)
        return name
