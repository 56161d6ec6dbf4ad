"""Symbolic graph pictures, checked in the SVG that the real `dot` draws: every zoo model in
every stage, the regions of a training step, what outputs and branches are called, the
memory plan on the nodes, collapsing, the cap, determinism, and the fallback where Graphviz
is missing."""

import re
import shutil

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from compare import zoo
from compare.pictures import compile_model
from symbolic import visualize as V
from symbolic.graph import Node
from symbolic.passes import fusion


def fused(node):
    return not node.is_source and node.op.name.startswith("fused_")


def passed_as_is(node, body) -> int:
    """A body's inputs that take an outer value as it is (captured weights, cond operands):
    drawn once, outside, not again in the body."""
    cond = node.op_name == "cond"
    first = 0 if cond else node.params.get("n_carry", 0) + node.params.get("n_xs", 0)
    outer = node.inputs[1:] if cond else node.inputs
    return sum(isinstance(o, Node) for o in outer[first : len(body.inputs)])


def expected_nodes(graph) -> int:
    """One per node; a fused kernel draws its member ops, a control node its bodies; each
    update draws the variable where it is written."""
    count = len(graph.updates)
    for n in graph.nodes:
        if fused(n):
            count += len(n.op.kernel.program.steps)
        else:
            bodies = [b for _, b in V.bodies_of(n)]
            count += 1 + sum(expected_nodes(b) - passed_as_is(n, b) for b in bodies)
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

    def get(name, sizes="test"):
        if (name, sizes) not in cache:
            model = zoo.get(name)
            size = model.test_sizes if sizes == "test" else (None, None)
            cache[name, sizes] = compile_model(model, "grad", 2, *size)
        return cache[name, sizes]

    return get


@pytest.mark.parametrize("stage", V.STAGES)
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_every_zoo_model_in_every_stage_node_by_node(name, stage, compiled, drawn):
    fn = compiled(name)
    picture = drawn(V.to_dot(fn, stage, collapse=False))
    graphs = graphs_of(fn, stage)
    assert len(picture.graph_nodes) == sum(expected_nodes(g) for g in graphs)
    assert "legend" in picture.texts and "note" not in picture.nodes
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
    said = V.facts.output_names(fn.traced_graph)
    for i, meaning in enumerate(said):
        assert meaning in texts or any(
            t.startswith(f"output {i}") or f", {i} :" in t for t in texts
        )
    assert all(f"fused kernel {k}" in texts for k in range(n_fused if stage != "both" else 0))
    if stage == "both":
        assert {"cluster_stage_traced", "cluster_stage_optimized"} <= set(picture.clusters)


@pytest.mark.parametrize("stage", V.STAGES)
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_every_zoo_picture_fits_a_projector_and_flows_down(
    name, stage, compiled, laid_out, monkeypatch
):
    """At default options and sizes (as `diptych graph MODEL` draws them), no picture is
    wider than 1,600 pixels, and none got there by shrinking its text below 80% (the RNN,
    attention and GELU graphs were 3,000-5,000 pixels wide); no edge points up."""
    monkeypatch.setattr(fusion, "MIN_ELEMENTS", 1 << 16)  # fusion as outside the tests
    layout = laid_out(V.to_dot(compiled(name, "default"), stage))
    assert layout.width <= 1601, layout
    if stage != "both":  # side by side, a large pair is drawn smaller
        assert layout.natural_width <= 2000, layout
    assert layout.upward == []


@pytest.mark.parametrize("name", ["rnn_varlen", "attention", "gelu_chain"])
def test_even_drawn_node_by_node_large_graphs_flow_down(name, compiled, laid_out):
    assert laid_out(V.to_dot(compiled(name), collapse=False)).upward == []


def test_gradients_are_set_apart_named_and_edges_carry_types(compiled, drawn):
    fn = compiled("two_layer_net")
    source = V.to_dot(fn, "traced")
    picture = drawn(source)
    assert "cluster_backward" in picture.clusters
    x = fn.traced_graph.inputs[0]
    assert x.type_str() in picture.texts  # on the placeholder and on its edges
    assert picture.texts.count(x.type_str()) >= 2
    assert "two_layer_net.py:" in source  # the user's line, as a tooltip
    assert {"grad of w1", "grad of w2"} <= set(picture.texts)  # not "output 2", "output 3"
    assert not any(t.startswith(("output 2", "output 3")) for t in picture.texts)


def test_a_gradient_of_several_values_names_them_all(drawn):
    a, b = S.placeholder((3,), name="a"), S.placeholder((3,), name="b")
    loss = F.sum(a + b)
    picture = drawn(V.to_dot([loss, *S.grad(loss, [a, b])]))
    assert "grad of a = grad of b" in picture.texts or {"grad of a", "grad of b"} <= set(
        picture.texts
    )


def test_a_training_step_shows_backward_and_updates(drawn):
    fn = compile_model(zoo.get("mlp_digits"), "train", 2, 8, 16)
    picture = drawn(V.to_dot(fn, collapse=False))
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


def test_the_memory_plan_is_on_the_graph(compiled, drawn):
    """Each planned value says which buffer it writes (in its buffer's colour) and whether
    it overwrites a dying input; the caption says what the marks mean."""
    fn = compiled("mlp_digits")
    plan = fn.graph.memory
    source = V.to_dot(fn, collapse=False)
    texts = drawn(source).texts
    marks = [t for t in texts if re.match(r"■ buffer \d", t)]
    assert len(marks) == len(plan.assignment) and plan.in_place
    assert sum(t.endswith(", in place") for t in marks) == len(plan.in_place)
    assert {f"■ buffer {b}" for b in plan.assignment.values()} <= {
        t.removesuffix(", in place") for t in marks
    }
    assert any(t.startswith("memory plan:") for t in texts)
    colors = {V.memory.BUFFER_COLORS[b % 10] for b in plan.assignment.values()}
    assert all(f'COLOR="{c}"' in source for c in colors)
    assert "■ buffer" not in V.to_dot(fn, "traced")  # no plan before the passes


def test_the_scan_of_the_rnn_draws_its_body_once_with_its_loop(compiled, drawn):
    fn = compiled("rnn_varlen")
    scans = [n for n in fn.graph.nodes if n.op_name == "scan"]
    assert len(scans) == 2  # the forward scan and its reverse (the gradient)
    full = drawn(V.to_dot(fn, "optimized", collapse=False))
    assert len([c for c in full.clusters if c.endswith("body")]) == 2
    assert any(t.startswith("scan: body, run") for t in full.texts)
    assert {"= xs[t]", "= mask[t]"} <= set(full.texts)  # what the body's inputs take
    assert "next step" in full.texts  # the carry goes round
    assert full.texts.count("cell.weight_ih") == 1  # a captured weight: drawn once
    default = drawn(V.to_dot(fn))  # the reverse scan's body, too large here, is one box
    assert len([c for c in default.clusters if c.endswith("body")]) == 2
    assert "next step" in default.texts and "linear" in default.texts
    assert any("collapse=False draws them" in t for t in default.texts)


def test_cond_draws_both_branches_as_true_and_false(drawn):
    x = S.placeholder((3,), name="x")
    y = F.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)
    picture = drawn(V.to_dot(y))
    assert len([c for c in picture.clusters if c.endswith("body")]) == 2
    assert {"cond: true", "cond: false", "true", "false"} <= set(picture.texts)
    assert not any("branches" in t for t in picture.texts)


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
        for collapse in (False, True, "auto"):
            assert V.to_dot(first, stage, collapse) == V.to_dot(second, stage, collapse)
        assert V.to_dot(first, stage) == V.to_dot(first, stage)


def test_collapse_draws_a_box_per_layer_and_line(compiled, drawn):
    """mlp_digits applies its layers on one line: still a box per layer (a layer: the ops up
    to the next module's variables), and the same for their gradients; the variables that
    feed one box are one table."""
    fn = compiled("mlp_digits")
    picture = drawn(V.to_dot(fn, "traced", collapse=True))
    for k in (0, 2):  # the last layer's add is an output: drawn as itself
        assert f"reads layers.{k}.weight, layers.{k}.bias" in picture.texts
        assert f"layers.{k}.weight : {fn.traced_graph.variables[k].type_str()}" in picture.texts
    boxes = [t for t in picture.texts if t.startswith("mlp_digits.py:")]
    assert 6 <= len(boxes) <= 12, boxes  # three layers and the loss, forward and backward
    assert len(picture.graph_nodes) < len(fn.traced_graph.nodes)
    assert not any("pictures.py" in t for t in picture.texts)  # backward lines are the model's


def test_collapsed_boxes_never_close_a_cycle(compiled, laid_out):
    for name in ("gelu_chain", "attention", "lenet_digits", "rnn_varlen"):
        assert laid_out(V.to_dot(compiled(name), collapse=True)).upward == [], name


def test_a_cap_on_nodes_says_so(compiled, drawn):
    fn = compiled("attention")
    picture = drawn(V.to_dot(fn, "traced", collapse=False, max_nodes=40))
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
