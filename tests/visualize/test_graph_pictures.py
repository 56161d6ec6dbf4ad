"""Symbolic graph pictures, checked in the SVG that the real `dot` draws: every zoo model in
every stage, the regions of a training step, collapsing and the cap, determinism, and the
fallback where Graphviz is missing."""

import shutil

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from compare import zoo
from compare.pictures import compile_model
from symbolic import visualize as V


def bodies(node):
    found = []
    for value in node.params.values():
        for part in value if isinstance(value, tuple) else (value,):
            if isinstance(getattr(part, "graph", None), S.Graph):
                found.append(part.graph)
    return found


def fused(node):
    return not node.is_source and node.op.name.startswith("fused_")


def expected_nodes(graph) -> int:
    """One per node; a fused kernel draws its member ops, a control node its bodies; each
    update draws the variable where it is written."""
    count = len(graph.updates)
    for n in graph.nodes:
        if fused(n):
            count += len(n.op.kernel.program.steps)
        else:
            count += 1 + sum(expected_nodes(b) for b in bodies(n))
    return count


def graphs_of(fn, stage):
    return {
        "traced": [fn.traced_graph],
        "optimized": [fn.graph],
        "both": [fn.traced_graph, fn.graph],
    }[stage]


@pytest.fixture(scope="module")
def compiled():
    cache = {}

    def get(name):
        if name not in cache:
            model = zoo.get(name)
            cache[name] = compile_model(model, "grad", 2, *model.test_sizes)
        return cache[name]

    return get


@pytest.mark.parametrize("stage", V.STAGES)
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_every_zoo_model_in_every_stage(name, stage, compiled, drawn):
    fn = compiled(name)
    picture = drawn(V.to_dot(fn, stage))
    graphs = graphs_of(fn, stage)
    assert len(picture.graph_nodes) == sum(expected_nodes(g) for g in graphs)
    assert "legend" in picture.nodes and "note" not in picture.nodes
    n_fused = sum(fused(n) for g in graphs for n in g.nodes)
    assert len(picture.fused_clusters()) == n_fused
    texts = set(picture.texts)
    for g in graphs:
        for n in g.nodes:
            assert (
                n.name
                if n.op in ("placeholder", "variable")
                else f"fused kernel {0}"
                if fused(n)
                else n.op_name
            ) in texts or n.op == "constant"
        for i in range(len(g.outputs)):
            assert any(t.startswith(f"output {i}") or f", {i} :" in t for t in texts)
    assert all(f"fused kernel {k}" in texts for k in range(n_fused if stage != "both" else 0))
    if stage == "both":
        assert {"cluster_stage_traced", "cluster_stage_optimized"} <= set(picture.clusters)


def test_gradients_are_set_apart_and_edges_carry_types(compiled, drawn):
    fn = compiled("two_layer_net")
    source = V.to_dot(fn, "traced")
    picture = drawn(source)
    assert "cluster_backward" in picture.clusters
    x = fn.traced_graph.inputs[0]
    assert x.type_str() in picture.texts  # on the placeholder and on its edges
    assert picture.texts.count(x.type_str()) >= 2
    assert "two_layer_net.py:" in source  # the user's line, as a tooltip


def test_a_training_step_shows_backward_and_updates(drawn):
    fn = compile_model(zoo.get("mlp_digits"), "train", 2, 8, 16)
    picture = drawn(V.to_dot(fn))
    assert {"cluster_backward", "cluster_update"} <= set(picture.clusters)
    written = [n for n in picture.nodes if n.startswith("u")]
    assert len(written) == len(fn.graph.updates) == 12  # six weights, six momenta
    assert picture.texts.count("update") == len(fn.graph.updates)
    assert len(picture.graph_nodes) == expected_nodes(fn.graph)


def test_a_forward_graph_has_no_backward_part(drawn):
    fn = compile_model(zoo.get("mlp_digits"), "forward", 2, 8, 16)
    picture = drawn(V.to_dot(fn))
    assert "cluster_backward" not in picture.clusters
    assert "cluster_update" not in picture.clusters


def test_the_scan_of_the_rnn_draws_its_bodies(compiled, drawn):
    fn = compiled("rnn_varlen")
    picture = drawn(V.to_dot(fn, "optimized"))
    scans = [n for n in fn.graph.nodes if n.op_name == "scan"]
    assert len(scans) == 2  # the forward scan and its reverse (the gradient)
    assert len([c for c in picture.clusters if c.endswith("body")]) == 2
    assert any(t.startswith("scan body, run") for t in picture.texts)
    assert {"= xs[t]", "= mask[t]"} <= set(picture.texts)  # what the body's inputs take


def test_cond_draws_both_branches(drawn):
    x = S.placeholder((3,), name="x")
    y = F.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)
    picture = drawn(V.to_dot(y))
    assert len([c for c in picture.clusters if c.endswith("body")]) == 2
    assert {"cond branches 0", "cond branches 1"} <= set(picture.texts)


def test_pythagoras_traced_and_optimized(drawn):
    a, b = S.placeholder((4,), name="a"), S.placeholder((4,), name="b")
    c = (a**2 + b**2) ** 0.5
    fn = S.compile(c, inputs=[a, b])
    traced, optimized = drawn(V.to_dot(fn, "traced")), drawn(V.to_dot(fn, "optimized"))
    assert traced.texts.count("pow") == 3 and "(·, 0.5)" in traced.texts
    assert "sqrt" in optimized.texts and len(optimized.fused_clusters()) == 1
    assert "output 0 : f32[4]" in optimized.texts


def test_dot_text_is_deterministic():
    """Built twice, the graphs differ in every node id and fused op name, not in the text."""
    model = zoo.get("mlp_digits")
    first, second = (compile_model(model, "train", 2, 8, 16) for _ in range(2))
    assert first.graph.nodes[-1].id != second.graph.nodes[-1].id
    for stage in V.STAGES:
        assert V.to_dot(first, stage) == V.to_dot(second, stage)
        assert V.to_dot(first, stage) == V.to_dot(first, stage)
    assert V.to_dot(first, collapse=True) == V.to_dot(second, collapse=True)


def test_collapse_draws_one_box_per_source_line(compiled, drawn):
    fn = compiled("mlp_digits")
    picture = drawn(V.to_dot(fn, "traced", collapse=True))
    boxes = [n for n in picture.nodes if n.startswith("c")]
    assert 2 <= len(boxes) <= 4  # the layers' line, the loss line, the S.grad line
    assert len(picture.graph_nodes) < len(fn.traced_graph.nodes) / 3
    assert any(t.startswith("mlp_digits.py:") for t in picture.texts)


def test_a_cap_on_nodes_says_so(compiled, drawn):
    fn = compiled("attention")
    picture = drawn(V.to_dot(fn, "traced", max_nodes=40))
    assert len(picture.graph_nodes) == 40
    assert "note" in picture.nodes
    assert any("max_nodes=40" in t for t in picture.texts)


def test_render_writes_each_format(tmp_path, compiled):
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot is not installed")
    fn = compiled("neuron")
    for fmt in ("svg", "png", "pdf", "dot"):
        path = V.render(fn, tmp_path / f"g.{fmt}")
        assert path == tmp_path / f"g.{fmt}" and path.stat().st_size > 100
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "g.pdf").read_bytes()[:4] == b"%PDF"
    assert fn.render(tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    assert V.to_dot(fn.graph).startswith("digraph")


def test_notebooks_show_graphs_as_svg(compiled):
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot is not installed")
    fn = compiled("pythagoras")
    assert "<svg" in fn._repr_svg_() and "<svg" in V.svg(fn.graph)


def test_without_dot_the_source_is_written_with_a_hint(tmp_path, monkeypatch, capsys, compiled):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    fn = compiled("neuron")
    path = V.render(fn, tmp_path / "g.svg")
    assert path == tmp_path / "g.dot" and path.read_text().startswith("digraph")
    assert not (tmp_path / "g.svg").exists()
    err = capsys.readouterr().err
    assert "Graphviz" in err and "install" in err and str(path) in err
    assert fn._repr_svg_() is None and V.svg(fn.graph) is None


def test_bad_stages_are_explained(compiled):
    fn = compiled("neuron")
    with pytest.raises(ValueError, match="stage must be one of"):
        V.to_dot(fn, "after")
    with pytest.raises(ValueError, match="needs a compiled function"):
        V.to_dot(fn.graph, "both")
    with pytest.raises(ValueError, match="format"):
        V.render(fn, "g.jpeg")


def test_symbols_draw_their_graph(drawn):
    w = S.variable(np.ones(3), name="w")
    x = S.placeholder((3,), name="x")
    picture = drawn(V.to_dot((x * w).sum()))
    assert {"w", "x", "mul", "sum"} <= set(picture.texts)


def test_backward_nodes_are_tagged_by_grad_not_guessed_from_the_source_line():
    """The forward and its gradient written on one line: the tag S.grad sets tells them
    apart (a guess from the text could not), and every pass keeps the tag."""
    x = S.placeholder((4,), name="x")
    loss, (dx,) = (y := F.sum(F.tanh(x) * x)), S.grad(y, [x])  # noqa: F841 one line on purpose
    assert not loss.node.backward and dx.node.backward
    fn = S.compile([loss, dx], inputs=[x], optimize=2)
    regions = V.regions_of(fn.graph)
    made_by_grad = {n.id for n in fn.graph.nodes if n.backward}  # the seed constant too
    assert made_by_grad and {n.id for n in fn.graph.ops} - made_by_grad  # both kinds survive
    assert {i for i, r in regions.items() if r == "backward"} == made_by_grad
