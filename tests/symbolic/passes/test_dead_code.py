"""Dead-code elimination: a traced function keeps every node it built, used or not; the pass
removes (and reports) exactly those the outputs and updates do not need, and even an
unoptimized plan runs only the needed ones."""

import re

import numpy as np

import symbolic as S
from common import functional as F
from symbolic.graph import recording
from symbolic.passes import pass_names
from symbolic.passes.dead_code import eliminate_dead_code
from tests.helpers import assert_identical

rng0 = np.random.default_rng(0)
W1 = rng0.normal(size=(4, 5)).astype(np.float32)
W2 = rng0.normal(size=(5, 2)).astype(np.float32)
B = rng0.normal(size=(2,)).astype(np.float32)
X = rng0.normal(size=(3, 4)).astype(np.float32)


def _model():
    """A function whose graph holds an unused computation and gradients nobody returns."""
    w1, w2, b = S.variable(W1, name="w1"), S.variable(W2, name="w2"), S.variable(B, name="b")

    def fn(x):
        hidden = F.tanh(x @ w1)
        F.exp(x).sum()  # computed, never used
        loss = F.mean((hidden @ w2 + b) ** 2)
        dw1, dw2, db = S.grad(loss, [w1, w2, b])  # only dw1 is returned
        return [loss, dw1]

    return fn


def _labels(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


ONLY_DCE = [n for n in pass_names() if n != "dce"]


def test_unused_computations_and_gradients_are_removed_and_reported():
    x = S.placeholder((3, 4), name="x")
    f = S.compile(_model(), inputs=[x], optimize=2, disable=ONLY_DCE)
    traced, label = f.traced_graph, f.graph.numbering.label
    needed = S.Graph(traced.inputs, traced.outputs, traced.updates).nodes  # by reachability
    dead = {label(n) for n in traced.nodes} - {label(n) for n in needed}

    # the unused exp and sum, d/dw2's matmul and d/db's unbroadcast
    assert {n.op_name for n in traced.nodes if label(n) in dead} >= {
        "exp",
        "sum",
        "matmul",
        "sum_to_like",
    }
    kept_in_order = [label(n) for n in traced.nodes if label(n) not in dead]
    assert [label(n) for n in f.graph.nodes] == kept_in_order
    (stage,) = [s for s in f.report.stages if s.stage == "dce"]
    removed = {re.match(r"removed (%\d+) = ", c).group(1) for c in stage.changes}
    assert removed == dead
    assert (stage.nodes_before, stage.nodes_after) == (len(traced.nodes), len(needed))


def test_outputs_are_unchanged_by_removing_dead_code():
    x = S.placeholder((3, 4), name="x")
    reference = S.compile(_model(), inputs=[x], optimize=0)
    f = S.compile(_model(), inputs=[x], optimize=2, disable=ONLY_DCE)
    assert len(f.graph.nodes) < len(reference.graph.nodes)
    for got, want in zip(f(X), reference(X), strict=True):
        assert_identical(got, want, "dce vs optimize=0")


def test_an_unoptimized_plan_still_runs_only_what_the_outputs_need():
    x = S.placeholder((3, 4), name="x")
    f = S.compile(_model(), inputs=[x], optimize=0)
    assert [s.stage for s in f.report.stages] == ["trace"]
    assert len(f.graph.nodes) == len(f.traced_graph.nodes)  # nothing was removed from the graph
    label = f.graph.numbering.label
    needed = {label(n) for n in S.Graph(f.graph.inputs, f.graph.outputs).nodes}
    computed = _labels(f.source, r"# (%\d+) = ")
    assert computed and computed <= needed
    dead_ops = {label(n) for n in f.graph.ops} - needed
    assert dead_ops and not dead_ops & computed
    assert not any(f"= exp({label(x.node)})" in line for line in f.source.splitlines())


def test_nodes_that_only_feed_an_update_are_kept():
    x = S.placeholder((3,), name="x")
    w = S.variable(np.ones(3, np.float32), name="w")
    with recording() as recorded:
        loss = F.sum(x * w)
        (grad,) = S.grad(loss, [w])
        new_w = w - 0.1 * grad
        F.tanh(x)  # dead
    graph = S.Graph.traced([x.node], [loss.node], [(w.node, new_w.node)], recorded)
    pruned, changes = eliminate_dead_code(graph)
    labels = {pruned.numbering.label(n) for n in pruned.nodes}
    assert {pruned.numbering.label(new_w.node), pruned.numbering.label(grad.node)} <= labels
    assert [c.split(" = ")[1].split("(")[0] for c in changes] == ["tanh"]


def test_an_unused_placeholder_stays_an_input():
    """Removing it would change the call signature."""
    x, unused = S.placeholder((3,), name="x"), S.placeholder((3,), name="unused")

    def fn(a, b):
        F.tanh(b)  # the only use of b, and dead
        return F.exp(a)

    f = S.compile(fn, inputs=[x, unused], optimize=2)
    assert "tanh" not in [n.op_name for n in f.graph.ops]
    assert [n.name for n in f.graph.inputs] == ["x", "unused"]
    assert unused.node in f.graph.nodes
    ones = np.ones(3, np.float32)
    assert_identical(f(ones, ones), np.exp(ones), "exp(x)")


def test_dead_code_elimination_is_idempotent():
    x = S.placeholder((3, 4), name="x")
    f = S.compile(_model(), inputs=[x], optimize=2)
    again, changes = eliminate_dead_code(f.graph)
    assert changes == [] and again.nodes == f.graph.nodes
