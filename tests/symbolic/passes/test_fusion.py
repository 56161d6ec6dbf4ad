"""Elementwise fusion: maximal groups of same-shape elementwise ops become one node; a value
read outside its group, an unsupported op or another shape ends a group; groups stay convex
(the fused graph is a DAG in schedule order); fused nodes keep every member's source line;
and values match optimize=0 on large inputs, forward, backward and over training steps."""

import re
from collections import Counter
from typing import Callable, NamedTuple

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings

import common.fusion as fusion
import symbolic as S
from common import functional as F
from symbolic.codegen import generate
from symbolic.graph import Graph
from symbolic.passes import fusion as fusion_pass
from symbolic.passes.fusion import find_groups, fuse_elementwise
from symbolic.passes.rewrite import lines_of
from tests.helpers import as_list, gelu
from tests.symbolic.test_differential import _placeholders, programs, run

RTOL, ATOL = 1e-5, 1e-6
LARGE_ATOL = 1e-5  # per unit of the output's largest value: gradients summed from cancelling
# terms, and 1 - tanh(x)**2 near saturation, lose leading digits to rounding (numba's float32
# tanh is within 7 ulp of numpy's)
LARGE = (600, 500)  # 300,000 elements: above fusion.SMALL, so numba runs too


def _op_names(graph: Graph) -> Counter:
    return Counter("fused" if n.op_name.startswith("fused_") else n.op_name for n in graph.ops)


class Case(NamedTuple):
    build: Callable  # placeholders -> a symbol or a list of symbols (the outputs)
    ops_after: dict  # op name ("fused" for any fused node) -> count after the pass
    group_sizes: list  # members of each fused group, largest first
    shapes: tuple = ((8, 16), (8, 16))


def _outside_and_inside(x, y):
    e = F.exp(x)
    return [F.tanh(e) * 2.0, F.sum(e)]  # e is read by sum too: it cannot be internal


def _output_inside(x, y):
    e = F.exp(x * 3.0)
    return [e, F.tanh(e) + 1.0]  # e is returned: it may end a group, never sit inside one


def _round_trip_through_matmul(x, w):
    t = F.tanh(x)
    return t * 2.0 + t @ w  # t -> matmul -> add leaves the group: t stays out


CASES = {
    "chain": Case(lambda x, y: F.tanh(F.exp(x * 2.0) + 1.0), {"fused": 1}, [4]),
    "two inputs": Case(lambda x, y: F.sqrt(x * x + y * y), {"fused": 1}, [4]),
    "diamond": Case(lambda x, y: (F.exp(x) + 1.0) * (F.exp(x) - y), {"fused": 1}, [5]),
    "broadcast input": Case(
        lambda x, y: F.sigmoid(x * y + 1.0), {"fused": 1}, [3], ((8, 16), (1, 16))
    ),
    "a value read outside ends the group": Case(
        _outside_and_inside, {"exp": 1, "fused": 1, "sum": 1}, [2]
    ),
    "an output ends the group": Case(_output_inside, {"fused": 2}, [2, 2]),
    "a path through matmul": Case(
        _round_trip_through_matmul, {"tanh": 1, "matmul": 1, "fused": 1}, [2], ((8, 16), (16, 16))
    ),
    "matmul is not fused": Case(
        lambda x, y: F.relu((x * 2.0) @ F.transpose(y) + 1.0),
        {"mul": 1, "permute": 1, "matmul": 1, "fused": 1},
        [2],
    ),
    "reductions are not fused": Case(
        lambda x, y: F.softmax(x * 2.0 - y),  # read by max
        {"fused": 2, "max": 1, "stop_gradient": 1, "sum": 1, "div": 1},
        [2, 2],
    ),
    "one_hot is not fused": Case(
        lambda x, y: F.one_hot(S.constant(np.arange(8) % 16), 16) * 2.0 + x,
        {"one_hot": 1, "fused": 1},
        [2],
    ),
    "different shapes do not fuse": Case(
        lambda x, y: F.exp(x) + F.tanh(F.sum(y, axis=0) * 2.0), {"fused": 2, "sum": 1}, [2, 2]
    ),
    "a lone op is left alone": Case(
        lambda x, y: F.sum(F.exp(x)) * y, {"exp": 1, "sum": 1, "mul": 1}, []
    ),
}


def _traced(case: Case):
    inputs = [S.placeholder(s, name=f"x{i}") for i, s in enumerate(case.shapes)]
    outputs = as_list(case.build(*inputs))
    graph = Graph([i.node for i in inputs], [o.node for o in outputs])
    return inputs, outputs, graph


CHANGE = re.compile(r"^fused ((?:%\d+ \w+, )*%\d+ \w+) into (%\d+) (fused_\d+): (.+)$")


@pytest.mark.parametrize("name", CASES)
def test_groups_are_maximal_and_stop_where_they_must(name):
    case = CASES[name]
    _, _, graph = _traced(case)
    after, changes = fuse_elementwise(graph)
    assert _op_names(after) == Counter(case.ops_after), str(after)
    groups = find_groups(graph)
    assert sorted(map(len, groups), reverse=True) == case.group_sizes
    assert len(after.nodes) == len(graph.nodes) - sum(len(g) - 1 for g in groups)
    made = [line for line in changes if line.startswith("fused ")]
    assert len(made) == len(groups)
    label = after.numbering.label  # the numbers the messages used
    fused = {label(n): n for n in after.ops if n.op_name.startswith("fused_")}
    listed = {", ".join(f"{label(m)} {m.op_name}" for m in group) for group in groups}
    for line in made:
        match = CHANGE.match(line)
        assert match, line
        assert match.group(1) in listed, line  # every member, in schedule order
        node = fused[match.group(2)]
        assert node.op.name == match.group(3)
        assert match.group(4) == node.op.kernel.program.expression()


def _check_convex_and_ordered(before: Graph, after: Graph) -> None:
    """No path leaves a group and comes back; the result is a DAG whose schedule puts every
    node after its inputs; no group hides an output or a value read outside it."""
    dag = before.to_networkx()
    outputs = {n.id for n in before.outputs}
    for group in find_groups(before):
        members = {m.id for m in group}
        below = set().union(*(nx.descendants(dag, m) for m in members)) - members
        above = set().union(*(nx.ancestors(dag, m) for m in members)) - members
        assert not below & above, f"group {sorted(members)} is not convex"
        for m in group[:-1]:
            assert m.id not in outputs, f"output {m.label} is internal to a group"
            assert set(dag.successors(m.id)) <= members, f"{m.label} is read outside"
        assert all(n.shape == group[-1].shape for n in group)
    assert nx.is_directed_acyclic_graph(after.to_networkx())
    seen: set = set()
    for node in after.nodes:
        assert all(a.id in seen for a in node.inputs if hasattr(a, "id")), str(after)
        seen.add(node.id)
    assert {n.id for n in after.outputs} <= seen


@pytest.mark.parametrize("name", CASES)
def test_fused_graphs_are_convex_dags_with_the_unfused_values(name, rng):
    case = CASES[name]
    inputs, outputs, graph = _traced(case)
    after, _ = fuse_elementwise(graph)
    _check_convex_and_ordered(graph, after)
    arrays = [rng.normal(size=s).astype(np.float32) for s in case.shapes]
    want = S.compile(outputs, inputs=inputs, optimize=0)(*arrays)
    for got, expected in zip(generate(after).instantiate()(*arrays), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@settings(max_examples=60, deadline=None)
@given(program=programs())
def test_random_graphs_with_gradients_fuse_convexly(program):
    """Random graphs of elementwise, reduction, shape and matmul ops, with their backward
    nodes (the VJP rules make many elementwise chains), fuse into DAGs."""
    arrays = [np.ones(s, program.dtype) for s in program.shapes]
    inputs = _placeholders(arrays)
    out = run(program, inputs)
    outputs = [out, *S.grad(F.sum(out), inputs)]
    graph = Graph([i.node for i in inputs], [o.node for o in outputs])
    after, _ = fuse_elementwise(graph)
    _check_convex_and_ordered(graph, after)


def test_the_report_names_the_fused_ops_and_the_expression():
    a, b = S.placeholder(LARGE, name="a"), S.placeholder(LARGE, name="b")
    f = S.compile(F.sqrt(a * a + b * b), inputs=[a, b], optimize=2)
    (stage,) = [s for s in f.report.stages if s.stage == "fusion"]
    assert (stage.nodes_before, stage.nodes_after) == (6, 3)
    (line,) = stage.changes
    assert re.match(
        r"^fused %\d+ mul, %\d+ mul, %\d+ add, %\d+ sqrt into %\d+ fused_\d+: "
        r"sqrt\(\(\(x0 \* x0\) \+ \(x1 \* x1\)\)\)$",
        line,
    ), line
    assert f"    {line}" in str(f.report)
    (node,) = f.graph.ops
    assert f"k_{node.op.name}(xp, " in f.source  # the plan calls the one kernel


def test_a_fused_node_keeps_every_members_source_line():
    x = S.placeholder((4, 5), name="x")
    scaled = x * 2.0
    shifted = F.exp(scaled) - 1.0
    squashed = F.tanh(shifted)
    f = S.compile(squashed, inputs=[x], optimize=2)
    (fused,) = [n for n in f.graph.ops if n.op_name.startswith("fused_")]
    members = f.traced_graph.ops
    assert len(members) == 4
    for member in members:
        assert member.source in lines_of(fused), (member.source, lines_of(fused))
    assert fused.source == squashed.node.source  # the group's root names the node


# ---- values on large inputs: the chunked threads and the numba loops both run ----------


LARGE_CASES = {
    "pythagoras": lambda x, y: F.sqrt(x * x + y * y),
    "gelu": lambda x, y: gelu(x) * y,
    "sigmoid and where": lambda x, y: F.where(x > y, F.sigmoid(x), F.tanh(y) * x),
    "clamp and relu": lambda x, y: F.clamp(x, min=-0.5, max=1.0) * F.relu(y - 0.1) + x**3,
    "softmax": lambda x, y: F.softmax(x * y, axis=-1),
    "broadcast row": lambda x, y: F.tanh(x * F.sum(y, axis=0, keepdims=True) + 1.0),
}


@pytest.mark.parametrize("disable", [["memory"], []], ids=["fusion", "fusion+memory"])
@pytest.mark.parametrize("name", LARGE_CASES)
def test_large_values_and_gradients_equal_optimize_0(name, disable, rng):
    x, y = S.placeholder(LARGE, name="x"), S.placeholder(LARGE, name="y")
    out = LARGE_CASES[name](x, y)
    cotangent = S.constant(rng.normal(size=LARGE).astype(np.float32))
    outputs = [out, *S.grad(F.sum(out * cotangent), [x, y])]
    arrays = [rng.normal(size=LARGE).astype(np.float32) for _ in range(2)]
    want = S.compile(outputs, inputs=[x, y], optimize=0)(*arrays)
    f = S.compile(outputs, inputs=[x, y], optimize=2, disable=disable)
    assert any(n.op_name.startswith("fused_") for n in f.graph.ops)
    for call in range(2):  # the first call builds the kernels, the second reuses them
        for k, (got, expected) in enumerate(zip(f(*arrays), want, strict=True)):
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(
                got,
                expected,
                rtol=RTOL,
                atol=LARGE_ATOL * scale,
                err_msg=f"call {call}, output {k}",
            )


# ---- a training step: fused updates write into the weights' next values ----------------

BATCH, IN, HIDDEN, CLASSES = 128, 512, 384, 10  # w1 has 196,608 elements


def _mlp_step(params: dict, optimize: int, disable=()):
    """One SGD step of a 2-layer MLP on its own copies of the weights."""
    weights = {k: S.variable(v.copy(), name=k) for k, v in params.items()}
    x = S.placeholder((BATCH, IN), name="x")
    labels = S.placeholder((BATCH,), "int64", name="labels")
    hidden = gelu(x @ weights["w1"] + weights["b1"])
    loss = F.cross_entropy(hidden @ weights["w2"] + weights["b2"], labels)
    grads = S.grad(loss, list(weights.values()))
    updates = {w: w - 0.05 * g for w, g in zip(weights.values(), grads)}
    step = S.compile(loss, inputs=[x, labels], updates=updates, optimize=optimize, disable=disable)
    return step, {k: w.node.value for k, w in weights.items()}


@pytest.mark.parametrize("disable", [["memory"], []], ids=["fusion", "fusion+memory"])
def test_three_training_steps_equal_optimize_0(disable, rng):
    params = {
        "w1": rng.normal(size=(IN, HIDDEN)) * 0.05,
        "b1": np.zeros(HIDDEN),
        "w2": rng.normal(size=(HIDDEN, CLASSES)) * 0.05,
        "b2": np.zeros(CLASSES),
    }
    params = {k: v.astype(np.float32) for k, v in params.items()}
    assert params["w1"].size > 2 * fusion.SMALL
    reference, ref_weights = _mlp_step(params, optimize=0)
    fused, weights = _mlp_step(params, optimize=2, disable=disable)
    large = [
        n
        for n in fused.graph.ops
        if n.op_name.startswith("fused_") and int(np.prod(n.shape)) > fusion.SMALL
    ]
    assert large, "no fused group is large enough for the multi-threaded and numba paths"
    for step in range(3):
        x = rng.normal(size=(BATCH, IN)).astype(np.float32)
        labels = rng.integers(0, CLASSES, BATCH)
        np.testing.assert_allclose(
            fused(x, labels), reference(x, labels), rtol=RTOL, err_msg=f"loss at step {step}"
        )
        for k, storage in weights.items():
            np.testing.assert_allclose(
                storage.data,
                ref_weights[k].data,
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"{k} after step {step}",
            )
    assert not np.allclose(weights["w1"].data, params["w1"])  # the updates did run


def test_groups_below_the_size_threshold_stay_unfused(monkeypatch):
    """Small arrays live in the cache: fusing them costs a call and saves no memory trips."""
    from symbolic.passes import fusion

    monkeypatch.setattr(fusion, "MIN_ELEMENTS", 1 << 16)
    for shape, fused in [((64, 100), False), ((256, 256), True)]:
        x = S.placeholder(shape)
        f = S.compile(F.tanh(x * 2.0 + 1.0), inputs=[x], optimize=2)
        assert any(n.op.name.startswith("fused") for n in f.graph.ops) == fused, shape


# ---- every dtype a group can have, at the real size threshold ---------------------------

DTYPE_CASES = {  # name: (input dtype, graph, what runs the fused group)
    "float16": (
        "float16",
        lambda x: F.tanh(x) * x + 1.0,
        "numpy-chunked (numba has no float16 arithmetic)",
    ),
    "float64": ("float64", lambda x: F.sqrt(x * x + 1.0) * x, "numba"),
    "int32": (
        "int32",
        lambda x: F.where(F.logical_and(x > 0, x < 5), x * 2, x),
        "numba",
    ),  # the comparisons fuse (to bool); int arithmetic stays unfused
    "bool": ("bool", lambda x: F.logical_not(F.logical_and(x, F.logical_not(x))), "numba"),
}


@pytest.mark.parametrize("name", DTYPE_CASES)
def test_groups_of_every_dtype_run_at_optimize_2(name, rng, monkeypatch):
    """float16 groups of 65,536+ elements used to crash at optimize=2 (numba has no float16):
    they run with numpy, block by block, and the report says why."""
    monkeypatch.setattr(fusion_pass, "MIN_ELEMENTS", 1 << 16)
    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "auto")
    dtype, build, target = DTYPE_CASES[name]
    if target == "numba" and not fusion.numba_available():
        target = "numpy-chunked (numba is not installed)"
    x = S.placeholder((300, 300), dtype, name="x")
    out = build(x)
    values = (rng.normal(size=(300, 300)) * 4).astype(dtype)
    want = S.compile(out, inputs=[x], optimize=0)(values)
    f = S.compile(out, inputs=[x], optimize=2)
    (fused,) = f.report.fused_kernels
    got = f(values)
    assert fused.kernel.choice.startswith(target), fused.kernel.choice
    assert f"target: {fused.kernel.choice}" in str(f.report)
    if dtype == "float64":
        np.testing.assert_allclose(got, want, rtol=1e-15)
    else:  # numpy's own kernels, or numba's exact comparisons and logic
        np.testing.assert_array_equal(got, want, strict=True)
