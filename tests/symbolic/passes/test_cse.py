"""Common-subexpression elimination: nodes with the same op, inputs and params merge (and so
do equal small constants); different params, different constants and random ops do not."""

from collections import Counter
from typing import Callable, NamedTuple

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from symbolic.passes import pass_names
from symbolic.passes.common_subexpressions import SMALL_CONSTANT, eliminate_common_subexpressions
from tests.helpers import assert_identical


class Case(NamedTuple):
    build: Callable  # (x, y) placeholders of shape (3, 3) -> the symbol to compile
    ops_after: dict  # op name -> how many remain after cse and dead-code elimination
    constants_after: int
    nodes_after: int  # placeholders, constants and ops


MERGES = {
    "same unary op": Case(lambda x, y: F.exp(x) + F.exp(x), {"exp": 1, "add": 1}, 0, 4),
    "same op and literal": Case(lambda x, y: x * 2.0 - x * 2.0, {"mul": 1, "sub": 1}, 0, 4),
    "chains merge all the way up": Case(
        lambda x, y: F.tanh(F.exp(x) + y) * F.tanh(F.exp(x) + y),
        {"exp": 1, "add": 1, "tanh": 1, "mul": 1},
        0,
        6,
    ),
    "same params": Case(
        lambda x, y: F.sum(x, axis=1) + F.sum(x, axis=1), {"sum": 1, "add": 1}, 0, 4
    ),
    "equal small constants": Case(
        lambda x, y: x * S.constant(np.arange(3.0)) + y * S.constant(np.arange(3.0)),
        {"mul": 2, "add": 1},
        1,
        6,
    ),
    "equal constants, then equal ops on them": Case(
        lambda x, y: x + F.exp(S.constant(np.ones(3))) + F.exp(S.constant(np.ones(3))),
        {"exp": 1, "add": 2},
        1,
        6,
    ),
}

KEPT_APART = {
    "different params": Case(
        lambda x, y: F.sum(x, axis=0, keepdims=True) + F.sum(x, axis=1, keepdims=True),
        {"sum": 2, "add": 1},
        0,
        5,
    ),
    "different literals": Case(lambda x, y: x * 2.0 + x * 3.0, {"mul": 2, "add": 1}, 0, 5),
    "different inputs": Case(lambda x, y: F.exp(x) + F.exp(y), {"exp": 2, "add": 1}, 0, 5),
    "argument order matters": Case(lambda x, y: (x - y) * (y - x), {"sub": 2, "mul": 1}, 0, 5),
    "different constant values": Case(
        lambda x, y: x * S.constant([1.0, 2.0, 3.0]) + x * S.constant([1.0, 2.0, 4.0]),
        {"mul": 2, "add": 1},
        2,
        7,
    ),
    "same values, different dtypes": Case(
        lambda x, y: x * S.constant(np.ones(3, np.float32)) + x * S.constant(np.ones(3)),
        {"mul": 2, "add": 1},
        2,
        7,
    ),
    "0.0 and -0.0": Case(
        lambda x, y: (
            x * S.constant(np.zeros(3, np.float32)) + x * S.constant(np.full(3, -0.0, np.float32))
        ),
        {"mul": 2, "add": 1},
        2,
        7,
    ),
    "large constants are not compared": Case(
        lambda x, y: (
            F.sum(S.constant(np.ones(SMALL_CONSTANT + 1, np.float32))) * x
            + F.sum(S.constant(np.ones(SMALL_CONSTANT + 1, np.float32))) * y
        ),
        {"sum": 2, "mul": 2, "add": 1},
        2,
        9,
    ),
}


def _compile(case: Case) -> tuple:
    x, y = S.placeholder((3, 3), name="x"), S.placeholder((3, 3), name="y")
    out = case.build(x, y)
    reference = S.compile(out, inputs=[x, y], optimize=0)
    others = [n for n in pass_names() if n not in ("cse", "dce")]
    merged = S.compile(out, inputs=[x, y], optimize=2, disable=others)
    return reference, merged


def _check(case: Case, rng) -> list[str]:
    reference, merged = _compile(case)
    graph = merged.graph
    assert Counter(n.op_name for n in graph.ops) == Counter(case.ops_after), str(graph)
    assert len(graph.constants) == case.constants_after, str(graph)
    assert len(graph.nodes) == case.nodes_after, str(graph)
    feeds = [rng.normal(size=(3, 3)).astype(np.float32) for _ in range(2)]
    assert_identical(merged(*feeds), reference(*feeds), "cse vs optimize=0")
    (stage,) = [s for s in merged.report.stages if s.stage == "cse"]
    assert stage.nodes_before - stage.nodes_after == len(stage.changes)  # one line per merge
    return stage.changes


@pytest.mark.parametrize("name", sorted(MERGES))
def test_duplicated_subexpressions_merge(name, rng):
    changes = _check(MERGES[name], rng)
    assert changes and all(c.startswith("merged %") and " into %" in c for c in changes)


@pytest.mark.parametrize("name", sorted(KEPT_APART))
def test_different_subexpressions_stay_apart(name, rng):
    assert _check(KEPT_APART[name], rng) == []


def test_the_later_node_is_replaced_by_the_earlier():
    x = S.placeholder((3,), name="x")
    first, second = F.exp(x), F.exp(x)
    graph = S.Graph([x.node], [(first + second).node])
    merged, changes = eliminate_common_subexpressions(graph)
    label = merged.numbering.label  # local numbers: x is %0, first %1, second %2
    assert [label(n) for n in (x.node, first.node, second.node)] == ["%0", "%1", "%2"]
    assert changes == [
        f"merged %2 = exp(%0) : f32[3]  # {second.node.source.split(': ')[0]} into %1"
    ]
    (add,) = [n for n in merged.ops if n.op_name == "add"]
    assert add.inputs[0] is first.node and add.inputs[1] is first.node


def test_random_ops_never_merge():
    ones = S.constant(np.ones(1000, np.float32))
    y = [F.dropout(ones, 0.5), F.dropout(ones, 0.5)]
    f = S.compile(y, optimize=2)
    assert [n.op_name for n in f.graph.ops].count("bernoulli") == 2
    first, second = f()
    assert not np.array_equal(first, second)  # one mask shared by both would make them equal
