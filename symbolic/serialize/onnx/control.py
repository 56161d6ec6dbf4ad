"""Control flow as ONNX: `cond` as `If`, `scan` as `Scan`, `while_loop` as `Loop`.

A diptych body is a subgraph whose inputs are its arguments, then the outer values it
captured; an ONNX body reads outer values by name instead, so the captured inputs are
bound to the outer names and only the arguments become the body's own inputs. Each node's
outputs come in diptych's order, so the `item` nodes that pick them need no change.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from symbolic.graph import Graph
from symbolic.serialize.onnx.emitter import Call, Emitter, value_info

BOOL, INT64 = np.dtype(bool), np.dtype(np.int64)


def _typed(emit: Emitter, args: tuple, inputs: list) -> list[str]:
    """Arguments as the dtypes of the body inputs they feed (a Python number becomes a
    constant of that dtype)."""
    return [emit.operand(a, n.dtype) for a, n in zip(args, inputs)]


def _own_inputs(emit: Emitter, nodes: list) -> tuple[list[str], list]:
    """Fresh names and typed ONNX inputs for the body inputs `nodes`."""
    names = [emit.fresh(n.name or "arg") for n in nodes]
    return names, [value_info(name, n.shape, n.dtype) for name, n in zip(names, nodes)]


def _bind(graph: Graph, names: list[str]) -> dict[int, str]:
    return {n.id: name for n, name in zip(graph.inputs, names)}


def _outputs(emit: Emitter, call: Call, hint: str) -> list[str]:
    """Names for a control node's outputs: always a list, which `item` nodes index."""
    return [emit.fresh(hint) for _ in call.params["out_avals"]]


def cond(emit: Emitter, call: Call) -> list[str]:
    """If(pred): each branch a body with no inputs of its own."""
    branches = []
    for body, name in zip(call.params["branches"], ("then", "else")):
        outer = _typed(emit, call.args[1:], body.graph.inputs)
        branches.append(emit.body(body.graph, _bind(body.graph, outer), [], name))
    pred = emit.operand(call.args[0], BOOL)
    return emit.node(
        "If",
        [pred],
        outputs=_outputs(emit, call, "if"),
        then_branch=branches[0],
        else_branch=branches[1],
    )


def scan(emit: Emitter, call: Call) -> list[str]:
    """Scan over axis 0: the states are the carry; the scan outputs are the ys, then the
    carries each step began with (which diptych's scan saves for its gradient)."""
    graph, n_carry = call.params["body"].graph, call.params["n_carry"]
    own = n_carry + call.params["n_xs"]
    names, infos = _own_inputs(emit, graph.inputs[:own])
    captured = _typed(emit, call.args[own:], graph.inputs[own:])
    saving = Graph(graph.inputs, graph.outputs + graph.inputs[:n_carry], nodes=graph.nodes)
    body = emit.body(saving, _bind(graph, names + captured), infos, "scan_body")
    return emit.node(
        "Scan",
        _typed(emit, call.args[:own], graph.inputs),
        outputs=_outputs(emit, call, "scan"),
        body=body,
        num_scan_inputs=call.params["n_xs"],
    )


def while_loop(emit: Emitter, call: Call) -> list[str]:
    """Loop with no trip limit: the test runs once before (the first condition) and at the
    end of each iteration on the new carry. When the gradient may need them (a float
    carry), a counter rides along as an extra carry and the carries each iteration began
    with become scan outputs: diptych's trip count and saved carries."""
    test, body = call.params["test"].graph, call.params["body"].graph
    n_carry = call.params["n_carry"]
    saving = len(call.params["out_avals"]) > n_carry
    carry = _typed(emit, call.args[:n_carry], body.inputs)
    captured = _typed(emit, call.args[n_carry:], body.inputs[n_carry:])
    first = emit.cast(
        emit.write(test, _bind(test, carry + captured))[0], test.outputs[0].dtype, BOOL
    )
    outputs = emit.node(
        "Loop",
        ["", first, *([emit.ints(0)] if saving else []), *carry],
        outputs=_outputs(emit, call, "loop"),
        body=_loop_body(emit, test, body, n_carry, captured, saving),
    )
    if not saving:
        return outputs
    return [*outputs[1 : 1 + n_carry], outputs[0], *outputs[1 + n_carry :]]  # diptych's order


def _loop_body(emit: Emitter, test: Graph, body: Graph, n_carry: int, captured: list, saving: bool):
    """(iteration, condition, [trips], *carry) -> (test(new), [trips + 1], *new, [*carry])."""
    carry, carry_inputs = _own_inputs(emit, body.inputs[:n_carry])
    heads = [("iteration", INT64), ("condition", BOOL)] + ([("trips", INT64)] if saving else [])
    names = [emit.fresh(hint) for hint, _ in heads]
    with emit.scope() as nodes:
        new = emit.write(body, _bind(body, carry + captured))
        again = emit.write(test, _bind(test, new + captured))[0]
        results = [emit.cast(again, test.outputs[0].dtype, BOOL)]
        results += [emit.node("Add", [names[2], emit.ints(1)])] if saving else []
        outs = [emit.node("Identity", [r]) for r in results + new + (carry if saving else [])]
    made = body.outputs + (body.inputs[:n_carry] if saving else [])
    kinds = [(dtype, ()) for _, dtype in heads[1:]] + [(n.dtype, n.shape) for n in made]
    inputs = [value_info(n, (), dtype) for n, (_, dtype) in zip(names, heads)] + carry_inputs
    outputs = [value_info(o, shape, dtype) for o, (dtype, shape) in zip(outs, kinds)]
    return helper.make_graph(nodes, emit.fresh("loop_body"), inputs, outputs)


BUILDERS = {"cond": cond, "scan": scan, "while_loop": while_loop}
