"""The eager tape picture, the define-by-run animation (beside the static graph), one look
for both engines, and the `diptych graph` / `diptych tape` commands."""

import argparse
import re
import shutil

import numpy as np
import pytest
from PIL import Image

import eager as E
import symbolic as S
from common import functional as F
from common import nn, style
from compare import pictures, zoo
from eager import visualize as EV
from symbolic import visualize as V


def small_net():
    gen = np.random.default_rng(0)
    layer = nn.Linear(3, 2, generator=gen)
    x = E.tensor(gen.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    return layer, x


def test_the_tape_behind_a_tensor(drawn):
    layer, x = small_net()
    h = F.tanh(layer(x))
    h.retain_grad()
    y = (h * 2.0).sum()
    y.backward(retain_graph=True)
    picture = drawn(EV.tape_to_dot(y, names={"x": x}))
    values = EV.walk([y])
    ops = [v for v in values if getattr(v, "_node", None) is not None]
    assert [v._node.name for v in ops] == ["linear", "add", "tanh", "mul", "sum"]
    grads = [n for n in picture.nodes if n.endswith("_grad")]
    assert len(grads) == 4  # x, the weight, the bias, and h (retain_grad)
    assert len(picture.graph_nodes) == len(values) + len(grads)
    texts = picture.texts
    assert {"x", "weight", "bias", "tanh", "(·, 2)", "eager tape: 5 ops recorded"} <= set(texts)
    assert texts.count("requires grad") == 3 and "output : f32[]" in texts


def test_a_freed_tape_says_so(drawn):
    layer, x = small_net()
    y = layer(x).sum()
    y.backward()  # frees the saved values
    picture = drawn(EV.tape_to_dot(y))
    assert any(t.endswith("(their saved values freed by backward())") for t in picture.texts)


@pytest.mark.xfail(
    "recorded" not in E.Node.__slots__,
    reason="needs eager.autograd to keep what it recorded when backward() frees the saved "
    "values (Node.recorded: stand-ins with the input's tape node, shape and dtype)",
    strict=True,
)
def test_the_tape_after_backward_shows_what_was_recorded(drawn):
    """As torchviz draws a graph after backward(): the ops and their inputs stay, only the
    values they saved are gone; the leaves now show the .grad backward left."""
    layer, x = small_net()
    y = F.tanh(layer(x) * x.sum()).sum()
    before = drawn(EV.tape_to_dot(y, names={"x": x}))
    y.backward()
    after = drawn(EV.tape_to_dot(y, names={"x": x}))
    grads = [n for n in after.nodes if n.endswith("_grad")]
    assert len(grads) == 3  # x, the weight, the bias
    assert sorted(after.graph_nodes) == sorted(before.graph_nodes + grads)
    assert "freed by backward()" not in after.texts
    ops = {"linear", "add", "mul", "tanh", "sum"}
    assert ops <= set(before.texts) and ops <= set(after.texts)


def test_render_and_notebooks_draw_the_tape(tmp_path, drawn):
    """`E.render(tensor, path)` and a tensor's Jupyter SVG, as a compiled function has them."""
    layer, x = small_net()
    y = F.tanh(layer(x)).sum()
    path = E.render(y, tmp_path / "tape.svg")
    assert path == tmp_path / "tape.svg"
    assert "tanh" in drawn(EV.tape_to_dot(y)).texts and "tanh" in path.read_text()
    assert "<svg" in y._repr_svg_() and "tanh" in y._repr_svg_()
    assert x._repr_svg_() is None  # a leaf shows as numbers
    assert "render" in E.__all__ and E.render is EV.render


def test_an_op_looks_the_same_in_both_engines():
    layer, x = small_net()
    tape = EV.tape_to_dot(F.tanh(layer(x)) * 2.0)
    graph = V.to_dot(F.tanh(layer(S.placeholder((4, 3), name="x"))) * 2.0)

    def looks(source, op):
        line = next(ln for ln in source.splitlines() if f"<B>{op}</B>" in ln)
        return sorted(re.findall(r'(?:fillcolor|color|shape|style)=("[^"]*"|\w+)', line))

    for op in ("linear", "add", "tanh"):
        assert looks(tape, op) == looks(graph, op)
    assert looks(tape, "weight") == looks(graph, "weight")  # a parameter is a variable


def test_record_and_animate_one_frame_per_op(tmp_path):
    if not style.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    layer, x = small_net()
    recording = EV.record_tape(lambda t: (F.tanh(layer(t)) * 2.0).sum(), x, names={"x": x})
    assert [t._node.name for t, _ in recording.steps] == ["linear", "add", "tanh", "mul", "sum"]
    assert all("test_tape_pictures.py" in line for _, line in recording.steps)
    path = EV.animate_tape(recording, tmp_path / "tape.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == len(recording.steps)
    assert E.Tensor._apply is not None and "noting" not in repr(E.Tensor.__dict__["_apply"])


def test_nothing_to_record_is_explained():
    with pytest.raises(ValueError, match="requires_grad"):
        EV.record_tape(lambda t: t * 2, E.tensor([1.0, 2.0]))


def test_the_animation_beside_the_static_graph(tmp_path):
    if not style.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    model = zoo.get("neuron")
    path = pictures.animate_model(model, tmp_path / "neuron.gif", *model.test_sizes)
    module = model.build(model.test_sizes[1], 0)
    tensors = pictures._eager_inputs(model, *model.test_sizes, 0)
    steps = EV.record_tape(
        lambda *ts: model.loss_and_outputs(module, list(ts), True)[0], *tensors.values()
    ).steps
    with Image.open(path) as gif:
        assert gif.n_frames == len(steps)
        assert gif.width > 1.5 * gif.height or gif.width > 900  # two panels


def test_without_dot_the_tape_and_frames_are_dot_sources(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    layer, x = small_net()
    assert EV.render_tape(layer(x), tmp_path / "t.png").suffix == ".dot"
    recording = EV.record_tape(lambda t: layer(t).sum(), x)
    folder = EV.animate_tape(recording, tmp_path / "a.gif")
    assert len(list(folder.glob("frame_*.dot"))) == len(recording.steps)
    assert "Graphviz" in capsys.readouterr().err


def run(*argv) -> int:
    parser = argparse.ArgumentParser(prog="diptych")
    pictures.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.run(args)


def test_the_graph_command(tmp_path, capsys):
    if not style.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    out = tmp_path / "g.svg"
    assert run("graph", "two_layer_net", "--stage", "both", "-o", str(out)) == 0
    assert "cluster_stage_traced" in out.read_text()
    assert (
        run(
            "graph",
            "neuron",
            "--format",
            "png",
            "-o",
            str(tmp_path / "n.png"),
            "--collapse",
            "--memory",
            str(tmp_path / "m.png"),
        )
        == 0
    )
    assert (tmp_path / "n.png").exists() and (tmp_path / "m.png").exists()
    assert run("graph", "neuron", "--passes", "-o", str(tmp_path / "passes")) == 0
    assert len(list((tmp_path / "passes").glob("*.svg"))) == 7
    assert (
        run("graph", "neuron", "--what", "train", "--format", "dot", "-o", str(tmp_path / "t.dot"))
        == 0
    )
    assert "update" in (tmp_path / "t.dot").read_text()
    assert "wrote" in capsys.readouterr().out
    assert run("graph", "no_such_model") == 2
    assert run("graph", "pythagoras", "--what", "train") == 2
    assert "no parameters" in capsys.readouterr().err


def test_the_tape_command(tmp_path, capsys):
    if not style.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    out, gif = tmp_path / "tape.svg", tmp_path / "tape.gif"
    assert run("tape", "pythagoras", "-o", str(out), "--animate", str(gif)) == 0
    text = out.read_text()
    assert "requires grad" in text and "grad" in text and "pow" in text
    with Image.open(gif) as image:
        assert image.n_frames >= 4
    assert run("tape", "no_such_model") == 2
