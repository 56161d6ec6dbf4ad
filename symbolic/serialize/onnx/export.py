"""`export_onnx`: a compiled function's graph as an ONNX model, checked by `onnx.checker`.

    f = S.compile([loss, logits], inputs=[x, labels])
    export_onnx(f, "model.onnx")            # opset 17; stage="traced" for the graph as built

Placeholders become the graph's inputs (a None dimension a named symbolic size),
variables and constants its initializers, and each op one or a few ONNX nodes whose
doc_string is the user's line that made it. A fused group is written as its member ops.
"""

from __future__ import annotations

import os
from typing import Any

import onnx
from onnx import helper

from symbolic.compiler import CompiledFunction
from symbolic.graph import Graph
from symbolic.serialize.onnx import ops
from symbolic.serialize.onnx.emitter import Emitter, OnnxExportError, names_read, value_info
from symbolic.symbol import at_line

DEFAULT_OPSET = 17
STAGES = ("optimized", "traced")


def _graph_to_write(f: CompiledFunction, stage: str) -> Graph:
    if not isinstance(f, CompiledFunction):
        raise TypeError(
            f"export_onnx takes a compiled function, got a {type(f).__name__}. "
            "Fix: S.compile(outputs, inputs=[...]) first."
        )
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    graph = f.graph if stage == "optimized" else f.traced_graph
    if graph.updates:
        raise OnnxExportError(
            "an ONNX graph is a pure function: it cannot assign the variables that this "
            "compiled function updates. Fix: export a function compiled without updates= "
            "(the forward, or the loss and its gradients)."
        )
    for node in graph.inputs:
        if node.shape is None:
            raise OnnxExportError(
                at_line(
                    f"placeholder {node.name!r} has no shape, and an ONNX input needs at least "
                    "its rank. Fix: S.placeholder(shape=...), with None for sizes that vary.",
                    node.source,
                )
            )
    return Graph(graph.inputs, graph.outputs)  # only what the outputs need (no dead code)


def _check_opset(opset: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not DEFAULT_OPSET <= opset <= newest:
        raise ValueError(
            f"opset {opset} is not supported: the exporter writes opsets {DEFAULT_OPSET} to "
            f"{newest} (the installed onnx package's newest)."
        )


def to_onnx(f: CompiledFunction, opset: int = DEFAULT_OPSET, stage: str = "optimized"):
    """The ONNX model (an `onnx.ModelProto`) of `f`'s optimized or traced graph."""
    _check_opset(opset)
    graph = _graph_to_write(f, stage)
    emit = Emitter(opset, ops.BUILDERS, ops.NO_ONNX_FORM)
    names = [emit.fresh(n.name or "input") for n in graph.inputs]
    inputs = [value_info(name, n.shape, n.dtype, name) for name, n in zip(names, graph.inputs)]
    results = emit.write(graph, {n.id: name for n, name in zip(graph.inputs, names)})
    emit.source = ""
    outputs = [emit.fresh(f"output_{i}") for i in range(len(results))]
    for result, name in zip(results, outputs):
        emit.node("Identity", [result], outputs=[name])
    infos = [value_info(name, n.shape, n.dtype) for name, n in zip(outputs, graph.outputs)]
    written = helper.make_graph(emit.nodes, "diptych", inputs, infos)
    used = names_read(written)  # not the constant index arrays read while exporting
    written.initializer.extend(t for t in emit.initializers if t.name in used)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        written,
        opset_imports=opsets,
        producer_name="diptych",
        ir_version=helper.find_min_ir_version_for(opsets),  # runtimes lag the newest IR
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(
    f: CompiledFunction,
    path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    stage: str = "optimized",
) -> Any:
    """Write `f`'s graph (`stage`: "optimized", what runs, or "traced", as built) to `path`
    as an ONNX model; returns the model. Raises `OnnxExportError` for an op with no ONNX
    form, naming it and the line that made it."""
    model = to_onnx(f, opset, stage)
    onnx.save(model, os.fspath(path))
    return model
