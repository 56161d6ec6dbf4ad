"""Reports that say what did not happen and why (fusion skipped for small arrays, an op left
outside a kernel, a value not written in place), and backward nodes that name the user's
line, not the line of the code that called S.grad."""

import re

import numpy as np
import pytest

import symbolic as S
from common import functional as F
from compare import zoo
from compare.pictures import compile_model
from symbolic.passes import fusion


def changes_of(fn, stage: str) -> list[str]:
    return next(s.changes for s in fn.report.stages if s.stage == stage)


def test_fusion_skipped_for_small_arrays_says_the_threshold_and_how_to_change_it(monkeypatch):
    monkeypatch.setattr(fusion, "MIN_ELEMENTS", 1 << 16)  # as outside the tests
    x = S.placeholder((64, 64), name="x")
    fn = S.compile(F.sum(F.tanh(x * 2.0 + 1.0)), inputs=[x], optimize=2)
    (line,) = changes_of(fn, "fusion")
    with fn.graph.numbering.active():
        labels = ", ".join(n.label for n in fn.graph.ops if n.op.kind == "elementwise")
    assert line == (
        f"fusion skipped: 4,096 elements < 65,536 for 3 elementwise ops ({labels}): below "
        "symbolic.passes.fusion.MIN_ELEMENTS a fused call costs more than the memory trips "
        "it saves; set it lower to fuse small arrays"
    )
    assert f"    {line}" in str(fn.report)


def test_setting_the_threshold_lower_fuses_and_the_skip_line_goes(monkeypatch):
    monkeypatch.setattr(fusion, "MIN_ELEMENTS", 1024)
    x = S.placeholder((64, 64), name="x")
    fn = S.compile(F.sum(F.tanh(x * 2.0 + 1.0)), inputs=[x], optimize=2)
    lines = changes_of(fn, "fusion")
    assert [ln.split(" ")[0] for ln in lines] == ["fused"]


def test_an_op_left_outside_a_kernel_says_why(monkeypatch):
    """exp(x) is read by the kernel and by a sum; a bias of another shape is added in: both
    stay outside the kernel, each with its reason, named by its local label."""
    x, b = S.placeholder((64, 32), name="x"), S.placeholder((32,), name="b")
    h = F.exp(x)
    bias = F.tanh(b)  # elementwise, but of shape (32,)
    fn = S.compile([F.tanh(h * 3.0 + bias), F.sum(h)], inputs=[x, b], optimize=2)
    lines = changes_of(fn, "fusion")
    left = [ln for ln in lines if " outside " in ln]
    shared = r"^left %\d+ exp outside %\d+ fused_1: its value is also needed outside the kernel"
    other = r"^left %\d+ tanh outside %\d+ fused_1: its shape f32\[32\] differs from the kernel's"
    assert any(re.match(shared, ln) for ln in left) and any(re.match(other, ln) for ln in left)
    assert len(left) == 2, lines


def test_values_not_written_in_place_are_listed_with_their_reasons():
    x = S.placeholder((64, 64), name="x")
    fn = S.compile(F.sum(F.exp(F.tanh(x)) * F.tanh(x)), inputs=[x], optimize=2, disable="fusion")
    lines = changes_of(fn, "memory")
    refused = [ln for ln in lines if " not in place" in ln]
    plan = fn.graph.memory
    assert len(refused) == len({(n, i, why) for n, i, why in plan.refused})
    assert any(
        re.match(r"^%\d+ \w+ not in place over %\d+: input is a caller's", ln) for ln in lines
    )
    reader = r"^%\d+ \w+ not in place over %\d+: input still read at step \d+ \(by %\d+ mul\)$"
    assert any(re.match(reader, ln) for ln in refused), refused
    assert all(f"    {ln}" in str(fn.report) or len(lines) > 20 for ln in lines[:20])


@pytest.mark.parametrize("what", ["grad", "train"])
@pytest.mark.parametrize("name", ["two_layer_net", "mlp_digits", "rnn_varlen"])
def test_backward_nodes_name_the_users_forward_line_not_the_cli(name, what):
    """compare/pictures.py calls S.grad; its nodes name the model's lines that made the
    values they differentiate (as PyTorch's anomaly mode points at the forward op)."""
    model = zoo.get(name)
    fn = compile_model(model, what, 0, *model.test_sizes)
    backward = [n for n in fn.traced_graph.nodes if n.backward]
    assert backward
    assert all(n.source.startswith(f"{name}.py:") for n in backward), {
        n.source for n in backward if not n.source.startswith(f"{name}.py:")
    }


def test_a_vjp_names_the_line_of_its_forward_op():
    x = S.placeholder((3,), name="x")
    h = F.tanh(x)  # the tanh line
    loss = F.sum(h * 2.0)  # the loss line
    (dx,) = S.grad(loss, [x])  # S.grad's own line
    nodes = {n.op_name: n for n in S.Graph([], [dx.node]).nodes if n.backward}
    assert "the tanh line" in dx.node.source  # tanh's VJP made the last node
    assert "the loss line" in nodes["broadcast_like"].source  # sum's VJP, from the seed
    assert not any("S.grad's own line" in n.source for n in nodes.values())


def test_a_gradient_that_is_zero_names_the_line_of_its_input():
    x = S.placeholder((3,), name="x")
    w = S.variable(np.ones(3, np.float32), name="w")  # w's line
    (dw,) = S.grad(F.sum(x * 2.0), [w])
    assert "w's line" in dw.node.source
