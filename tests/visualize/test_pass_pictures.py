"""The pass timeline (what each pass added, removed, merged, replaced or fused) and the
memory-plan chart."""

import numpy as np
import pytest
from PIL import Image

import symbolic as S
from common import functional as F
from compare import zoo
from compare.pictures import compile_model
from symbolic import visualize as V
from symbolic.visualize import diff_graphs, pass_dots


def stage_diffs(fn) -> dict:
    stages = fn.report.stages
    return {s.stage: diff_graphs(stages[i - 1].graph, s.graph) for i, s in enumerate(stages) if i}


@pytest.fixture
def small():
    """exp(x) twice (CSE merges them), x**2 (simplify makes it a multiply), a dead tanh
    (DCE removes it), and elementwise chains for fusion."""
    x = S.placeholder((4, 3), name="x")

    def f(x):
        F.tanh(x)  # never used
        a, b = F.exp(x), F.exp(x)
        return ((a + b) * x**2).sum()

    return S.compile(f, inputs=[x])


def test_each_pass_is_found_doing_what_it_reports(small):
    diffs = stage_diffs(small)
    assert list(diffs.values()) and all(
        d.ghosts == [] for name, d in diffs.items() if name in ("constant_folding", "memory")
    )
    replaced = diffs["simplify"]
    assert [n.op_name for n in replaced.ghosts] == ["pow"]
    assert list(replaced.how.values()) == ["replaced"]
    after = small.report.stages[2].graph
    assert [n.op_name for n in after.nodes if n.id in replaced.added] == ["mul"]
    merged = diffs["cse"]
    assert [(n.op_name, merged.how[n.id]) for n in merged.ghosts] == [("exp", "merged")]
    assert not merged.added
    removed = diffs["dce"]
    assert [n.op_name for n in removed.removed] == ["tanh"] and not removed.merged
    fusion = diffs["fusion"]
    fused = [n for n in small.graph.nodes if n.op_name.startswith("fused_")]
    assert fusion.added == {n.id for n in fused}
    assert set(fusion.how.values()) == {"fused"}
    assert len(fusion.ghosts) == sum(len(n.op.kernel.program.steps) for n in fused)


def test_rebuilt_nodes_are_not_called_new():
    """Fusion rebuilds every user of a fused group; only the fused nodes are new."""
    fn = compile_model(zoo.get("mlp_digits"), "grad", 2, 8, 16)
    for name, diff in stage_diffs(fn).items():
        changes = next(s.changes for s in fn.report.stages if s.stage == name)
        if name in ("simplify", "cse", "dce", "fusion"):
            assert len(diff.ghosts) >= len(changes) - (name == "fusion")
        assert len(diff.added) <= len(diff.ghosts)


def test_the_timeline_draws_ghosts_and_new_nodes(small, drawn):
    pictures = pass_dots(small)
    assert [name for name, _, _ in pictures] == [s.stage for s in small.report.stages]
    diffs = stage_diffs(small)
    for name, source, _ in pictures[1:]:
        picture = drawn(source)
        ghosts = [n for n in picture.nodes if n.startswith("g")]
        assert len(ghosts) == len(diffs[name].ghosts)
        for how in set(diffs[name].how.values()):
            assert how in picture.texts
    assert "removed" in drawn(dict((n, s) for n, s, _ in pictures)["dce"]).texts
    fusion = dict((n, s) for n, s, _ in pictures)["fusion"]
    new = [ln for ln in fusion.splitlines() if 'color="#16a34a"' in ln and "penwidth=3" in ln]
    assert len(new) == len(diffs["fusion"].added)  # the new nodes, outlined in green


def test_render_passes_writes_a_folder_or_one_page(small, tmp_path, drawn):
    written = V.render_passes(small, tmp_path / "passes")
    assert [p.name for p in written] == [
        f"{i:02d}_{s.stage}.svg" for i, s in enumerate(small.report.stages)
    ]
    assert all(p.read_text().lstrip().startswith("<?xml") for p in written)
    (page,) = V.render_passes(small, tmp_path / "passes.html")
    text = page.read_text()
    assert text.count("<svg") == len(small.report.stages) and "merged" in text


def test_memory_plan_chart(tmp_path):
    fn = compile_model(zoo.get("mlp_digits"), "grad", 2, 8, 16)
    path = V.render_memory_plan(fn, tmp_path / "memory.png", eager_peak=50_000)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 400
    assert fn.graph.memory.assignment  # the chart had bars to draw


def test_memory_plan_needs_the_memory_pass(tmp_path):
    x = S.placeholder((3,), name="x")
    fn = S.compile(F.exp(x) * 2, inputs=[x], optimize=1)
    with pytest.raises(ValueError, match="optimize=2"):
        V.render_memory_plan(fn, tmp_path / "m.png")


def test_memory_plan_with_nothing_planned(tmp_path):
    a = S.placeholder(name="a")
    fn = S.compile((a * 2.0) + np.float32(1), inputs=[a])
    assert V.render_memory_plan(fn, tmp_path / "m.svg").read_text().count("<svg") == 1


def test_duplicates_below_a_rewrite_are_rebuilt_not_new(drawn):
    """Two copies of tanh(h) (CSE merges them later) read a value that simplify rewrites:
    both are rebuilt, so the picture counts what the report lists, two identities replaced
    by their operand, not a cascade of 'added' and 'merged' nodes (it said 6 added, 4
    replaced, 3 merged)."""
    x = S.placeholder((4, 8), name="x")
    w1 = S.variable(np.ones((8, 8), np.float32), name="w1")
    h = (x @ w1) * 1.0 + 0.0
    y = 0.5 * F.tanh(h) + F.tanh(h)
    fn = S.compile(y, inputs=[x], optimize=2)
    diffs = stage_diffs(fn)
    simplify = diffs["simplify"]
    changes = next(s.changes for s in fn.report.stages if s.stage == "simplify")
    assert len(changes) == 2
    assert not simplify.added and not simplify.removed
    assert list(simplify.how.values()) == ["replaced", "replaced"]
    assert {n.op_name for n in simplify.ghosts} == {"mul", "add"}
    matmul = next(n for n in fn.report.stages[2].graph.nodes if n.op_name == "matmul")
    assert all(into is matmul for into in simplify.merged.values())  # both: x @ w1 now
    cse = diffs["cse"]
    assert [(n.op_name, cse.how[n.id]) for n in cse.ghosts] == [("tanh", "merged")]
    assert not cse.added
    pictures = {name: drawn(source).texts for name, source, _ in pass_dots(fn)}
    assert "2. simplify: 9 → 7 nodes; 2 replaced" in pictures["simplify"]
    assert "3. cse: 7 → 6 nodes; 1 merged" in pictures["cse"]


def test_an_identity_returned_as_the_output_is_replaced_by_its_operand():
    x = S.placeholder((3,), name="x")
    fn = S.compile(F.exp(x) * 1.0, inputs=[x], optimize=1)
    diff = stage_diffs(fn)["simplify"]
    ((old, into),) = diff.merged.items()
    assert diff.how[old] == "replaced" and into.op_name == "exp" and not diff.added
