"""Memory planning: the plan is data (buffers, assignment, lifetimes, in-place decisions and
refusals with their reasons); buffers are reused once dead and never shared by two live
values; ops write in place only into inputs that die there; outputs never live in planned
buffers; views keep their buffer alive; and planned graphs give optimize=0's values call
after call, training steps included."""

import re
from typing import Callable, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings

import symbolic as S
from common import functional as F
from symbolic.graph import Graph, Node
from symbolic.passes.memory import MemoryPlan, plan_memory, storage_roots
from tests.helpers import as_list
from tests.symbolic.test_differential import _placeholders, programs, run

RTOL, ATOL = 1e-5, 1e-5


def _planned(build: Callable, shapes: list, variables: tuple = ()) -> tuple[Graph, MemoryPlan]:
    """The traced graph of `build(*placeholders, *variables)` planned by the pass alone."""
    inputs = [S.placeholder(s, name=f"x{i}") for i, s in enumerate(shapes)]
    outputs = build(*inputs, *variables)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    graph, changes = plan_memory(Graph([i.node for i in inputs], [o.node for o in outputs]))
    assert changes[0] == graph.memory.summary()
    return graph, graph.memory


def _position(graph: Graph) -> dict[int, int]:
    return {n.id: i for i, n in enumerate(graph.nodes)}


def check_plan(graph: Graph, plan: MemoryPlan) -> None:
    """The invariants every plan keeps, whatever the graph."""
    pos, by_id = _position(graph), {n.id: n for n in graph.nodes}
    root = storage_roots(graph)
    returned = {root[n.id].id for n in graph.outputs}
    assert set(plan.lifetimes) == set(plan.assignment)
    for node_id, buffer in plan.assignment.items():
        node = by_id[node_id]
        assert not node.is_source and node.op.writes_out
        assert node_id not in returned, f"returned {node.label} is in buffer {buffer}"
        size, dtype = plan.buffers[buffer]
        assert size >= int(np.prod(node.shape)) and dtype == node.dtype.name
        first, last = plan.lifetimes[node_id]
        assert first == pos[node_id] <= last <= len(graph.nodes)
        readers = [
            pos[n.id]
            for n in graph.nodes
            if any(isinstance(a, Node) and root[a.id].id == node_id for a in n.inputs)
        ]
        assert last >= max(readers, default=first), f"{node.label} freed before a read"
    for node_id, victim in plan.in_place.items():
        assert plan.assignment[node_id] == plan.assignment[victim]
        assert plan.lifetimes[victim][1] == pos[node_id], "in place into a value read later"
        assert by_id[victim].shape == by_id[node_id].shape
        others = [a for a in by_id[node_id].inputs if isinstance(a, Node) and a.id != victim]
        assert all(root[a.id].id != victim for a in others), "in place under a view of it"
    ordered = sorted(plan.assignment, key=lambda n: pos[n])
    for i, a in enumerate(ordered):  # values sharing a buffer never live at the same time
        for b in ordered[i + 1 :]:
            if plan.assignment[a] == plan.assignment[b]:
                handed_over = plan.in_place.get(b) == a
                assert plan.lifetimes[a][1] < plan.lifetimes[b][0] or handed_over, (
                    f"{by_id[a].label} and {by_id[b].label} share buffer "
                    f"{plan.assignment[a]} while both alive"
                )
    assert plan.planned_bytes <= plan.intermediate_bytes


# ---- the plan is data --------------------------------------------------------------------


class Refusal(NamedTuple):
    build: Callable  # placeholders (and a variable) -> outputs
    shapes: list
    reason: str  # a regex the reason matches
    weight: tuple = (8, 8)  # the shape of the variable w


def _still_read(x):
    a = F.exp(x)
    return F.sum(F.tanh(a) * a)  # tanh may not overwrite a: mul reads it later


def _output_input(x):
    a = F.exp(x)
    return [a, F.sum(F.tanh(a))]  # a is returned: it has no buffer to write in


REFUSALS = {
    "a placeholder": Refusal(
        lambda x, w: F.sum(F.exp(x)), [(8, 8)], r"input is a caller's array \(placeholder\)"
    ),
    "a variable": Refusal(
        lambda x, w: F.sum(F.tanh(w * 2.0) + x), [(8, 8)], r"input is a caller's array \(variable\)"
    ),
    "still read later": Refusal(
        lambda x, w: _still_read(x), [(8, 8)], r"input still read at step \d+ \(by %\d+ \w+\)"
    ),
    "a view": Refusal(
        lambda x, w: F.sum(F.tanh(F.reshape(F.exp(x), (64,)))),
        [(8, 8)],
        r"input is a view \(reshape\) of %\d+",
    ),
    "another shape": Refusal(
        lambda x, w: F.sum(F.exp(x) + F.exp(x * x) @ w),
        [(8, 1)],
        r"input differs in shape or dtype",
        (1, 8),
    ),
    "an output": Refusal(lambda x, w: _output_input(x), [(8, 8)], r"input has no planned buffer"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refused_in_place_candidates_say_why(name):
    case = REFUSALS[name]
    w = S.variable(np.ones(case.weight, np.float32), name="w")
    graph, plan = _planned(case.build, case.shapes, (w,))
    check_plan(graph, plan)
    reasons = [reason for _, _, reason in plan.refused]
    assert any(re.fullmatch(case.reason, r) for r in reasons), reasons
    assert all(isinstance(n, int) and isinstance(i, int) for n, i, _ in plan.refused)


def test_the_still_read_reason_names_the_step_that_reads():
    graph, plan = _planned(lambda x: _still_read(x), [(8, 8)])
    pos = _position(graph)
    ((node, victim, reason),) = [r for r in plan.refused if "still read" in r[2]]
    reader = next(n for n in graph.nodes if n.op_name == "mul")
    with graph.numbering.active():
        assert reason == f"input still read at step {pos[reader.id]} (by {reader.label} mul)"
    assert plan.lifetimes[victim] == (pos[victim], pos[reader.id])
    assert plan.in_place == {reader.id: node}  # mul then overwrites tanh's value, dying there


def test_the_plan_is_plain_data_with_a_summary():
    graph, plan = _planned(lambda x: F.sum(F.sqrt(F.exp(x) * 2.0 + 1.0)), [(16, 32)])
    check_plan(graph, plan)
    assert isinstance(plan.buffers, list) and isinstance(plan.assignment, dict)
    assert len(plan.assignment) == 4 and len(plan.buffers) == 1  # exp's buffer, handed on
    assert len(plan.in_place) == 3  # mul, add and sqrt overwrite their dying input
    assert plan.intermediate_bytes == 4 * 16 * 32 * 4  # the returned sum is not planned
    assert plan.planned_bytes == 16 * 32 * 4
    summary = plan.summary()
    assert summary.startswith("4 values in 1 buffers") and "3 in place" in summary


def test_the_report_lists_each_in_place_decision_and_each_refusal():
    x = S.placeholder((16, 32), name="x")
    f = S.compile(
        F.sum(F.tanh(F.exp(x) @ F.transpose(F.exp(x)))), inputs=[x], optimize=2, disable=["fusion"]
    )
    (stage,) = [s for s in f.report.stages if s.stage == "memory"]
    plan = f.graph.memory
    assert stage.changes[0] == plan.summary()
    local = {n.id: f.graph.numbering.label(n) for n in f.graph.nodes}
    ops = {n.id: n.op_name for n in f.graph.nodes}
    written = [f"{local[n]} writes in place into {local[v]}" for n, v in plan.in_place.items()]
    refused = [
        f"{local[n]} {ops[n]} not in place over {local[i]}: {why}" for n, i, why in plan.refused
    ]
    assert stage.changes[1:] == written + list(dict.fromkeys(refused))
    assert plan.in_place and plan.refused  # tanh overwrites the matmul's dying output
    assert f"    {refused[0]}" in str(f.report)


# ---- reuse -------------------------------------------------------------------------------


def _long_chain(x):
    """Over 70 values, each read by the next two steps: only a few are alive at once."""
    older, newer = x * 0.5, F.tanh(x)
    for k in range(18):
        older, newer = newer, F.tanh(newer) * 0.9 + older * (0.1 + k / 100)
    return F.sum(newer)


def _square_matmuls(x):
    h = x
    for _ in range(6):
        h = F.tanh(h @ x)  # matmul cannot write in place: its output needs a dead buffer
    return F.sum(h)


@pytest.mark.parametrize(
    "build, most_buffers",
    [(_long_chain, 4), (_square_matmuls, 3)],
    ids=["elementwise chain", "matmul chain"],
)
def test_dead_buffers_are_reused(build, most_buffers):
    graph, plan = _planned(build, [(32, 32)])
    check_plan(graph, plan)
    assert len(plan.assignment) >= 12
    assert len(plan.buffers) <= most_buffers < len(plan.assignment)
    assert plan.planned_bytes * 3 <= plan.intermediate_bytes


@settings(max_examples=60, deadline=None)
@given(program=programs())
def test_random_graphs_keep_the_plan_invariants(program):
    arrays = [np.ones(s, program.dtype) for s in program.shapes]
    inputs = _placeholders(arrays)
    out = run(program, inputs)
    outputs = [out, *S.grad(F.sum(out), inputs)]
    f = S.compile(outputs, inputs=inputs, optimize=2)
    check_plan(f.graph, f.graph.memory)


# ---- outputs and views -------------------------------------------------------------------

OUTPUTS = {
    "after intermediates": lambda x: F.sqrt(F.exp(x) * 2.0 + 1.0) @ x,
    "a view of an intermediate": lambda x: F.transpose(F.tanh(x @ x) * 2.0),
    "returned and read further": lambda x: [F.exp(x @ x), F.tanh(F.exp(x @ x)) * 3.0],
    "an elementwise root": lambda x: F.tanh(x @ x) + 1.0,
}


@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("optimize", [1, 2])
def test_a_returned_array_is_not_overwritten_by_the_next_call(name, optimize, rng):
    x = S.placeholder((64, 64), name="x")
    f = S.compile(OUTPUTS[name](x), inputs=[x], optimize=optimize)
    feeds = [rng.normal(size=(64, 64)).astype(np.float32) for _ in range(2)]
    first = as_list(f(feeds[0]))
    saved = [a.copy() for a in first]
    second = as_list(f(feeds[1]))
    for k, (kept, was, new) in enumerate(zip(first, saved, second, strict=True)):
        np.testing.assert_array_equal(kept, was, err_msg=f"output {k} changed")
        assert not np.shares_memory(kept, new) and not np.array_equal(kept, new)
    if optimize == 2:
        check_plan(f.graph, f.graph.memory)


def test_a_view_read_late_keeps_its_buffer_alive(rng):
    """a is read only through views (a transpose, a flat reshape), and those are read last:
    the values made in between (same size, so candidates for a's buffer) must get others."""
    x = S.placeholder((128, 128), name="x")
    a = F.exp(x * 0.1)
    p, flat = F.transpose(a), F.reshape(a, (-1,))
    b = F.tanh(x)
    for _ in range(4):
        b = F.sqrt(b * b + 1.0) @ x
    out = F.sum(b + p) + F.sum(F.reshape(b, (-1,)) * flat)
    f = S.compile(out, inputs=[x], optimize=2, disable=["fusion"])
    plan, pos = f.graph.memory, _position(f.graph)
    check_plan(f.graph, plan)
    (a_node,) = [n for n in f.graph.nodes if n.op_name == "exp"]
    last_reader = max(
        pos[n.id]
        for n in f.graph.nodes
        if any(getattr(i, "op_name", "") == "permute" for i in n.inputs)
    )
    assert plan.lifetimes[a_node.id][1] >= last_reader
    want = S.compile(out, inputs=[x], optimize=0)
    for _ in range(3):
        feed = rng.normal(size=(128, 128)).astype(np.float32)
        np.testing.assert_allclose(f(feed), want(feed), rtol=RTOL)


def test_no_op_writes_in_place_into_a_buffer_another_input_views(rng):
    """t + transpose(t), fused: overwriting t block by block while reading its transpose
    reads values already overwritten. An input that another input views is not dying."""
    n = 600  # 360,000 elements: the fused kernel runs in blocks over the threads
    x = S.placeholder((n, n), name="x")
    t = F.exp(x * 0.01)
    out = F.sum(F.tanh(t + F.transpose(t)) * 2.0, axis=0)
    f = S.compile(out, inputs=[x], optimize=2)
    check_plan(f.graph, f.graph.memory)
    (fused,) = [
        n for n in f.graph.ops if any(getattr(a, "op_name", "") == "permute" for a in n.inputs)
    ]
    assert fused.id not in f.graph.memory.in_place
    # either refused for the view, or (reading a transposed layout) given no buffer at all
    assert fused.id not in f.graph.memory.assignment or any(
        node == fused.id and "view" in reason for node, _, reason in f.graph.memory.refused
    )
    feed = rng.normal(size=(n, n)).astype(np.float32)
    np.testing.assert_allclose(f(feed), S.compile(out, inputs=[x], optimize=0)(feed), rtol=RTOL)


# ---- arrays that alias a variable ---------------------------------------------------------

W0 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)


class Alias(NamedTuple):
    build: Callable  # (w, v) variables -> (outputs, updates)
    outputs: list  # what the step returns: values of before the step
    v_after: np.ndarray


ALIASES = {
    "a returned variable": Alias(lambda w, v: ([w], {w: w * 2.0}), [W0], np.zeros((2, 2))),
    "a returned view of a variable": Alias(
        lambda w, v: ([F.transpose(w), F.reshape(w, (4,))], {w: w * 2.0}),
        [W0.T, W0.reshape(4)],
        np.zeros((2, 2)),
    ),
    "an update that views an updated variable": Alias(
        lambda w, v: ([F.sum(w)], {w: w * 2.0, v: F.transpose(w)}), [W0.sum()], W0.T
    ),
}


@pytest.mark.parametrize("name", ALIASES)
def test_values_that_alias_a_variable_are_read_before_any_update(name):
    """A step returns, and updates from, the values of before the step (updates are written
    after the outputs are computed): a view of a variable must be copied before an update
    overwrites that variable."""
    case = ALIASES[name]
    w = S.variable(W0, name="w")
    v = S.variable(np.zeros((2, 2), np.float32), name="v")
    outputs, updates = case.build(w, v)
    got = S.compile(outputs, updates=updates, optimize=2)()
    for k, (value, expected) in enumerate(zip(got, case.outputs, strict=True)):
        np.testing.assert_array_equal(value, expected, err_msg=f"output {k}")
    np.testing.assert_array_equal(w.node.value.data, W0 * 2)
    np.testing.assert_array_equal(v.node.value.data, case.v_after)


# ---- values over repeated calls ----------------------------------------------------------


def _mlp(x, weights):
    h = x
    for w in weights[:-1]:
        h = F.relu(h @ w)
    return h @ weights[-1]


@pytest.mark.parametrize("disable", [["fusion"], []], ids=["memory", "fusion+memory"])
def test_forward_and_backward_equal_optimize_0_call_after_call(disable, rng):
    x = S.placeholder((256, 256), name="x")
    weights = [S.variable(rng.normal(size=(256, 256)) / 16, name=f"w{i}") for i in range(3)]
    loss = F.mean(F.tanh(_mlp(x, weights)) ** 2)
    outputs = [loss, *S.grad(loss, [x, *weights])]
    f = S.compile(outputs, inputs=[x], optimize=2, disable=disable)
    want = S.compile(outputs, inputs=[x], optimize=0)
    assert f.graph.memory.in_place and len(f.graph.memory.buffers) > 1
    check_plan(f.graph, f.graph.memory)
    for call in range(3):  # the same buffers, refilled by every call
        feed = rng.normal(size=(256, 256)).astype(np.float32)
        for k, (got, expected) in enumerate(zip(f(feed), want(feed), strict=True)):
            np.testing.assert_allclose(
                got, expected, rtol=RTOL, atol=ATOL, err_msg=f"call {call}, output {k}"
            )


@pytest.mark.parametrize("disable", [["fusion"], []], ids=["memory", "fusion+memory"])
def test_training_steps_equal_optimize_0(disable, rng):
    """Updates read planned buffers after everything else ran: each step's weights, losses
    and next weights must match an unplanned step."""
    shapes = [(400, 300), (300, 300), (300, 10)]  # w1 and w2 exceed 64K elements
    init = [(rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32) for s in shapes]

    def compile_step(optimize, disable=()):
        weights = [S.variable(w.copy(), name=f"w{i}") for i, w in enumerate(init)]
        x, t = S.placeholder((64, 400), name="x"), S.placeholder((64, 10), name="t")
        loss = F.mse_loss(_mlp(x, weights), t)
        grads = S.grad(loss, weights)
        step = S.compile(
            loss,
            inputs=[x, t],
            optimize=optimize,
            disable=disable,
            updates={w: w - 0.1 * g for w, g in zip(weights, grads)},
        )
        return step, [w.node.value for w in weights]

    planned, weights = compile_step(2, disable)
    reference, ref_weights = compile_step(0)
    check_plan(planned.graph, planned.graph.memory)
    for step in range(3):
        x = rng.normal(size=(64, 400)).astype(np.float32)
        t = rng.normal(size=(64, 10)).astype(np.float32)
        np.testing.assert_allclose(
            planned(x, t), reference(x, t), rtol=RTOL, err_msg=f"loss at step {step}"
        )
        for k, (w, r) in enumerate(zip(weights, ref_weights)):
            np.testing.assert_allclose(
                w.data, r.data, rtol=RTOL, atol=1e-6, err_msg=f"w{k} after step {step}"
            )
    assert not np.allclose(weights[0].data, init[0])


def test_a_deep_mlp_plans_far_fewer_bytes_than_its_intermediates(rng):
    """8 layers of 512, batch 256, forward and backward: most activations and gradients die
    early, so a handful of buffers holds them all."""
    x = S.placeholder((256, 512), name="x")
    weights = [
        S.variable(rng.normal(size=(512, 512)) / np.sqrt(512), name=f"w{i}") for i in range(8)
    ]
    loss = F.mean(_mlp(x, weights) ** 2)
    f = S.compile([loss, *S.grad(loss, weights)], inputs=[x], optimize=2)
    plan = f.graph.memory
    check_plan(f.graph, plan)
    assert plan.intermediate_bytes >= 30 * 256 * 512 * 4
    assert plan.planned_bytes <= 0.4 * plan.intermediate_bytes, plan.summary()


def test_values_in_a_transposed_layout_keep_numpys_memory_order():
    """numpy gives the result of an op on a transposed view that view's memory order; a
    C-order buffer would change what later ops read (and slow their reductions)."""
    x = S.placeholder((8, 4))
    y = F.tanh(F.transpose(x) * 2.0)  # elementwise on a permute: numpy's order kept
    z = F.exp(x * 3.0)  # plain: planned
    f = S.compile([F.sum(y, 0), F.sum(z)], inputs=[x], optimize=2, disable=["fusion"])
    planned = {n.op_name for n in f.graph.nodes if n.id in f.graph.memory.assignment}
    assert "exp" in planned or "mul" in planned
    assert "tanh" not in planned


# ---- control flow that hands an input back ------------------------------------------------


def _two_conds_step(optimize: int, disable: tuple = ()) -> tuple:
    """Issue 10, item 1: two conds read one variable; an untaken `v + e` leaves the operand
    passed through unchanged, and the conds of the gradient pass their cotangents through."""
    a, b, e = (S.variable(np.float32(v), name=n) for n, v in (("a", 1), ("b", 2), ("e", 3)))
    x = S.placeholder((4,), name="x")
    p, q = S.placeholder((), "bool", name="p"), S.placeholder((), "bool", name="q")
    y = F.cond(p, lambda v: v + e, lambda v: v, a + b * x)
    y = F.cond(q, lambda v: v + e, lambda v: v, y)
    loss = F.sum(y * y)
    grads = S.grad(loss, [a, b, e])
    step = S.compile(
        [loss],
        inputs=[x, p, q],
        optimize=optimize,
        disable=disable,
        updates={v: v - 0.01 * g for v, g in zip((a, b, e), grads)},
    )
    return step, [v.node.value for v in (a, b, e)]


@pytest.mark.parametrize("disable", [["fusion"], []], ids=["memory", "fusion+memory"])
@pytest.mark.parametrize("p, q", [(True, False), (False, True), (True, True), (False, False)])
def test_two_conds_reading_one_variable_train_as_at_optimize_0(p, q, disable):
    """Unfused is the graph of the report: 4 elements are below fusion's size threshold."""
    xs = np.arange(4, dtype=np.float32)
    planned, weights = _two_conds_step(2, disable)
    reference, ref_weights = _two_conds_step(0)
    check_plan(planned.graph, planned.graph.memory)
    for step in range(2):
        feeds = (xs, np.bool_(p), np.bool_(q))
        np.testing.assert_allclose(planned(*feeds), reference(*feeds), rtol=RTOL)
        for name, w, r in zip("abe", weights, ref_weights):
            np.testing.assert_allclose(w.data, r.data, rtol=RTOL, err_msg=f"{name}, step {step}")
    if (p, q) == (True, False):  # the numbers of the report: eager gives a = 0.44 after one step
        planned, weights = _two_conds_step(2, disable)
        planned(xs, np.bool_(True), np.bool_(False))
        np.testing.assert_allclose(weights[0].data, 0.44, rtol=RTOL)


# Each hands back an intermediate (a planned buffer) that later values would like to reuse.
PASS_THROUGHS = {
    "cond": lambda h, w: F.cond(F.sum(w) > 0, lambda a: a, lambda a: a * w, h),
    "cond, a view": lambda h, w: F.cond(F.sum(w) > 0, F.transpose, lambda a: a * w, h),
    "cond, a captured value": lambda h, w: F.cond(F.sum(w) > 0, lambda a: h, F.tanh, h * 2.0),
    "while_loop, no step": lambda h, w: F.while_loop(
        lambda c: c[0] < 0, lambda c: (c[0] + 1, c[1] * w), (np.array(0), h)
    )[1],
    "while_loop, carry kept": lambda h, w: F.while_loop(
        lambda c: c[0] < 2, lambda c: (c[0] + 1, c[1]), (np.array(0), h)
    )[1],
    "scan, carry kept": lambda h, w: F.scan(lambda c, t: (c, t * w), h, F.stack([w, w]))[0],
    "scan, carry from xs": lambda h, w: F.scan(lambda c, t: (t, c), w, F.stack([h, h]))[0],
    "scan, xs as ys": lambda h, w: F.scan(lambda c, t: (c * w, t), w, F.stack([h, h]))[1][1],
}


@pytest.mark.parametrize("name", sorted(PASS_THROUGHS))
def test_a_value_a_control_node_passes_through_keeps_its_buffer(name, rng):
    """A control node's result is fresh memory, so the plan may reuse its inputs' buffers."""
    x = S.placeholder((6, 6), name="x")
    w = S.variable(np.full((6, 6), 0.5, np.float32), name="w")
    h = F.exp(x * 0.5)  # an intermediate: it gets a buffer, dead after the control node
    out = PASS_THROUGHS[name](h, w)
    later = F.tanh(x * 3.0) + 1.0  # same size: h's buffer is free for it
    outputs = [F.sum(out * later, axis=0), F.sum(later)]
    f = S.compile(outputs, inputs=[x], optimize=2, disable=["fusion"])
    want = S.compile(outputs, inputs=[x], optimize=0)
    check_plan(f.graph, f.graph.memory)
    for _ in range(2):
        feed = rng.normal(size=(6, 6)).astype(np.float32)
        for got, expected in zip(f(feed), want(feed), strict=True):
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_a_fused_kernel_writes_a_buffer_of_its_own():
    """numba leaves a loop scalar when its output may alias an input (7-10x slower), so the
    planner never hands a fused op its input's buffer, and says why."""
    x = S.placeholder((512, 512), name="x")
    h = F.exp(x) @ F.exp(x)  # a planned, dying input for the fused gelu below
    f = S.compile(F.sum(0.5 * h * (1.0 + F.tanh(h))), inputs=[x], optimize=2)
    (fused,) = [n for n in f.graph.ops if n.op_name.startswith("fused_")]
    plan = f.graph.memory
    assert fused.id in plan.assignment and fused.id not in plan.in_place
    assert (fused.id, None, "a fused kernel runs 7-10x slower in place") in plan.refused
