"""Constant folding: ops on constants run at compile time, with the same kernels as eager, and
become one constant that remembers the user lines it replaced; placeholders and random ops
stay in the graph."""

import re

import numpy as np
import pytest

import eager as E
import symbolic as S
from common import functional as F
from symbolic.passes.constant_folding import MAX_GROWTH_BYTES, fold_constants
from symbolic.passes.dead_code import eliminate_dead_code
from tests.helpers import assert_identical

HERE = "test_constant_folding.py"

A = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
B = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
INTS = np.arange(6, dtype=np.int32)

# Each builder takes the engine's way of making a constant (S.constant or E.tensor), so the
# same expression gives the graph to fold and the eager value it must equal.
CONSTANT_EXPRESSIONS = {
    "exp then scale": lambda c: F.exp(c(np.float32(2.0))) * 3.0,
    "a tree over one constant": lambda c: F.tanh(c(A)) + c(A) * c(A),
    "matmul then reduce": lambda c: F.sum(c(A) @ c(B), axis=0),
    "views become copies": lambda c: F.permute(c(B).reshape(2, 6), (1, 0)),
    "int arithmetic keeps int32": lambda c: c(INTS).reshape(2, 3) * 2 + 1,
    "float64 stays float64": lambda c: F.sqrt(c(A.astype(np.float64)) + 1.0),
    "int promoted by a float": lambda c: c(INTS) * 1.5,
    "small broadcast": lambda c: F.broadcast_to(c(np.float32(1.5)), (4, 3)),
    "mean and softmax": lambda c: F.softmax(c(A), axis=-1) - F.mean(c(A)),
}


def _graph(outputs: list, inputs: list = ()) -> S.Graph:
    return S.Graph([i.node for i in inputs], [o.node for o in outputs])


def _op_names(graph: S.Graph) -> list[str]:
    return [n.op_name for n in graph.ops]


@pytest.mark.parametrize("name", sorted(CONSTANT_EXPRESSIONS))
def test_a_subgraph_of_constants_folds_into_one_constant_equal_to_eager(name):
    build = CONSTANT_EXPRESSIONS[name]
    y = build(S.constant)
    graph = _graph([y])
    ops_before = len(graph.ops)
    assert ops_before >= 1

    folded, changes = fold_constants(graph)
    assert folded.ops == [], str(folded)
    assert len(changes) == ops_before  # one line per op folded
    out = folded.outputs[0]
    assert out.op == "constant"
    assert out.aval == y.node.aval  # the type inferred at build time is kept
    assert not out.value.flags.writeable and out.value.base is None  # not a view of an input

    pruned, _ = eliminate_dead_code(folded)
    assert pruned.nodes == [out]  # the whole subgraph is now one node
    assert_identical(out.value, build(E.tensor).numpy(), name)


FED_OR_STORED = {
    "placeholder": lambda: S.placeholder((2, 3), name="x"),
    "variable": lambda: S.variable(np.ones((2, 3), np.float32), name="w"),  # updates change it
}


@pytest.mark.parametrize("kind", sorted(FED_OR_STORED))
def test_nodes_that_depend_on_a_placeholder_or_variable_are_not_folded(kind):
    x = FED_OR_STORED[kind]()
    inputs = [x] if kind == "placeholder" else []
    c = S.constant(A)
    y = F.tanh(x * F.exp(c)) + F.sum(c)  # exp and sum are constant; mul, tanh, add need x
    folded, changes = fold_constants(_graph([y], inputs))
    pruned, _ = eliminate_dead_code(folded)

    assert _op_names(pruned) == ["mul", "tanh", "add"]
    assert [c.split(" = ")[1].split("(")[0] for c in changes] == ["exp", "sum"]
    mul = pruned.ops[0]
    assert mul.inputs[0] is x.node and mul.inputs[1].op == "constant"
    feeds = [np.full((2, 3), 0.5, np.float32)] if inputs else []
    want = S.compile(y, inputs=inputs, optimize=0)(*feeds)
    assert_identical(S.compile(y, inputs=inputs, optimize=2)(*feeds), want, "folded vs not")


def test_random_ops_never_fold_even_on_constant_inputs():
    ones = S.constant(np.ones(1000, np.float32))
    y = F.dropout(ones, 0.5)
    folded, changes = fold_constants(_graph([y]))
    assert "bernoulli" in _op_names(folded)
    assert not any("bernoulli" in c for c in changes)

    f = S.compile(y, optimize=2)
    first, second = f(), f()
    assert set(np.unique(first)) <= {0.0, 2.0}
    assert not np.array_equal(first, second)  # a folded mask would repeat on every call


def test_a_folded_constant_names_the_user_lines_of_the_ops_it_replaced():
    x = S.placeholder((3,), name="x")
    base = S.constant(np.float32(2.0))
    grown = F.exp(base)
    scaled = grown * 3.0
    shifted = scaled + F.tanh(base)
    y = x * shifted
    f = S.compile(y, inputs=[x], optimize=2)

    (folded,) = f.graph.constants
    replaced = [base, grown, scaled, shifted]
    named = {folded.source, *folded.provenance}
    assert {r.node.source for r in replaced} <= named
    assert all(line.startswith(f"{HERE}:") for line in named), named
    assert len({int(line.split(":")[1]) for line in named}) == 4  # four distinct lines
    assert folded.source == shifted.node.source  # the root of what was folded


def test_the_change_list_names_each_folded_op_and_its_replacement():
    c = S.constant(np.float32(2.0))
    y = F.exp(c) * 3.0 + F.tanh(c)
    folded, changes = fold_constants(_graph([y]))

    pattern = re.compile(r"^folded %\d+ = (\w+)\(.*\) : f32\[\]\s+# " + HERE + r":\d+ into (%\d+)$")
    matches = [pattern.match(change) for change in changes]
    assert all(matches), changes
    assert [m.group(1) for m in matches] == ["exp", "mul", "tanh", "add"]
    label = folded.numbering.label  # the numbers the messages used
    constants = {label(n) for n in folded.constants}
    assert {m.group(2) for m in matches} <= constants
    assert matches[-1].group(2) == label(folded.outputs[0])


GROWTH = {
    # (shape, folded?): a broadcast of one scalar up to MAX_GROWTH_BYTES is baked in; a
    # larger one stays an op, so the plan does not carry megabytes of copies of one number
    "small": ((4, 3), True),
    "at the limit": ((MAX_GROWTH_BYTES // 4,), True),
    "past the limit": ((2, MAX_GROWTH_BYTES // 4), False),
}


@pytest.mark.parametrize("name", sorted(GROWTH))
def test_results_much_larger_than_their_inputs_are_not_baked_in(name):
    shape, expect_folded = GROWTH[name]
    y = F.broadcast_to(S.constant(np.float32(1.5)), shape)
    folded, changes = fold_constants(_graph([y]))
    assert bool(changes) == expect_folded
    assert (folded.outputs[0].op == "constant") == expect_folded
    out = S.compile(y, optimize=2)()
    assert out.shape == shape and out.dtype == np.float32 and np.all(out == 1.5)


def test_a_kernel_that_fails_while_folding_names_the_users_line():
    """At optimize=0 a failing kernel raises GraphRuntimeError naming the user's line; folding
    the same node must not turn that into a bare numpy error without one."""
    y = S.constant(np.array([1, 2], np.int8)) * 300  # 300 does not fit in int8
    line = y.node.source.split(": ")[0]
    assert line.startswith(f"{HERE}:")
    with pytest.raises(S.GraphRuntimeError, match=line):
        S.compile(y, optimize=0)()
    with pytest.raises(Exception) as info:  # noqa: B017 (compile or call: either may report)
        S.compile(y, optimize=2)()
    assert line in str(info.value), f"{type(info.value).__name__}: {info.value}"
