"""The symbolic (define-then-run) engine: build a graph of symbols, compile it, run it.

import symbolic as S
a = S.placeholder(); b = S.placeholder()
c = (a**2 + b**2) ** 0.5
c(3, 4)                                   # 5.0
f = S.compile(c, inputs=[a, b]); f.source; f.report
"""

from symbolic import control, symbol
from symbolic.compiler import (
    CompiledFunction,
    FeedError,
    GraphRuntimeError,
    compile,
    compiled_for_symbol,
)
from symbolic.gradients import grad
from symbolic.graph import Graph, Node
from symbolic.serialize import LoadError, load, save
from symbolic.symbol import Symbol, Variable, constant, placeholder, variable
from symbolic.tracing import TracedFunction, function, trace
from symbolic.training import optimizer_updates

symbol.LATER_LAYERS.update(
    cond=control.cond,
    while_loop=control.while_loop,
    scan=control.scan,
    compiled=compiled_for_symbol,
)

__all__ = [
    "CompiledFunction", "FeedError", "Graph", "GraphRuntimeError", "LoadError", "Node", "Symbol",
    "TracedFunction", "Variable", "compile", "constant", "function", "grad", "load", "placeholder",
    "optimizer_updates", "save", "trace", "variable",
]  # fmt: skip


def __getattr__(name: str):  # S.export_onnx / S.import_onnx load onnx only when used
    if name in ("export_onnx", "import_onnx"):
        from symbolic.serialize import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module 'symbolic' has no attribute {name!r}")
