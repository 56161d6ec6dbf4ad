"""The pass pipeline: every optimize level gives eager's values (random graphs, forward and
gradients), passes can be switched off by name, and `f.report` records each pass with a
snapshot of the graph and prints as a table."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symbolic as S
from common import functional as F
from symbolic.graph import Graph
from symbolic.passes import PIPELINES, pass_names
from tests.symbolic.test_differential import both_ways, programs

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


@settings(max_examples=100, deadline=None)
@given(program=programs(), seed=st.integers(0, 2**32 - 1))
def test_every_optimize_level_gives_eager_values_and_gradients(program, seed):
    arrays, inputs, outputs, want = both_ways(program, seed)
    tol = TOLERANCE[program.dtype]
    for optimize in sorted(PIPELINES):
        got = S.compile(outputs, inputs=inputs, optimize=optimize)(*arrays)
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            what = f"optimize={optimize}, " + ("output" if k == 0 else f"d/d input {k - 1}")
            g, w = np.asarray(g), np.asarray(w)
            assert (g.dtype, g.shape) == (w.dtype, w.shape), what
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=what)


def _example_body(x):
    """A function that gives every pass something to do."""
    c = S.constant(np.float32(2.0))
    F.tanh(x)  # dead code
    return F.exp(x * 1) + F.exp(x) * F.exp(c)  # simplify, cse, constant folding


def _compile(**options):
    x = S.placeholder((3,), name="x")
    return S.compile(_example_body, inputs=[x], **options)


@pytest.mark.parametrize("optimize", sorted(PIPELINES))
def test_the_report_has_one_stage_per_pass_of_the_level(optimize):
    f = _compile(optimize=optimize)
    assert [s.stage for s in f.report.stages] == ["trace"] + [n for n, _ in PIPELINES[optimize]]


def test_the_top_level_runs_every_pass_once():
    names = pass_names()
    assert len(set(names)) == len(names)
    assert all(name in names for level in PIPELINES.values() for name, _ in level)
    assert set(names) >= {"constant_folding", "simplify", "cse", "dce"}
    assert PIPELINES[0] == []


def test_every_pass_has_work_in_the_example():
    """Otherwise the tests below could not tell a skipped pass from an idle one."""
    f = _compile(optimize=2)
    assert all(s.changes for s in f.report.stages[1:]), str(f.report)


@pytest.mark.parametrize("skipped", pass_names())
def test_a_disabled_pass_is_skipped(skipped):
    f = _compile(optimize=2, disable=[skipped])
    assert [s.stage for s in f.report.stages] == ["trace"] + [
        n for n in pass_names() if n != skipped
    ]
    reference = _compile(optimize=0)
    feed = np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_allclose(f(feed), reference(feed), rtol=1e-6)


def test_disabling_simplify_leaves_its_patterns_in_place():
    later = [n for n in pass_names() if n not in ("constant_folding", "simplify", "cse", "dce")]
    kept = _compile(optimize=2, disable=["simplify", *later])  # e.g. fusion would hide the mul
    simplified = _compile(optimize=2, disable=later)
    mul_of_one = [n for n in kept.graph.ops if n.op_name == "mul" and 1 in n.inputs]
    assert len(mul_of_one) == 1
    assert not [n for n in simplified.graph.ops if n.op_name == "mul" and 1 in n.inputs]


def test_disabling_every_pass_keeps_the_traced_graph():
    f = _compile(optimize=2, disable=pass_names())
    assert f.graph.nodes == f.traced_graph.nodes
    assert [s.stage for s in f.report.stages] == ["trace"]


@pytest.mark.parametrize("disable", [["simplfy"], ["simplify", "fuse_everything"]])
def test_an_unknown_pass_name_raises_listing_the_passes(disable):
    with pytest.raises(ValueError) as info:
        _compile(optimize=2, disable=disable)
    message = str(info.value)
    assert all(name in message for name in pass_names())
    assert [d for d in disable if d not in pass_names()][0] in message


def test_an_unknown_pass_name_raises_even_at_optimize_0():
    with pytest.raises(ValueError, match="simplfy"):
        _compile(optimize=0, disable=["simplfy"])


def test_a_single_pass_name_may_be_given_as_a_string():
    """`disable="simplify"` must mean the pass, not the letters s, i, m, p, l, f, y."""
    f = _compile(optimize=2, disable="simplify")
    assert "simplify" not in [s.stage for s in f.report.stages]


def test_an_unknown_optimize_level_raises_listing_the_levels():
    with pytest.raises(ValueError, match=re.escape(str(sorted(PIPELINES)))):
        _compile(optimize=7)


def test_each_stage_keeps_a_snapshot_of_the_graph_after_it():
    f = _compile(optimize=2)
    stages = f.report.stages
    assert stages[0].graph.nodes == f.traced_graph.nodes
    for before, after in zip(stages, stages[1:]):
        assert isinstance(after.graph, Graph), after.stage
        assert after.nodes_before == before.nodes_after == len(before.graph.nodes), after.stage
        assert after.nodes_after == len(after.graph.nodes), after.stage
        assert str(after.graph).startswith("graph(")
    assert stages[-1].graph.nodes == f.graph.nodes
    # a snapshot is the graph of its own stage: folding leaves the old constant for dce
    (folding,) = [s for s in stages if s.stage == "constant_folding"]
    (pruning,) = [s for s in stages if s.stage == "dce"]
    assert len(folding.graph.constants) == 2 and len(pruning.graph.constants) == 1


def test_the_report_prints_as_a_table_naming_every_pass():
    f = _compile(optimize=2)
    text = str(f.report)
    lines = text.splitlines()
    assert re.match(r"^stage\s+nodes\s+ms\s+changes$", lines[0])
    row = re.compile(r"^(\w+)\s+(\d+) -> (\d+)\s+(\d+\.\d\d)\s+(\d+)$")
    rows = {m.group(1): m for m in map(row.match, lines) if m}
    assert list(rows) == ["trace"] + pass_names()
    for stage in f.report.stages:
        m = rows[stage.stage]
        assert (int(m.group(2)), int(m.group(3)), int(m.group(5))) == (
            stage.nodes_before,
            stage.nodes_after,
            len(stage.changes),
        )
        assert all(f"    {change}" in lines for change in stage.changes[:20])
    plan = [line for line in lines if line.startswith("plan: ")]
    assert len(plan) == 1 and re.match(
        r"^plan: \d+ lines of Python, compiled in \d+\.\d ms$", plan[0]
    )
    for op in f.report.fused_kernels:  # then each fused kernel with its generated source
        assert f"{op.name}: {op.doc}" in text and op.kernel.source.splitlines()[0] in text
